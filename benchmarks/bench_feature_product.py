"""Feature products x (x) y: gaunt-tp backends against e3nn's TensorProduct, side by side in one run.

For each lmax, both inputs and the output hold every degree <= lmax with natural parity
(0e + 1o + 2e + ...), C channels, N nodes. Every contender computes the same function
(e3nn's 'uuu' TensorProduct with the Gaunt path weights). Times are medians of
interleaved runs with the first calls excluded; on a GPU they use CUDA events.

Writes ``<out>/feature_product_<device>.json`` and ``.png`` and prints a table.

    python benchmarks/bench_feature_product.py                  # CPU, lmax 1..8
    python benchmarks/bench_feature_product.py --device cuda    # GPU (adds cuEquivariance if installed)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402
from timing import matmul_rate, time_interleaved  # noqa: E402

from gaunt_tp import GauntTensorProduct  # noqa: E402
from gaunt_tp.dtypes import DTYPES, torch_dtype  # noqa: E402
from gaunt_tp.ops import BACKENDS  # noqa: E402
from gaunt_tp.ops.fft import FourierGaunt  # noqa: E402
from gaunt_tp.testing import E3nnGauntReference, natural_irreps  # noqa: E402


def cuequivariance_product(irreps: str, dtype: torch.dtype, method: str):
    """cuEquivariance computing the same paths (all l1 x l2 -> l3 of natural parity, channel by channel).

    Built as a segmented polynomial ``iu,ju,ku+ijk`` with cuEquivariance's own Clebsch-Gordan
    coefficients in its ``ir_mul`` layout: the same paths, sizes and flops as the Gaunt product,
    with other per-path constants, so it is timed but not compared number for number.
    Returns None when cuequivariance-torch is not installed.
    """
    try:
        import cuequivariance as cue
        import cuequivariance_torch as cuet
    except ImportError:
        return None
    group_irreps = cue.Irreps("O3", irreps)
    d = cue.SegmentedTensorProduct.from_subscripts("iu,ju,ku+ijk")
    for mul, ir in group_irreps:
        d.add_segment(0, (ir.dim, mul))
        d.add_segment(1, (ir.dim, mul))
        d.add_segment(2, (ir.dim, mul))
    for i1, (_, ir1) in enumerate(group_irreps):
        for i2, (_, ir2) in enumerate(group_irreps):
            for i3, (_, ir3) in enumerate(group_irreps):
                if ir3 in ir1 * ir2:
                    for cg in cue.O3.clebsch_gordan(ir1, ir2, ir3):
                        d.add_path(i1, i2, i3, c=cg)
    d = d.normalize_paths_for_operand(-1)
    module = cuet.SegmentedPolynomial(cue.SegmentedPolynomial.eval_last_operand(d), method=method, math_dtype=dtype)

    def product(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return module([x1, x2])[0]

    return product


def peak_forward_memory(fn, device: torch.device) -> tuple[float, float]:
    """(peak bytes allocated above the start, largest single allocation) during one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - start
        return float(peak), float("nan")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # each op's own allocations minus frees, and '[memory]' events for frees outside ops, in time order
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    current = peak = largest = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
        largest = max(largest, e.self_cpu_memory_usage)
    return float(peak), float(largest)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    dtype = torch_dtype(args.dtype)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    rate = matmul_rate(device, dtype)
    results = []
    for lmax in args.lmax:
        irreps = natural_irreps(lmax, args.channels)
        gen = torch.Generator(device="cpu").manual_seed(lmax)
        dim = (lmax + 1) ** 2 * args.channels
        x1 = torch.randn(args.nodes, dim, generator=gen).to(device=device, dtype=dtype)
        x2 = torch.randn(args.nodes, dim, generator=gen).to(device=device, dtype=dtype)
        cot = torch.randn(args.nodes, dim, generator=gen).to(device=device, dtype=dtype)
        modules: dict[str, object] = {}
        for name in (*BACKENDS, "auto"):
            if name == "fused" and device.type != "cpu":
                continue  # a CPU kernel
            modules[f"gaunt-{name}"] = GauntTensorProduct(irreps, irreps, irreps, backend=name).to(device)
        if device.type == "cpu" and modules["gaunt-fft"].impls["fft"].use_kernel:
            # the fft backend runs the fused kernel on CPUs; time its PyTorch path beside it
            eager_fft = GauntTensorProduct(irreps, irreps, irreps, backend="fft")
            eager_fft.impls["fft"] = FourierGaunt(eager_fft.descriptor, fused=False)
            modules["gaunt-fft-pytorch"] = eager_fft
        if lmax <= args.e3nn_lmax:
            modules["e3nn"] = E3nnGauntReference(irreps, irreps, irreps).to(device=device, dtype=dtype)
        if args.cuequivariance:
            cue_product = cuequivariance_product(irreps, dtype, args.cuequivariance)
            if cue_product is None:
                raise SystemExit("--cuequivariance needs cuequivariance-torch installed")
            modules["cuequivariance"] = cue_product
        # correctness first: every contender against the dense oracle on this very input
        reference = modules["gaunt-dense"](x1, x2)
        for name, mod in modules.items():
            if name == "cuequivariance":
                continue
            err = float((mod(x1, x2) - reference).abs().max() / reference.abs().max())
            if err > (1e-4 if dtype == torch.float32 else 1e-10):
                raise RuntimeError(f"{name} disagrees with the dense oracle at lmax {lmax}: {err:.2e}")

        def forward(mod=None):
            return lambda: mod(x1, x2)

        def forward_backward(mod=None):
            a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()

            def step():
                out = mod(a, b)
                torch.autograd.grad(out, (a, b), cot)

            return step

        fwd = time_interleaved(
            {n: forward(m) for n, m in modules.items()}, device=device, repeats=args.repeats, budget_s=args.budget
        )
        fwd_bwd = time_interleaved(
            {n: forward_backward(m) for n, m in modules.items()},
            device=device,
            repeats=args.repeats,
            budget_s=args.budget,
        )
        auto = modules["gaunt-auto"]
        auto(x1, x2)
        chosen = auto.backend
        products = args.nodes * args.channels
        flops = auto.impls[chosen].flops(products)
        peak, largest = peak_forward_memory(forward(auto), device)
        points = getattr(auto.impls[chosen], "points", 0)
        row = {
            "lmax": lmax,
            "auto_backend": chosen,
            "forward_s": fwd,
            "forward_backward_s": fwd_bwd,
            "auto_flops": flops,
            "auto_flop_rate": flops / fwd["gaunt-auto"],
            "auto_fraction_of_matmul_rate": flops / fwd["gaunt-auto"] / rate,
            "auto_peak_forward_bytes": peak,
            "auto_largest_allocation_bytes": largest,
            "bound_bytes": products * points * torch.finfo(dtype).bits // 8,
        }
        if "e3nn" in fwd:
            row["speedup_forward"] = fwd["e3nn"] / fwd["gaunt-auto"]
            row["speedup_forward_backward"] = fwd_bwd["e3nn"] / fwd_bwd["gaunt-auto"]
        results.append(row)
        print_row(row)
    return {
        "benchmark": "feature_product",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "channels": args.channels,
        "nodes": args.nodes,
        "matmul_flop_rate": rate,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "results": results,
    }


