"""Every module on a CUDA device equals its CPU result in float64, gradients included (skipped without a GPU)."""

import dataclasses

import numpy as np
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
     {"conv_blocks": "e3nn", "product_blocks": "symmetric", "separate_paths": True},
     {"conv_blocks": "e3nn", "product_blocks": "symmetric", "separate_paths": True, "first_self_connection": False,
      "silu_scale": 1.6791767923989418},
     {"conv_blocks": "e3nn", "product_blocks": "symmetric", "separate_paths": True, "pair_repulsion": True,
      "distance_transform": "Agnesi", "density_normalization": True}],
    ids=["gaunt", "e3nn", "symmetric-e3nn", "symmetric-e3nn-separate", "converted-mace", "zbl-agnesi-density"],
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


@pytest.mark.parametrize(
    "options",
    [{}, {"conv_blocks": "e3nn", "product_blocks": "symmetric"},
     {"pair_repulsion": True, "distance_transform": "Soft", "density_normalization": True}],
    ids=["gaunt", "symmetric-e3nn", "zbl-soft-density"],
)  # fmt: skip
def test_captured_training_step_trains_like_the_eager_one(options):
    """GraphedStep's CUDA graph (padded batches of other sizes, a second graph for stage two's weights) gives the
    eager step's losses and, after AMSGrad steps, its weights."""
    import copy

    from gaunt_tp.data import BatchCapacity
    from gaunt_tp.training.step import EagerStep, GraphedStep

    config = ModelConfig(atomic_numbers=(1, 8), e0s=(-1.0, -2.0), r_max=3.0, max_ell=2, num_channels=8, max_L=1,
                         avg_num_neighbors=6.0, **options)  # fmt: skip
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    graphs = []
    for n in (3, 6, 9, 6, 3):  # water clusters of 1-3 molecules: batches of other sizes
        cluster = Configuration(
            atomic_numbers=torch.tensor([8, 1, 1] * (n // 3)).numpy(),
            positions=(torch.rand(n, 3, generator=gen, dtype=torch.float64) * 3.0).numpy(),
            energy=float(torch.randn((), generator=gen)), forces=torch.randn(n, 3, generator=gen).double().numpy(),
        )  # fmt: skip
        graphs.append(to_graph(cluster, ElementTable([1, 8]), config.r_max).to("cuda"))
    batches = [collate(graphs[:2]), collate(graphs[2:4]), collate(graphs[4:]), collate(graphs[1:3])] * 2
    weights = [(1.0, 100.0, 0.0)] * 5 + [(1000.0, 100.0, 0.0)] * 3
    capacity = BatchCapacity.covering(graphs, 2)
    model = GauntMACE(config).double().cuda()
    results = []
    for make in (EagerStep, lambda m: GraphedStep(m, capacity, capture=True)):
        trained = copy.deepcopy(model)
        optimizer = torch.optim.Adam(trained.parameters(), lr=0.01, amsgrad=True)
        step, losses = make(trained), []
        for batch, w in zip(batches, weights):
            losses.append(float(step(batch, w)))
            optimizer.step()
        results.append((losses, [p.detach().cpu() for p in trained.parameters()]))
    (losses, params), (losses_graphed, params_graphed) = results
    assert losses_graphed == pytest.approx(losses, rel=1e-9)
    for p_graphed, p in zip(params_graphed, params):
        torch.testing.assert_close(p_graphed, p, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("loss", ["weighted", "stress", "virials", "huber", "universal"])
def test_training_with_cuda_graphs_ends_with_the_eager_weights(tmp_path, shared_data, loss):
    """``gaunt-tp train --device cuda --cuda_graph`` (three epochs, stage two in the third, a short last batch)
    ends with the weights of the same run without it: on ethanol, and with ``--loss stress``, ``virials``, ``huber``
    or ``universal`` on periodic copper."""
    import ase.io

    from gaunt_tp.testing import emt_copper
    from gaunt_tp.training.checkpoint import latest_checkpoint, load_checkpoint
    from gaunt_tp.training.cli import main

    data = tmp_path / "small.xyz"
    if loss != "weighted":
        ase.io.write(data, emt_copper(12, seed=3, strain=0.03, shapes=((1, 1, 1), (2, 1, 1))))
    else:
        ase.io.write(data, ase.io.read(shared_data / "ethanol" / "train.xyz", index=":12"))
    common = ["train", "--train_file", str(data), "--work_dir", str(tmp_path), "--num_channels", "4", "--max_L", "1",
              "--max_ell", "2", "--r_max", "4.0", "--batch_size", "4", "--E0s", "average", "--plots", "false",
              "--device", "cuda", "--max_num_epochs", "3", "--swa", "--start_swa", "2", "--loss", loss]  # fmt: skip
    assert main([*common, "--name", "eager"]) == 0
    assert main([*common, "--name", "graphed", "--cuda_graph"]) == 0
    a = load_checkpoint(latest_checkpoint(tmp_path / "eager" / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "graphed" / "checkpoints"))
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=1e-8, atol=1e-10)
    assert "CUDA graphs: training batches padded" in (tmp_path / "graphed" / "train.log").read_text()


def test_calculator_with_cuda_graphs_gives_the_eager_results(shared_data):
    """``GauntCalculator(..., cuda_graph=True)`` over molecules, a larger one (a new capture) and a periodic cell
    with stress: the eager calculator's energies, per-atom energies, forces and stress."""
    import ase.io
    from ase.build import bulk

    from gaunt_tp.calculator import GauntCalculator

    config = ModelConfig(atomic_numbers=(1, 6, 8), e0s=(-1.0, -2.0, -3.0), r_max=4.0, max_ell=2, num_channels=8,
                         max_L=1, avg_num_neighbors=6.0)  # fmt: skip
    torch.manual_seed(0)
    model = GauntMACE(config)
    eager = GauntCalculator(model, device="cuda")
    graphed = GauntCalculator(model, device="cuda", cuda_graph=True)
    frames = ase.io.read(shared_data / "ethanol" / "train.xyz", index=":4")
    frames.append(frames[0] + frames[1].copy())  # two molecules on top of each other: more atoms and edges
    frames[-1].positions[9:] += 3.0
    frames.append(bulk("C", "diamond", a=3.57))
    for atoms in frames:
        results = []
        for calc in (eager, graphed):
            atoms.calc = calc
            props = [atoms.get_potential_energy(), atoms.get_potential_energies(), atoms.get_forces()]
            if atoms.pbc.all():
                props.append(atoms.get_stress())
            results.append(props)
        for a, b in zip(*results):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10)
    assert graphed.graphed.captures >= 2
