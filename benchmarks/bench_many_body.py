"""Many-body block: GauntManyBody and gaunt-tp's SymmetricContraction against mace-torch's, side by side in one run.

MACE's shape: node features with degrees 0..lmax_in (natural parity), C channels, outputs
0..lmax_out, correlation nu, N nodes of num_elements elements, float32; forward,
forward+backward (gradient with respect to the node features and the weights), and force training
(the features' gradient with create_graph, then the gradient of a loss on it with respect to the
weights). Where gaunt-tp's C kernels build, the Gaunt block is also timed in PyTorch operations. gaunt-tp's
``SymmetricContraction`` spans MACE's function space (the Gaunt block a part of it), so it is the like-for-like one.

mace-torch pins e3nn 0.4.4, so run this in a separate environment that has mace-torch and
gaunt-tp (``pip install --no-deps -e .``), with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``:

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 /path/to/mace-venv/bin/python benchmarks/bench_many_body.py

Without mace-torch only gaunt-tp's blocks are timed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import bar_plot, write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

from gaunt_tp.nn import GauntManyBody, SymmetricContraction  # noqa: E402
from gaunt_tp.testing import natural_irreps  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmax-in", type=int, default=3)
    parser.add_argument("--lmax-out", type=int, default=2)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--correlation", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--elements", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="many_body_cpu", help="of the JSON and PNG files written")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    irreps_in, irreps_out = natural_irreps(args.lmax_in, args.channels), natural_irreps(args.lmax_out, args.channels)
    g = torch.Generator().manual_seed(0)
    species = torch.randint(0, args.elements, (args.nodes,), generator=g)
    contenders = {}
    for factors in (False, True):
        mb = GauntManyBody(
            irreps_in, irreps_out, correlation=args.correlation, num_elements=args.elements, factor_weights=factors
        )
        x = torch.randn(args.nodes, mb.irreps_in.dim, generator=g)
        contenders["gaunt+factors" if factors else "gaunt"] = (mb, (x, species))
    if contenders["gaunt"][0].use_kernel:  # the same block in PyTorch operations, for the C kernels' share
        eager = GauntManyBody(irreps_in, irreps_out, correlation=args.correlation, num_elements=args.elements)
        eager.use_kernel = False
        contenders["gaunt+factors (PyTorch)"] = (eager, contenders["gaunt+factors"][1])
    symmetric = SymmetricContraction(irreps_in, irreps_out, correlation=args.correlation, num_elements=args.elements)
    contenders["symmetric"] = (symmetric, contenders["gaunt"][1])  # MACE's function space, gaunt-tp's kernels
    try:
        from e3nn import o3
        from mace.modules.symmetric_contraction import SymmetricContraction as MaceSymmetricContraction
    except ImportError:
        print("mace-torch not importable: timing the Gaunt block only", file=sys.stderr)
    else:
        sc = MaceSymmetricContraction(
            o3.Irreps(irreps_in), o3.Irreps(irreps_out), correlation=args.correlation, num_elements=args.elements
        )
        # MACE's layout: [N, C, (lmax+1)^2] features and one-hot element attributes
        x_mace = torch.randn(args.nodes, args.channels, (args.lmax_in + 1) ** 2, generator=g)
        contenders["mace"] = (sc, (x_mace, torch.nn.functional.one_hot(species, args.elements).float()))

    def forward(mod, inputs):
        return lambda: mod(*inputs)

    def forward_backward(mod, inputs):
        x = inputs[0].clone().requires_grad_()
        params = [p for p in mod.parameters() if p.requires_grad]

        def step():
            out = mod(x, *inputs[1:])
            torch.autograd.grad(out.square().sum(), [x, *params])

        return step

    def force_training(mod, inputs):  # the features' gradient differentiated again, as in training on forces
        x = inputs[0].clone().requires_grad_()
        params = [p for p in mod.parameters() if p.requires_grad]

        def step():
            (grad,) = torch.autograd.grad(mod(x, *inputs[1:]).square().sum(), x, create_graph=True)
            torch.autograd.grad(grad.square().sum(), params)

        return step

    results = {}
    modes = (("forward", forward), ("forward_backward", forward_backward), ("force_training", force_training))
    for mode, make in modes:
        results[mode] = time_interleaved(
            {k: make(m, i) for k, (m, i) in contenders.items()},
            device=torch.device("cpu"),
            repeats=10,
            budget_s=args.budget,
            min_rounds=3,
            warmup=1,
        )
        line = ", ".join(f"{k} {v * 1e3:.4g} ms" for k, v in results[mode].items())
        if "mace" in results[mode]:
            line += " | " + ", ".join(
                f"mace/{k} {results[mode]['mace'] / v:.1f}x" for k, v in results[mode].items() if k != "mace"
            )
        print(f"{mode}: {line}", flush=True)
    report = {
        "benchmark": "many_body",
        **{k: v for k, v in vars(args).items() if k not in ("out", "name")},
        "torch": torch.__version__,
        "seconds": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    write_json(path, report)
    title = f"many-body block: lmax {args.lmax_in} -> {args.lmax_out}, C={args.channels}, N={args.nodes}, correlation {args.correlation}, CPU"
    bar_plot(results, path.with_suffix(".png"), title, baseline="mace" if "mace" in results["forward"] else None)
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
