"""Equivariant convolution: GauntConvolution against e3nn's 'uvu' TensorProduct + scatter-sum.

Node features, edge harmonics and outputs hold every degree <= lmax (natural parity),
C channels, N nodes, E edges (random senders and receivers, about E/N neighbours per
node), float32. e3nn computes the same function (the Gaunt paths, with the equivalent
per-path weights: ``gaunt_tp.testing.E3nnGauntConvolution``); outputs are compared
before timing. Modes: forward; forward+backward (gradients for node features, edge
vectors and radial weights); and force-style double backward (gradient of the summed
output with respect to the edge vectors with ``create_graph=True``, then backward of
a loss on it to the radial weights). GauntConvolution is timed in both forms, "gaunt-grid"
and "gaunt-aligned" (edge-aligned, eSCN-style); ``auto`` in the output is the form that
``form="auto"`` picks for these sizes.

    python benchmarks/bench_convolution.py            # lmax 1..6, C=64, N=200, E=4000
    python benchmarks/bench_convolution.py --device cuda --cuequivariance uniform_1d

With ``--cuequivariance METHOD`` cuEquivariance's ``ChannelWiseTensorProduct`` (all paths to the
natural-parity outputs, which are exactly the Gaunt paths; fused gather of senders and scatter to
receivers, as MACE uses it) is timed as well; its per-path constants differ, so it is timed but not
compared number for number.
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
from gaunt_tp.testing import E3nnGauntConvolution, natural_irreps  # noqa: E402


def cuequivariance_convolution(node: str, sh: str, nodes: int, device: torch.device, method: str):
    """cuEquivariance's channel-wise convolution for these irreps, or None when it is not installed.

    Returns ``(fn, weight_numel)`` with ``fn(x, vectors, edge_index, weights)`` like the others.
    """
    try:
        import cuequivariance as cue
        import cuequivariance_torch as cuet
        from e3nn import o3
    except ImportError:
        return None
    irreps_node, irreps_sh = cue.Irreps("O3", node), cue.Irreps("O3", sh)
    tp = cuet.ChannelWiseTensorProduct(
        irreps_node,
        irreps_sh,
        filter_irreps_out=[ir for _, ir in irreps_node],
        layout=cue.ir_mul,
        shared_weights=False,
        internal_weights=False,
        device=device,
        dtype=torch.float32,
        method=None if method == "auto" else method,
    )
    ls = [ir.l for _, ir in irreps_sh]

    def fn(x, vectors, edge_index, weights):
        harmonics = o3.spherical_harmonics(ls, vectors, normalize=True)
        return tp(x, harmonics, weights, indices_1=edge_index[0], indices_out=edge_index[1], size_out=nodes)

    return fn, tp.weight_numel


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
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--cuequivariance",
        default="",
        metavar="METHOD",
        help="also time cuEquivariance (uniform_1d on GPUs, naive anywhere, auto: its default)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="", help="file stem (default convolution_<device type>)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, args.nodes, (2, args.edges), generator=g).to(device)
    rows = []
    for lmax in args.lmax:
        node, sh = natural_irreps(lmax, args.channels), natural_irreps(lmax, 1)
        convs = {
            f"gaunt-{form}": GauntConvolution(node, sh, node, form=form).to(device) for form in ("grid", "aligned")
        }
        auto = GauntConvolution(node, sh, node).form
        ref = E3nnGauntConvolution(node, sh, node).float().to(device)
        conv = convs["gaunt-grid"]
        x = torch.randn(args.nodes, conv.irreps_node.dim, generator=g).to(device)
        vectors = torch.randn(args.edges, 3, generator=g).to(device)
        radial = torch.randn(args.edges, conv.weight_numel, generator=g).to(device)
        expected = ref(x, vectors, edge_index, radial)
        contenders = {name: (c, radial) for name, c in convs.items()}
        contenders["e3nn"] = (ref, radial)
        if args.cuequivariance:
            made = cuequivariance_convolution(node, sh, args.nodes, device, args.cuequivariance)
            if made is None:
                raise SystemExit("--cuequivariance needs cuequivariance-torch installed")
            cue_fn, cue_numel = made
            cue_radial = torch.randn(args.edges, cue_numel, generator=g).to(device)
            cue_fn(x, vectors, edge_index, cue_radial)  # fails here, before timing, if the method is unsupported
            contenders["cuequivariance"] = (cue_fn, cue_radial)
        for name, c in convs.items():
            err = float((c(x, vectors, edge_index, radial) - expected).abs().max() / expected.abs().max())
            if err > 1e-4:
                raise RuntimeError(f"GauntConvolution ({name}) disagrees with e3nn at lmax {lmax}: {err:.1e}")

        def forward(mod, radial):
            return lambda: mod(x, vectors, edge_index, radial)

        def backward(mod, radial):
            xs, vs, rs = (t.clone().requires_grad_() for t in (x, vectors, radial))

            def step():
                out = mod(xs, vs, edge_index, rs)
                torch.autograd.grad(out.square().sum(), (xs, vs, rs))

            return step

        def double_backward(mod, radial):
            vs, rs = vectors.clone().requires_grad_(), radial.clone().requires_grad_()

            def step():
                energy = mod(x, vs, edge_index, rs).sum()
                (forces,) = torch.autograd.grad(energy, vs, create_graph=True)
                torch.autograd.grad(forces.square().sum(), rs)

            return step

        times = {}
        for mode, make in (("forward", forward), ("forward_backward", backward), ("double_backward", double_backward)):
            fns = {
                who: make(*c)
                for who, c in contenders.items()
                if who != "e3nn" or mode == "forward" or lmax <= args.no_e3nn_backward_above
            }
            times[mode] = time_interleaved(
                fns, device=device, repeats=20, budget_s=args.budget, min_rounds=args.e3nn_rounds, warmup=1
            )
        picked = f"gaunt-{auto}"
        row = {
            "lmax": lmax,
            "auto": auto,
            "seconds": times,
            "speedup": {m: t["e3nn"] / t[picked] for m, t in times.items() if "e3nn" in t},
        }
        if args.cuequivariance:
            row["speedup_vs_cuequivariance"] = {m: t["cuequivariance"] / t[picked] for m, t in times.items()}
        rows.append(row)
        print(
            f"lmax {lmax} (auto: {auto}): "
            + "; ".join(
                f"{m}: grid {t['gaunt-grid'] * 1e3:.3g} ms, aligned {t['gaunt-aligned'] * 1e3:.3g} ms"
                + "".join(
                    f", {who} {t[who] * 1e3:.4g} ms ({t[who] / t[picked]:.2g}x auto)"
                    for who in ("e3nn", "cuequivariance")
                    if who in t
                )
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
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cuequivariance_method": args.cuequivariance or None,
        "dtype": "float32",
        "torch": torch.__version__,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name or 'convolution_' + device.type}.json"
    write_json(path, report)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, mode in zip(axes, ("forward", "forward_backward", "double_backward")):
        for who, style in (("gaunt-grid", "-"), ("gaunt-aligned", "-."), ("e3nn", "--"), ("cuequivariance", ":")):
            pts = [(r["lmax"], r["seconds"][mode][who]) for r in rows if who in r["seconds"][mode]]
            if not pts:  # not timed in this run (cuequivariance without a GPU): no empty legend entry
                continue
            ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], style, marker="o", label=who)
        ax.set_yscale("log")
        ax.set_title(mode.replace("_", " "))
        ax.set_xlabel("lmax")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("time (ms, median)")
    axes[0].legend()
    fig.suptitle(
        f"convolution: C={args.channels}, N={args.nodes}, E={args.edges}, float32, "
        + (report["device_name"] if device.type == "cuda" else f"CPU ({args.threads} threads)")
    )
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
