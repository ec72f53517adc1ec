"""GraphedPotential's padded calls (what a CUDA graph replays) give the model's own results, on CPUs."""

import numpy as np
import pytest
import torch
from ase.build import bulk

import gaunt_tp.ops.checks
from gaunt_tp.calculator import GauntCalculator
from gaunt_tp.cuda_graphs import GraphedPotential
from gaunt_tp.data import Configuration, ElementTable, collate, read_configurations, to_graph
from gaunt_tp.errors import InputError
from gaunt_tp.nn import GauntMACE
from gaunt_tp.testing import host_read_backs, pytorch_path, small_model_config

CONFIG = small_model_config()
TABLE = ElementTable(CONFIG.atomic_numbers)


@pytest.fixture(scope="module")
def structures(shared_data):
    """Ethanol molecules, two of them as one structure (more atoms and edges: the capacity grows), a diamond cell."""
    molecules = [to_graph(c, TABLE, CONFIG.r_max) for c in read_configurations(shared_data / "ethanol" / "train.xyz",
                                                                               index=":3")]  # fmt: skip
    diamond = bulk("C", "diamond", a=3.57)
    cell = Configuration(
        atomic_numbers=diamond.numbers,
        positions=diamond.positions + 0.05 * np.random.default_rng(0).standard_normal((2, 3)),
        cell=np.array(diamond.cell),
        pbc=np.array([True] * 3),
    )
    return [(molecules[0], False), (molecules[1], False), (collate(molecules[1:3]), False),
            (to_graph(cell, TABLE, CONFIG.r_max), True), (molecules[2], True)]  # fmt: skip


def test_padded_calls_give_the_models_results(structures):
    torch.manual_seed(0)
    model = GauntMACE(CONFIG).double()
    potential = GraphedPotential(model, capture=False)
    capacities = []
    for batch, stress in structures:
        out = potential(batch, compute_stress=stress)
        ref = model(batch, compute_forces=True, compute_stress=stress)
        assert set(out) == set(ref)
        for key in ref:
            assert out[key].shape == ref[key].shape, key
            torch.testing.assert_close(out[key], ref[key].detach(), rtol=1e-12, atol=1e-12)
        capacities.append(potential.capacity)
    assert capacities[1] == capacities[0] and capacities[2].nodes > capacities[0].nodes  # grew once, for the pair
    assert potential.captures == 0


def test_the_calls_a_gpu_captures_read_nothing_back(structures, monkeypatch):
    model = pytorch_path(GauntMACE(CONFIG).double())  # the PyTorch path, which GPUs run
    potential = GraphedPotential(model, capture=False)
    for batch, stress in structures[3:]:
        potential(batch, compute_stress=stress)  # the warm-up
    monkeypatch.setattr(gaunt_tp.ops.checks, "capturing", lambda tensor: True)
    assert host_read_backs(lambda: potential(structures[3][0], compute_stress=True)) == set()


def test_options_are_checked():
    model = GauntMACE(CONFIG)
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedPotential(model, capture=True)
    with pytest.raises(ValueError, match="margin"):
        GraphedPotential(model, capture=False, margin=0.5)
    with pytest.raises(InputError, match="needs a CUDA device"):
        GauntCalculator(model, cuda_graph=True)
