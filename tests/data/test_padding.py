"""Padded batches: the model's energies, forces, stress, loss and weight gradients of the real graphs unchanged."""

import numpy as np
import pytest
import torch
from ase.build import bulk

from gaunt_tp.data import BatchCapacity, Configuration, ElementTable, collate, pad_batch, read_configurations, to_graph
from gaunt_tp.nn import GauntMACE
from gaunt_tp.testing import small_model_config
from gaunt_tp.training.metrics import weighted_loss

TABLE = ElementTable([1, 6, 8])


@pytest.fixture(scope="module")
def graphs(shared_data):
    """Ethanol molecules, a diamond cell (periodic: shifted edges, a stress label) and a water molecule."""
    configs = read_configurations(shared_data / "ethanol" / "train.xyz", index=":3")
    diamond = bulk("C", "diamond", a=3.57)
    rng = np.random.default_rng(0)
    configs.append(
        Configuration(
            atomic_numbers=diamond.numbers,
            positions=diamond.positions + 0.05 * rng.standard_normal((2, 3)),
            cell=np.array(diamond.cell),
            pbc=np.array([True] * 3),
            energy=-2050.0,
            forces=rng.standard_normal((2, 3)),
            stress=0.01 * rng.standard_normal((3, 3)),
        )  # fmt: skip
    )
    water = Configuration(
        atomic_numbers=np.array([8, 1, 1]),
        positions=np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]),
        energy=-2062.0,
        forces=rng.standard_normal((3, 3)),
    )
    configs.append(water)
    return [to_graph(c, TABLE, 4.0, torch.float64) for c in configs]


def loss_and_gradients(model: GauntMACE, batch, weights) -> tuple[dict, torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(batch, compute_forces=True, compute_stress=True, training=True)
    loss = weighted_loss(batch, out, *weights)
    loss.backward()
    return out, loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "options",
    [{}, {"product_blocks": "symmetric", "conv_blocks": "e3nn"},
     {"pair_repulsion": True, "distance_transform": "Agnesi", "density_normalization": True}],
    ids=["gaunt", "symmetric-e3nn", "zbl-agnesi-density"],
)  # fmt: skip
@pytest.mark.parametrize("members", [[0, 3, 4], [1], [3, 2]], ids=["three", "one", "periodic-first"])
def test_padding_changes_no_real_result(graphs, options, members):
    torch.manual_seed(1)
    model = GauntMACE(small_model_config(**options)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    capacity = BatchCapacity.covering(graphs, 4)
    batch = collate([graphs[i] for i in members])
    padded = pad_batch(batch, capacity, r_max=4.0)
    b, n = batch.num_graphs, batch.positions.shape[0]
    weights = (1.0, 100.0, 10.0)
    out, loss, grads = loss_and_gradients(model, batch, weights)
    out_p, loss_p, grads_p = loss_and_gradients(model, padded, weights)
    torch.testing.assert_close(out_p["energy"][:b], out["energy"], rtol=0, atol=1e-10)
    torch.testing.assert_close(out_p["forces"][:n], out["forces"], rtol=0, atol=1e-12)
    torch.testing.assert_close(out_p["stress"][:b], out["stress"], rtol=0, atol=1e-12)
    torch.testing.assert_close(loss_p, loss, rtol=1e-13, atol=0)
    for g_p, g in zip(grads_p, grads):
        torch.testing.assert_close(g_p, g, rtol=1e-11, atol=1e-13)
    assert torch.isfinite(out_p["energy"]).all() and torch.isfinite(out_p["forces"]).all()


def test_padded_sizes_and_indices(graphs):
    capacity = BatchCapacity.covering(graphs, 3)
    sizes = sorted((g.positions.shape[0] for g in graphs), reverse=True)
    edges = sorted((g.edge_index.shape[1] for g in graphs), reverse=True)
    pairs = sorted((g.pair_edge.shape[0] for g in graphs), reverse=True)
    assert capacity == BatchCapacity(
        graphs=3, nodes=sum(sizes[:3]) + 3, edges=sum(edges[:3]) + 1, pairs=sum(pairs[:3]) + 1
    )
    for members in ([0, 1, 2], [4], [3, 4]):
        batch = collate([graphs[i] for i in members])
        p = pad_batch(batch, capacity, r_max=4.0)
        assert p.num_graphs == capacity.graphs + 1 and p.positions.shape == (capacity.nodes, 3)
        assert p.edge_index.shape == (2, capacity.edges) and p.pair_edge.shape == (capacity.pairs,)
        counts = torch.bincount(p.batch, minlength=p.num_graphs)
        assert torch.equal(p.ptr[1:] - p.ptr[:-1], counts) and counts.min() >= 1  # no graph without atoms
        assert torch.equal(p.batch, torch.sort(p.batch).values)
        e, u = batch.edge_index.shape[1], batch.pair_edge.shape[0]
        assert torch.equal(p.edge_pair[:e], batch.edge_pair) and torch.equal(p.pair_edge[:u], batch.pair_edge)
        assert (p.edge_pair[e:] == capacity.pairs - 1).all()  # the padding edges: one pair, the last slot
        assert (p.pair_edge[u:] == e).all()  # which, as the unused slots, points at a padding edge
        assert (p.edge_index[:, e:] == capacity.nodes - 1).all()
        vectors = p.positions[p.edge_index[1, e:]] + p.shifts[e:] - p.positions[p.edge_index[0, e:]]
        assert torch.allclose(vectors.norm(dim=1), torch.full((capacity.edges - e,), 8.0, dtype=torch.float64))
        assert torch.isnan(p.energy[batch.num_graphs :]).all() and (p.weight[batch.num_graphs :] == 0).all()
        assert torch.isnan(p.forces[batch.positions.shape[0] :]).all()
        assert p.config_type[: batch.num_graphs] == batch.config_type


def test_a_batch_that_does_not_fit_is_a_clear_error(graphs):
    capacity = BatchCapacity.covering(graphs[:2], 2)
    with pytest.raises(ValueError, match="does not fit"):
        pad_batch(collate(graphs[:3]), capacity, r_max=4.0)  # three graphs, room for two
    with pytest.raises(ValueError, match="batch_size >= 1"):
        BatchCapacity.covering(graphs, 0)
