"""The padded training step (what a CUDA graph replays) trains to the same weights as the eager one."""

import copy

import ase.io
import pytest
import torch

from gaunt_tp.data import BatchCapacity, ElementTable, collate, read_configurations, to_graph
from gaunt_tp.errors import InputError
from gaunt_tp.nn import GauntMACE
from gaunt_tp.testing import emt_copper, host_read_backs, pytorch_path, small_model_config
from gaunt_tp.training.config import TrainConfig
from gaunt_tp.training.step import EagerStep, GraphedStep

CONFIG = small_model_config()


@pytest.fixture(scope="module")
def graphs(shared_data):
    configs = read_configurations(shared_data / "ethanol" / "train.xyz", index=":7")
    return [to_graph(c, ElementTable(CONFIG.atomic_numbers), CONFIG.r_max, torch.float64) for c in configs]


@pytest.fixture(scope="module")
def copper(tmp_path_factory):
    """Periodic copper cells of 4 and 8 atoms with EMT energies, forces and stress; the model config for them."""
    path = tmp_path_factory.mktemp("copper") / "cu.xyz"
    ase.io.write(path, emt_copper(6, seed=5, strain=0.03, shapes=((1, 1, 1), (2, 1, 1))))
    config = small_model_config(atomic_numbers=(29,), e0s=(-0.1,))
    table = ElementTable(config.atomic_numbers)
    return config, [to_graph(c, table, config.r_max, torch.float64) for c in read_configurations(path)]


def train(step_of, model: GauntMACE, batches, weights) -> list[float]:
    """A few AMSGrad steps; the losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    step = step_of(model)
    losses = []
    for batch, w in zip(batches, weights):
        losses.append(float(step(batch, w)))
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        optimizer.step()
    return losses


def test_padded_step_trains_like_the_eager_one(graphs):
    torch.manual_seed(2)
    model = GauntMACE(CONFIG).double()
    batches = [collate(graphs[:3]), collate(graphs[3:6]), collate(graphs[6:]), collate(graphs[1:4])]
    weights = [(1.0, 100.0, 0.0)] * 2 + [(1000.0, 100.0, 0.0)] * 2  # stage two's weights from the third step
    capacity = BatchCapacity.covering(graphs, 3)
    eager, padded = copy.deepcopy(model), copy.deepcopy(model)
    losses = train(EagerStep, eager, batches, weights)
    losses_padded = train(lambda m: GraphedStep(m, capacity, capture=False), padded, batches, weights)
    assert losses_padded == pytest.approx(losses, rel=1e-12)
    assert losses[0] != pytest.approx(losses[-1], rel=1e-3)  # the weights moved
    for p_padded, p in zip(padded.parameters(), eager.parameters()):
        torch.testing.assert_close(p_padded, p, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("term", [(1.0, 0.0), (0.0, 1.0)], ids=["stress", "virials"])
def test_padded_step_with_the_stress_loss_trains_like_the_eager_one(copper, term):
    """``--loss stress`` or ``virials`` (weight 1, stage two's weights from the third step): the padding graphs'
    cells span no volume, their stress is 0 and their NaN labels are left out."""
    config, graphs = copper
    torch.manual_seed(3)
    model = GauntMACE(config).double()
    batches = [collate(graphs[:2]), collate(graphs[2:5]), collate(graphs[5:]), collate(graphs[1:4])]
    weights = [(1.0, 100.0, *term)] * 2 + [(1000.0, 100.0, *term)] * 2
    eager, padded = copy.deepcopy(model), copy.deepcopy(model)
    losses = train(EagerStep, eager, batches, weights)
    losses_padded = train(lambda m: GraphedStep(m, BatchCapacity.covering(graphs, 3), capture=False), padded, batches,
                          weights)  # fmt: skip
    assert losses_padded == pytest.approx(losses, rel=1e-12)
    without_stress = train(EagerStep, copy.deepcopy(model), batches[:1], [(1.0, 100.0, 0.0, 0.0)])
    assert losses[0] > without_stress[0] * (1 + 1e-6)  # the stress or virials term is in the loss
    for p_padded, p in zip(padded.parameters(), eager.parameters()):
        torch.testing.assert_close(p_padded, p, rtol=1e-10, atol=1e-12)


def test_capture_needs_a_cuda_model(graphs):
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedStep(GauntMACE(CONFIG), BatchCapacity.covering(graphs, 2), capture=True)


def test_cuda_graph_option_is_checked():
    with pytest.raises(InputError, match="needs a CUDA --device"):
        TrainConfig(train_file="x.xyz", cuda_graph=True)
    assert TrainConfig(train_file="x.xyz", cuda_graph=True, device="cuda:1").cuda_graph
    assert TrainConfig(train_file="x.xyz", cuda_graph=True, device="cuda", loss="stress").cuda_graph


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"product_blocks": "symmetric"},
        {"product_blocks": "symmetric", "conv_blocks": "e3nn", "separate_paths": True},
    ],
    ids=["gaunt", "symmetric", "symmetric-e3nn-paths"],
)
def test_the_step_the_gpu_captures_reads_nothing_back(graphs, options, monkeypatch):
    """The PyTorch path (the one GPUs run), with the range checks skipped as during a capture: a padded training
    step, stage two's weights, calls no operation that reads a value back to the host."""
    import gaunt_tp.ops.checks

    model = pytorch_path(GauntMACE(small_model_config(**options)).double())
    step = GraphedStep(model, BatchCapacity.covering(graphs, 3), capture=False)
    step(collate(graphs[:3]), (1.0, 100.0, 0.0))  # tables made, as in the warm-up before a capture
    monkeypatch.setattr(gaunt_tp.ops.checks, "capturing", lambda tensor: True)
    assert host_read_backs(lambda: step(collate(graphs[3:5]), (1000.0, 100.0, 0.0))) == set()


def test_the_stress_step_the_gpu_captures_reads_nothing_back(copper, monkeypatch):
    """The same with the stress and virials terms on periodic cells (the strain derivative, the volumes)."""
    import gaunt_tp.ops.checks

    config, graphs = copper
    model = pytorch_path(GauntMACE(config).double())
    step = GraphedStep(model, BatchCapacity.covering(graphs, 3), capture=False)
    step(collate(graphs[:3]), (1.0, 100.0, 1.0, 1.0))
    monkeypatch.setattr(gaunt_tp.ops.checks, "capturing", lambda tensor: True)
    assert host_read_backs(lambda: step(collate(graphs[3:5]), (1000.0, 100.0, 1.0, 1.0))) == set()
