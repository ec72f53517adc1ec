"""Learnable modules built on the products in :mod:`gaunt_tp.ops`."""

from gaunt_tp.nn.feature_interaction import GauntFeatureInteraction, output_variance
from gaunt_tp.nn.linear import ElementLinear, EquivariantLinear
from gaunt_tp.nn.many_body import GauntManyBody
from gaunt_tp.nn.model import GauntMACE, ModelConfig
from gaunt_tp.nn.radial import BesselBasis, PolynomialCutoff, RadialMLP
from gaunt_tp.nn.serialization import load_model, save_model
from gaunt_tp.nn.symmetric_contraction import SymmetricContraction

__all__ = [
    "BesselBasis",
    "ElementLinear",
    "EquivariantLinear",
    "GauntFeatureInteraction",
    "GauntMACE",
    "GauntManyBody",
    "ModelConfig",
    "PolynomialCutoff",
    "RadialMLP",
    "load_model",
    "output_variance",
    "SymmetricContraction",
    "save_model",
]
