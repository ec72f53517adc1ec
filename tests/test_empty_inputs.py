"""Empty inputs: every module takes zero rows (nodes) and zero edges, as e3nn's do, and the model takes isolated
atoms (no edge within the cutoff) with every block choice."""

import copy

import numpy as np
import pytest
import torch
from e3nn import o3

from gaunt_tp import GauntTensorProduct
from gaunt_tp.data import Configuration, ElementTable, collate, to_graph
from gaunt_tp.nn import (
    ElementLinear,
    EquivariantLinear,
    GauntFeatureInteraction,
    GauntMACE,
    GauntManyBody,
    ModelConfig,
    SymmetricContraction,
)
from gaunt_tp.nn.cg_blocks import CGConvolution
from gaunt_tp.ops import GauntConvolution

NODE = "4x0e + 4x1o + 4x2e"
DIM = o3.Irreps(NODE).dim
SH = "0e + 1o + 2e"


@pytest.mark.parametrize("backend", ["auto", "dense", "grid", "fft"])
def test_products_of_zero_rows(backend):
    tp = GauntTensorProduct(NODE, NODE, NODE, backend=backend)
    x = torch.randn(0, DIM, dtype=torch.float64, requires_grad=True)
    out = tp(x, torch.randn(0, DIM, dtype=torch.float64))
    assert out.shape == (0, DIM)
    out.sum().backward()
    assert x.grad.shape == (0, DIM)


def test_every_backend_module_takes_zero_rows():
    """The backends themselves, below GauntTensorProduct's early return for empty batches."""
    tp = GauntTensorProduct(NODE, NODE, NODE, backend="auto")
    assert set(tp.impls) >= {"dense", "fft", "grid"}
    for name, impl in tp.impls.items():
        x = torch.randn(0, DIM, dtype=torch.float64, requires_grad=True)
        out = impl(x, torch.randn(0, DIM, dtype=torch.float64))
        assert out.shape == (0, DIM), name
        out.sum().backward()
        assert x.grad.shape == (0, DIM), name


def test_linear_layers_and_feature_interaction_of_zero_rows():
    assert EquivariantLinear(NODE, "8x0e + 2x1o")(torch.randn(0, DIM)).shape == (0, 14)
    assert EquivariantLinear(NODE, "8x0e + 2x1o")(torch.randn(3, 0, DIM)).shape == (3, 0, 14)  # leading dims
    assert ElementLinear(NODE, 3, "8x0e + 2x1o")(torch.randn(0, DIM), torch.zeros(0, 3)).shape == (0, 14)
    interaction = GauntFeatureInteraction("8x0e + 8x1o", "8x0e + 8x1o", "8x0e + 8x1o + 8x2e")
    assert interaction(torch.randn(0, 32), torch.randn(0, 32)).shape == (0, 72)


@pytest.mark.parametrize("cls", [GauntConvolution, CGConvolution])
@pytest.mark.parametrize("nodes", [0, 5])
def test_convolutions_with_no_edges(cls, nodes):
    conv = cls(NODE, SH, NODE).double()
    x = torch.randn(nodes, DIM, dtype=torch.float64)
    edges = torch.zeros(2, 0, dtype=torch.long)
    out = conv(x, torch.randn(0, 3, dtype=torch.float64), edges, torch.randn(0, conv.weight_numel, dtype=torch.float64))
    assert out.shape == (nodes, DIM) and not out.abs().sum()


@pytest.mark.parametrize("cls", [GauntManyBody, SymmetricContraction])
def test_many_body_blocks_of_zero_rows(cls):
    block = cls(NODE, "4x0e + 4x1o", correlation=3, num_elements=2)
    assert block(torch.randn(0, DIM), torch.zeros(0, dtype=torch.long)).shape == (0, 16)


@pytest.mark.parametrize(
    "blocks",
    [{}, {"product_blocks": "symmetric"}, {"conv_blocks": "e3nn"},
     {"conv_blocks": "e3nn", "product_blocks": "symmetric", "separate_paths": True}],
    ids=["gaunt", "symmetric", "cg", "cg-symmetric-paths"],
)  # fmt: skip
def test_isolated_atoms_in_a_batch_have_no_forces(blocks):
    """A batch of a lone oxygen, a lone hydrogen, an O-H pair 9 A apart (no edge within r_max 4) and a bonded
    water: no forces on the first three, the pair's energy the sum of the lone atoms', and the water, in the same
    batch, as when alone."""
    torch.manual_seed(0)
    config = ModelConfig(atomic_numbers=(1, 8), e0s=(-13.6, -2041.9), r_max=4.0, max_ell=2, num_channels=4, max_L=1,
                         **blocks)  # fmt: skip
    model = GauntMACE(config).double()
    table = ElementTable([1, 8])
    lone_o = Configuration(atomic_numbers=np.array([8]), positions=np.zeros((1, 3)))
    lone_h = Configuration(atomic_numbers=np.array([1]), positions=np.zeros((1, 3)))
    apart = Configuration(atomic_numbers=np.array([8, 1]), positions=np.array([[0.0, 0, 0], [9.0, 0, 0]]))
    water = Configuration(
        atomic_numbers=np.array([8, 1, 1]), positions=np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    )
    batch = collate([to_graph(c, table, config.r_max) for c in (lone_o, lone_h, apart, water)])
    out = model(batch, compute_forces=True)
    torch.testing.assert_close(out["energy"][2], out["energy"][0] + out["energy"][1], rtol=0, atol=1e-10)
    assert not out["forces"][:4].abs().sum()
    frozen = copy.deepcopy(model).requires_grad_(False)  # as in the calculator: no graph through the weights
    for single in (lone_o, apart):
        alone = frozen(collate([to_graph(single, table, config.r_max)]), compute_forces=True)
        assert alone["forces"].shape == (len(single.atomic_numbers), 3) and not alone["forces"].abs().sum()
    alone = model(collate([to_graph(water, table, config.r_max)]), compute_forces=True)
    assert alone["forces"].abs().sum() > 0
    torch.testing.assert_close(out["energy"][3:], alone["energy"], rtol=0, atol=1e-10)
    torch.testing.assert_close(out["forces"][4:], alone["forces"], rtol=0, atol=1e-10)