def print_row(row: dict) -> None:
    f, fb = row["forward_s"], row["forward_backward_s"]
    cols = " ".join(f"{k}={v * 1e3:.3g}ms" for k, v in f.items())
    sp = (
        f" | e3nn/auto fwd {row['speedup_forward']:.1f}x fwd+bwd {row['speedup_forward_backward']:.1f}x"
        if "speedup_forward" in row
        else ""
    )
    print(f"lmax {row['lmax']} [{row['auto_backend']}] fwd: {cols}{sp}", flush=True)
    del fb


def table(report: dict) -> str:
    names = list(report["results"][0]["forward_s"])
    lines = [
        "| lmax | auto | "
        + " | ".join(f"{n} fwd / fwd+bwd (ms)" for n in names)
        + " | e3nn/auto fwd | e3nn/auto fwd+bwd | auto GFLOP/s (% of matmul) | peak fwd MiB (largest / bound) |"
    ]
    lines.append("|" + "---|" * (len(names) + 6))
    for r in report["results"]:
        cells = []
        for n in names:
            if n in r["forward_s"]:
                cells.append(f"{r['forward_s'][n] * 1e3:.3g} / {r['forward_backward_s'][n] * 1e3:.3g}")
            else:
                cells.append("-")
        sp = (
            (f"{r['speedup_forward']:.1f}x", f"{r['speedup_forward_backward']:.1f}x")
            if "speedup_forward" in r
            else ("-", "-")
        )
        mib = 2**20
        lines.append(
            f"| {r['lmax']} | {r['auto_backend']} | "
            + " | ".join(cells)
            + f" | {sp[0]} | {sp[1]} | {r['auto_flop_rate'] / 1e9:.0f} ({100 * r['auto_fraction_of_matmul_rate']:.0f}%)"
            + f" | {r['auto_peak_forward_bytes'] / mib:.2f} ({r['auto_largest_allocation_bytes'] / mib:.2f} / {r['bound_bytes'] / mib:.2f}) |"
        )
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in zip(axes, ("forward_s", "forward_backward_s"), ("forward", "forward + backward")):
        names = list(report["results"][0][key])
        for n in names:
            pts = [(r["lmax"], r[key][n]) for r in report["results"] if n in r[key]]
            ax.plot(
                [p[0] for p in pts],
                [p[1] * 1e3 for p in pts],
                marker="o",
                label=n,
                linestyle="--" if not n.startswith("gaunt") else "-",
            )
        ax.set_yscale("log")
        ax.set_xlabel("lmax (inputs and output)")
        ax.set_title(f"{title}: C={report['channels']}, N={report['nodes']}, {report['dtype']}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("time per call (ms, median)")
    axes[1].legend(fontsize=8)
    fig.suptitle(
        f"Gaunt feature product vs e3nn on {report['device_name']} ({report['device']}, {report['threads']} threads)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--lmax", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--nodes", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--budget", type=float, default=8.0, help="seconds of timing per lmax and mode")
    parser.add_argument("--e3nn-lmax", type=int, default=8, help="largest lmax at which e3nn is timed")
    parser.add_argument(
        "--cuequivariance",
        default="",
        metavar="METHOD",
        help="also time cuEquivariance with this method (uniform_1d on GPUs, naive anywhere)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="", help="file stem (default feature_product_<device type>)")
    args = parser.parse_args(argv)
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / (args.name or f"feature_product_{torch.device(args.device).type}")
    write_json(stem.with_suffix(".json"), report)
    plot(report, stem.with_suffix(".png"))
    print()
    print(table(report))
    print(f"\nmatmul rate: {report['matmul_flop_rate'] / 1e9:.0f} GFLOP/s; wrote {stem}.json and {stem}.png")


if __name__ == "__main__":
    main()
