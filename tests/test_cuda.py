"""Every module on a CUDA device equals its CPU result in float64, gradients included (skipped without a GPU)."""

import dataclasses

import pytest
import torch

from gaunt_tp import GauntTensorProduct
from gaunt_tp.data import Configuration, ElementTable, collate, to_graph
from gaunt_tp.nn import GauntFeatureInteraction, GauntMACE, GauntManyBody, ModelConfig, SymmetricContraction
from gaunt_tp.nn.cg_blocks import CGConvolution
from gaunt_tp.nn.linear import RowsLinear
from gaunt_tp.ops import GauntConvolution
from gaunt_tp.testing import natural_irreps

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def same_on_cuda(module: torch.nn.Module, *inputs: torch.Tensor, differentiable: tuple[int, ...] = ()) -> None:
    """Outputs and input gradients (of a fixed random projection) agree between CPU and CUDA."""
    module = module.double()
    results = []
    for device in ("cpu", "cuda"):
        module.to(device)
        args = [t.to(device).requires_grad_(i in differentiable) for i, t in enumerate(inputs)]
        out = module(*args)
        cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype).to(device)
        grads = torch.autograd.grad(out, [args[i] for i in differentiable], cot) if differentiable else ()
        results.append([out.detach().cpu(), *(g.cpu() for g in grads)])
    for cpu, cuda in zip(*results):
        torch.testing.assert_close(cuda, cpu, rtol=1e-10, atol=1e-10)


class _Method(torch.nn.Module):
    """``module.name`` as a forward, for methods other than ``forward`` (``forward_rows``)."""

    def __init__(self, module: torch.nn.Module, name: str) -> None:
        super().__init__()
        self.module, self.name = module, name

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return getattr(self.module, self.name)(*args)


def test_odd_path_product():
    tp = GauntTensorProduct("4x0e + 4x1o + 4x2e", "4x0e + 4x1o", "4x0e + 4x1e + 4x1o + 4x2e", odd_paths=True)
    x1, x2 = torch.randn(7, tp.irreps_in1.dim), torch.randn(7, tp.irreps_in2.dim)
    same_on_cuda(tp, x1.double(), x2.double(), differentiable=(0, 1))


def test_feature_interaction():
    module = GauntFeatureInteraction(natural_irreps(3, 8), natural_irreps(3, 8), natural_irreps(3, 8))
    x1, x2 = torch.randn(2, 11, module.irreps_in1.dim, dtype=torch.float64)
    same_on_cuda(module, x1, x2, differentiable=(0, 1))


@pytest.mark.parametrize("form", ["grid", "aligned"])
def test_convolution(form):
    conv = GauntConvolution(natural_irreps(3, 8), natural_irreps(3, 1), natural_irreps(3, 8), form=form)
    x = torch.randn(10, conv.irreps_node.dim, dtype=torch.float64)
    vectors = torch.randn(40, 3, dtype=torch.float64)
    vectors[0] = 0.0  # a zero-length edge stays finite on the GPU too
    edge_index = torch.randint(0, 10, (2, 40))
    radial = torch.randn(40, conv.weight_numel, dtype=torch.float64)
    same_on_cuda(conv, x, vectors, edge_index, radial, differentiable=(0, 1, 3))


def test_many_body():
    module = GauntManyBody(natural_irreps(3, 8), natural_irreps(2, 8), correlation=3, num_elements=3)
    x = torch.randn(12, module.irreps_in.dim, dtype=torch.float64)
    species = torch.randint(0, 3, (12,))
    same_on_cuda(module, x, species, differentiable=(0,))


def test_symmetric_contraction():
    module = SymmetricContraction(natural_irreps(3, 8), natural_irreps(1, 8), correlation=3, num_elements=2)
    x = torch.randn(9, module.irreps_in.dim, dtype=torch.float64)
    same_on_cuda(module, x, torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1]), differentiable=(0,))


def test_symmetric_contraction_rows_output():
    module = SymmetricContraction(natural_irreps(3, 8), natural_irreps(2, 8), correlation=3, num_elements=2,
                                  out_layout="rows")  # fmt: skip
    x = torch.randn(9, module.irreps_in.dim, dtype=torch.float64)
    same_on_cuda(module, x, torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1]), differentiable=(0,))


@pytest.mark.parametrize("separate_paths", [False, True])
def test_cg_convolution_and_its_rows_form(separate_paths):
    irreps = natural_irreps(2, 8)
    conv = CGConvolution(irreps, natural_irreps(3, 1), irreps, separate_paths=separate_paths)
    x = torch.randn(10, conv.irreps_node.dim, dtype=torch.float64)
    vectors = torch.randn(40, 3, dtype=torch.float64)
    edge_index = torch.randint(0, 10, (2, 40))
    radial = torch.randn(40, conv.weight_numel, dtype=torch.float64)
    same_on_cuda(conv, x, vectors, edge_index, radial, differentiable=(0, 1, 3))
    rows = torch.randn(10, conv.irreps_node.dim // 8, 8, dtype=torch.float64)
    same_on_cuda(_Method(conv, "forward_rows"), rows, vectors, edge_index, radial, differentiable=(0, 1, 3))


@pytest.mark.parametrize("rows", ["in", "out"])
def test_rows_linear(rows):
    irreps_rows, irreps_flat = "16x0e + 8x1o + 16x2e", "8x0e + 8x1o + 8x2e"
    if rows == "in":
        lin = RowsLinear(irreps_rows, irreps_flat, rows="in", channels=8, output_scale=0.5)
        x = torch.randn(7, lin.irreps_in.dim // 8, 8, dtype=torch.float64)
    else:
        lin = RowsLinear(irreps_flat, irreps_flat, rows="out", channels=8, output_scale=0.5)
        x = torch.randn(7, lin.irreps_in.dim, dtype=torch.float64)
    same_on_cuda(lin, x, differentiable=(0,))


@pytest.mark.parametrize(
    "options",
    [{"conv_blocks": "gaunt"}, {"conv_blocks": "e3nn"}, {"conv_blocks": "e3nn", "product_blocks": "symmetric"},
     {"conv_blocks": "e3nn", "product_blocks": "symmetric", "separate_paths": True}],
    ids=["gaunt", "e3nn", "symmetric-e3nn", "symmetric-e3nn-separate"],
)  # fmt: skip
def test_model_energy_forces_and_stress(options):
    config = ModelConfig(atomic_numbers=(1, 8), e0s=(-1.0, -2.0), r_max=3.0, max_ell=2, num_channels=8, max_L=1,
                         avg_num_neighbors=6.0, **options)  # fmt: skip
    torch.manual_seed(0)
    model = GauntMACE(config).double()
    gen = torch.Generator().manual_seed(0)
    water = Configuration(
        atomic_numbers=torch.tensor([8, 1, 1] * 4).numpy(),
        positions=(torch.rand(12, 3, generator=gen, dtype=torch.float64) * 4.0).numpy(),
        cell=(torch.eye(3, dtype=torch.float64) * 4.0).numpy(),
        pbc=(True, True, True),
    )
    graph = to_graph(water, ElementTable([1, 8]), config.r_max)
    outs = []
    for device in ("cpu", "cuda"):
        batch = collate([graph.to(device), graph.to(device)])  # batching on the device, as training does
        out = model.to(device)(batch, compute_forces=True, compute_stress=True)
        outs.append({k: out[k].detach().cpu() for k in ("energy", "forces", "stress")})
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(outs[1][key], outs[0][key], rtol=1e-9, atol=1e-9)
    assert {k: dataclasses.asdict(config)[k] for k in options} == options
