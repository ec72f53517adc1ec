"""Shared by the whole-model tests: the small model's config, graphs of configurations, and the checks that every
model option must pass (forces as minus the gradient, invariance with inversion in float64 and float32)."""

import dataclasses

import numpy as np
import pytest
import torch

from gaunt_tp.data import Configuration, ElementTable, to_graph
from gaunt_tp.nn import GauntMACE
from gaunt_tp.testing import random_rotation, small_model_config

TABLE = ElementTable([1, 6, 8])
CONFIG = small_model_config(correlation=3)


def graph(config: Configuration) -> object:
    return to_graph(config, TABLE, CONFIG.r_max)


def moved(config: Configuration, positions: np.ndarray, cell: np.ndarray | None = None) -> Configuration:
    return dataclasses.replace(config, positions=positions, cell=config.cell if cell is None else cell)


def assert_forces_and_invariance(model, c, atom: int, axis: int, seed: int) -> None:
    """Forces = -grad E by central differences at (atom, axis); E invariant and F equivariant under a
    rotation with inversion (float64 model)."""
    out = model(graph(c))
    h = 1e-5
    plus, minus = c.positions.copy(), c.positions.copy()
    plus[atom, axis] += h
    minus[atom, axis] -= h
    numeric = -(model(graph(moved(c, plus)))["energy"] - model(graph(moved(c, minus)))["energy"]) / (2 * h)
    assert float(numeric) == pytest.approx(float(out["forces"][atom, axis]), abs=1e-6)
    rot = -random_rotation(generator=torch.Generator().manual_seed(seed)).numpy()  # with inversion
    rotated = model(graph(moved(c, c.positions @ rot.T)))
    assert float(rotated["energy"]) == pytest.approx(float(out["energy"]), abs=1e-10)
    torch.testing.assert_close(rotated["forces"], out["forces"] @ torch.from_numpy(rot).T, rtol=0, atol=1e-10)


def assert_float32_invariance(model: GauntMACE, config, seed: int) -> None:
    """In float32, a random rotation with inversion leaves the energy to 1e-6 relative and rotates the forces
    to 1e-5 of their largest component."""
    ref = model(to_graph(config, TABLE, CONFIG.r_max, torch.float32))
    rot = -random_rotation(generator=torch.Generator().manual_seed(seed)).numpy()
    out = model(to_graph(moved(config, config.positions @ rot.T), TABLE, CONFIG.r_max, torch.float32))
    assert abs(float(out["energy"]) - float(ref["energy"])) < 1e-6 * abs(float(ref["energy"]))
    expected = ref["forces"] @ torch.from_numpy(rot).float().T
    assert float((out["forces"] - expected).abs().max()) < 1e-5 * max(1.0, float(ref["forces"].abs().max()))
