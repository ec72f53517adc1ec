"""Predictions of a trained model on many configurations, in batches, with the error table where labels exist."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from gaunt_tp.data import Configuration, ElementTable, collate, to_graph
from gaunt_tp.errors import InputError
from gaunt_tp.nn.model import GauntMACE
from gaunt_tp.training.metrics import ErrorAccumulator

__all__ = ["Prediction", "predict"]


@dataclass(frozen=True)
class Prediction:
    """One configuration's predictions: energy (eV), forces ``[n_atoms, 3]`` (eV/A), per-atom energies
    ``[n_atoms]`` (eV) and, where the cell spans a volume (:attr:`Configuration.has_stress`), the stress ``[3, 3]``
    (eV/A^3, ASE's sign: ``(1/V) dE/d(strain)``); None otherwise. ``descriptors [n_atoms, num_interactions *
    num_channels]``: each layer's invariant node features (:meth:`gaunt_tp.calculator.GauntCalculator.get_descriptors`)
    when asked for; None otherwise."""

    energy: float
    forces: np.ndarray
    energies: np.ndarray
    stress: np.ndarray | None
    descriptors: np.ndarray | None = None


def predict(
    model: GauntMACE,
    configs: Sequence[Configuration | Atoms],
    *,
    batch_size: int = 16,
    progress: bool = False,
    descriptors: bool = False,
) -> tuple[list[Prediction], dict[str, dict[str, float]]]:
    """Run ``model`` (on its own device and dtype) over ``configs`` (:class:`gaunt_tp.data.Configuration`, or
    ``ase.Atoms``, whose structure alone is taken), ``batch_size`` graphs per call; ``descriptors``: the atoms'
    invariant descriptors too.

    Returns one :class:`Prediction` per configuration, in order, and the error table of
    :class:`gaunt_tp.training.metrics.ErrorAccumulator` (per ``config_type`` and ``"all"``; RMSE and MAE in meV)
    over the labels the configurations carry (none: an empty table). The same numbers as
    :class:`gaunt_tp.calculator.GauntCalculator` one configuration at a time, faster for many small ones.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    configs = [c if isinstance(c, Configuration) else Configuration.from_atoms(c, f"configs[{i}]")
               for i, c in enumerate(configs)]  # fmt: skip
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    table = ElementTable(model.config.atomic_numbers)
    starts = range(0, len(configs), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="eval", unit="batch", leave=False, disable=None)
    predictions: list[Prediction] = []
    acc = ErrorAccumulator()
    for start in starts:
        chunk = configs[start : start + batch_size]
        batch = collate([to_graph(c, table, model.config.r_max, dtype) for c in chunk]).to(device)
        has_stress = [c.has_stress for c in chunk]
        with torch.enable_grad():
            out = model(batch, compute_forces=True, compute_stress=any(has_stress), compute_descriptors=descriptors)
        acc.add(batch, out)
        if descriptors:
            out["descriptors"] = model.descriptors(out.pop("node_feats"))
        values = {k: v.detach().cpu().to(torch.float64).numpy() for k, v in out.items()}
        ptr = batch.ptr.tolist()
        for g, with_stress in enumerate(has_stress):
            atoms = slice(ptr[g], ptr[g + 1])
            predictions.append(
                Prediction(
                    energy=float(values["energy"][g]),
                    forces=values["forces"][atoms],
                    energies=values["node_energy"][atoms],
                    stress=values["stress"][g] if with_stress else None,
                    descriptors=values["descriptors"][atoms] if descriptors else None,
                )
            )
    table = acc.table()
    return predictions, table if table["all"]["n"] else {}  # no labels: no table
