"""The C kernels against the PyTorch code they replace, side by side in one run (CPU, float32).

- ``product``: the Gaunt feature product x (x) y (every degree <= lmax, C channels, N nodes),
  forward: the eager ``grid`` backend and the ``fused`` kernel with 2, 4 and 8 parity parts
  (the mirror groups y; y, x; x, y, z), and the number the cost rule picks.
- ``convolution``: ``GauntConvolution`` on a random graph (node features 0e + 1o, edge degrees
  0..3, outputs 0..3, like GauntMACE at max_L 1), with ``use_kernel`` False (PyTorch, edge chunks)
  and True: forward without gradients, an MD-style force (forward and gradient to the positions),
  and a force-training step (force with ``create_graph``, then backward of a loss on it).

Writes ``<out>/kernels_cpu.json`` and ``.png`` and prints the medians.

    python benchmarks/bench_kernels.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

import gaunt_tp.ops.fused as fused  # noqa: E402
from gaunt_tp import GauntTensorProduct  # noqa: E402
from gaunt_tp.ops import GauntConvolution  # noqa: E402
from gaunt_tp.testing import natural_irreps  # noqa: E402

GROUPS = {2: (1,), 4: (1, 0), 8: (0, 1, 2)}


def product_contenders(lmax: int, channels: int, nodes: int) -> tuple[dict, int]:
    irreps = natural_irreps(lmax, channels)
    x1, x2 = torch.randn(2, nodes, (lmax + 1) ** 2 * channels)
    contenders = {"eager grid": GauntTensorProduct(irreps, irreps, irreps, backend="grid")}
    default = fused._REFLECTION_GROUPS
    try:
        for parts, axes in GROUPS.items():
            fused._REFLECTION_GROUPS = (axes,)
            contenders[f"fused, {parts} parts"] = GauntTensorProduct(irreps, irreps, irreps, backend="fused")
    finally:
        fused._REFLECTION_GROUPS = default
    picked = GauntTensorProduct(irreps, irreps, irreps, backend="fused").impls["fused"].plan.parts
    reference = contenders["eager grid"](x1, x2)
    for name, tp in contenders.items():
        err = float((tp(x1, x2) - reference).abs().max() / reference.abs().max())
        if err > 1e-4:
            raise RuntimeError(f"{name} disagrees with the grid backend at lmax {lmax}: {err:.1e}")
    return {name: (lambda tp=tp: tp(x1, x2)) for name, tp in contenders.items()}, picked


def convolution_tasks(nodes: int, edges: int, channels: int) -> dict:
    conv = GauntConvolution(f"{channels}x0e + {channels}x1o", "0e + 1o + 2e + 3o", natural_irreps(3, channels))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(nodes, conv.irreps_node.dim, generator=gen)
    pos0 = torch.randn(nodes, 3, generator=gen) * 3
    index = torch.randint(0, nodes, (2, edges), generator=gen)
    radial = torch.nn.Linear(1, conv.weight_numel)

    def run(kind: str, use_kernel: bool) -> None:
        conv.use_kernel = use_kernel
        pos = pos0.clone().requires_grad_(kind != "forward")
        with torch.set_grad_enabled(kind != "forward"):
            vectors = pos[index[1]] - pos[index[0]]
            out = conv(x, vectors, index, torch.sin(radial(vectors.norm(dim=-1, keepdim=True))))
            if kind == "forward":
                return
            energy = out.square().sum()
            (force,) = torch.autograd.grad(energy, pos, create_graph=kind == "training step")
            if kind == "training step":
                (force.square().sum() + energy).backward()

    return {
        kind: {label: (lambda kind=kind, k=k: run(kind, k)) for label, k in (("PyTorch", False), ("kernels", True))}
        for kind in ("forward", "MD force", "training step")
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmax", type=int, nargs="+", default=[3, 6, 8])
    parser.add_argument("--channels", type=int, default=32, help="channels of the feature product")
    parser.add_argument("--nodes", type=int, default=128, help="nodes of the feature product")
    parser.add_argument("--graph", type=int, nargs=2, default=[135, 2242], help="convolution nodes and edges")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    products = []
    for lmax in args.lmax:
        fns, picked = product_contenders(lmax, args.channels, args.nodes)
        t = time_interleaved(fns, device=torch.device("cpu"), repeats=40, budget_s=args.budget)
        products.append({"lmax": lmax, "picked_parts": picked, "seconds": t})
        print(f"product lmax {lmax} (rule picks {picked} parts): "
              + ", ".join(f"{k} {v * 1e3:.3g} ms" for k, v in t.items()), flush=True)  # fmt: skip
    convolution = {}
    for kind, fns in convolution_tasks(*args.graph, 64).items():
        t = time_interleaved(fns, device=torch.device("cpu"), repeats=15, budget_s=args.budget)
        convolution[kind] = t
        print(f"convolution {kind}: PyTorch {t['PyTorch'] * 1e3:.3g} ms, kernels {t['kernels'] * 1e3:.3g} ms "
              f"({t['PyTorch'] / t['kernels']:.2f}x)", flush=True)  # fmt: skip
    report = {
        "benchmark": "kernels",
        "threads": args.threads,
        "dtype": "float32",
        "product": {"channels": args.channels, "nodes": args.nodes, "results": products},
        "convolution": {"nodes": args.graph[0], "edges": args.graph[1], "channels": 64, "seconds": convolution},
        "torch": torch.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "kernels_cpu.json"
    write_json(path, report)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in products[0]["seconds"]:
        left.plot(args.lmax, [r["seconds"][name] * 1e3 for r in products], marker="o", label=name)
    left.set_yscale("log")
    left.set_xlabel("lmax")
    left.set_ylabel("forward (ms, median)")
    left.set_title(f"feature product, C={args.channels}, N={args.nodes}")
    left.legend()
    kinds = list(convolution)
    for offset, label in ((-0.2, "PyTorch"), (0.2, "kernels")):
        right.bar(
            [i + offset for i in range(len(kinds))], [convolution[k][label] * 1e3 for k in kinds], 0.4, label=label
        )
    right.set_xticks(range(len(kinds)), kinds)
    right.set_ylabel("ms (median)")
    right.set_title(f"convolution, {args.graph[0]} nodes, {args.graph[1]} edges, 64 channels")
    right.legend()
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
