"""Equivariant convolution: GauntConvolution against e3nn's 'uvu' TensorProduct + scatter-sum.

Node features, edge harmonics and outputs hold every degree <= lmax (natural parity),
C channels, N nodes, E edges (random senders and receivers, about E/N neighbours per
node), float32. e3nn computes the same function (the Gaunt paths, with the equivalent
per-path weights: ``gaunt_tp.testing.E3nnGauntConvolution``); outputs are compared
before timing. Modes: forward; forward+backward (gradients for node features, edge
vectors and radial weights); and force-style double backward (gradient of the summed
output with respect to the edge vectors with ``create_graph=True``, then backward of
a loss on it to the radial weights).

    python benchmarks/bench_convolution.py            # lmax 1..6, C=64, N=200, E=4000
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

from gaunt_tp.ops import GauntConvolution  # noqa: E402
from gaunt_tp.testing import E3nnGauntConvolution  # noqa: E402


def natural(lmax: int, mul: int) -> str:
    return " + ".join(f"{mul}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmax", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--edges", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--e3nn-rounds", type=int, default=3, help="fewest timed rounds (e3nn at lmax 6 takes seconds)")
    parser.add_argument(
        "--no-e3nn-backward-above",
        type=int,
        default=99,
        help="skip e3nn's backward modes above this lmax (they take minutes)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, args.nodes, (2, args.edges), generator=g)
    rows = []
    for lmax in args.lmax:
        node, sh = natural(lmax, args.channels), natural(lmax, 1)
        conv = GauntConvolution(node, sh, node)
        ref = E3nnGauntConvolution(node, sh, node).float()
        x = torch.randn(args.nodes, conv.irreps_node.dim, generator=g)
        vectors = torch.randn(args.edges, 3, generator=g)
        radial = torch.randn(args.edges, conv.weight_numel, generator=g)
        expected = ref(x, vectors, edge_index, radial)
        err = float((conv(x, vectors, edge_index, radial) - expected).abs().max() / expected.abs().max())
        if err > 1e-4:
            raise RuntimeError(f"GauntConvolution disagrees with e3nn at lmax {lmax}: {err:.1e}")

        def forward(mod):
            return lambda: mod(x, vectors, edge_index, radial)

        def backward(mod):
            xs, vs, rs = (t.clone().requires_grad_() for t in (x, vectors, radial))

            def step():
                out = mod(xs, vs, edge_index, rs)
                torch.autograd.grad(out.square().sum(), (xs, vs, rs))

            return step

        def double_backward(mod):
            vs, rs = vectors.clone().requires_grad_(), radial.clone().requires_grad_()

            def step():
                energy = mod(x, vs, edge_index, rs).sum()
                (forces,) = torch.autograd.grad(energy, vs, create_graph=True)
                torch.autograd.grad(forces.square().sum(), rs)

            return step

        times = {}
        for mode, make in (("forward", forward), ("forward_backward", backward), ("double_backward", double_backward)):
            fns = {"gaunt": make(conv)}
            if mode == "forward" or lmax <= args.no_e3nn_backward_above:
                fns["e3nn"] = make(ref)
            times[mode] = time_interleaved(
                fns, device=torch.device("cpu"), repeats=20, budget_s=args.budget, min_rounds=args.e3nn_rounds, warmup=1
            )
        row = {
            "lmax": lmax,
            "seconds": times,
            "speedup": {m: t["e3nn"] / t["gaunt"] for m, t in times.items() if "e3nn" in t},
        }
        rows.append(row)
        print(
            f"lmax {lmax}: "
            + "; ".join(
                f"{m}: gaunt {t['gaunt'] * 1e3:.3g} ms"
                + (f", e3nn {t['e3nn'] * 1e3:.4g} ms ({t['e3nn'] / t['gaunt']:.1f}x)" if "e3nn" in t else "")
                for m, t in times.items()
            ),
            flush=True,
        )
    report = {
        "benchmark": "convolution",
        "channels": args.channels,
        "nodes": args.nodes,
        "edges": args.edges,
        "threads": args.threads,
        "dtype": "float32",
        "torch": torch.__version__,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "convolution_cpu.json"
    write_json(path, report)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, mode in zip(axes, ("forward", "forward_backward", "double_backward")):
        for who, style in (("gaunt", "-"), ("e3nn", "--")):
            pts = [(r["lmax"], r["seconds"][mode][who]) for r in rows if who in r["seconds"][mode]]
            ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], style, marker="o", label=who)
        ax.set_yscale("log")
        ax.set_title(mode.replace("_", " "))
        ax.set_xlabel("lmax")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("time (ms, median)")
    axes[0].legend()
    fig.suptitle(
        f"convolution: C={args.channels}, N={args.nodes}, E={args.edges}, float32, CPU ({args.threads} threads)"
    )
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
