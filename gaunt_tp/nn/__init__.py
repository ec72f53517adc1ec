"""Learnable modules built on the products in :mod:`gaunt_tp.ops`."""

from gaunt_tp.nn.feature_interaction import GauntFeatureInteraction, output_variance
from gaunt_tp.nn.many_body import GauntManyBody

__all__ = ["GauntFeatureInteraction", "GauntManyBody", "output_variance"]
