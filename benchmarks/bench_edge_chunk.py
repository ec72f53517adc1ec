"""Edge-chunk size of the grid convolution: time against chunk size, and where ``edge_chunk=None`` lands.

The grid form of ``GauntConvolution`` works on ``[chunk, C, P]`` buffers. Large chunks leave the
caches and, above glibc's mmap threshold (32 MiB), are page-faulted in afresh on every call; tiny
chunks pay per-launch overhead. This sweeps fixed chunk sizes and the automatic choice
(``gaunt_tp.ops.convolution_cost.auto_edge_chunk``; it picks larger chunks when gradients are recorded),
forward (no grad) and forward+backward, timed
round-robin in one run; writes JSON and a plot (time vs chunk size, one line per lmax). Chunks belong to the
PyTorch form (what GPUs and machines without a C compiler run): the CPU's C kernel keeps no per-edge buffers and
ignores ``edge_chunk``, so it is switched off here (``gaunt_tp.testing.pytorch_path``).

    python benchmarks/bench_edge_chunk.py                 # lmax 1 3 6, C = 64, N = 200, E = 4000
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

from gaunt_tp.dtypes import DTYPES, torch_dtype  # noqa: E402
from gaunt_tp.ops import GauntConvolution  # noqa: E402
from gaunt_tp.ops.convolution_cost import auto_edge_chunk  # noqa: E402
from gaunt_tp.testing import natural_irreps, pytorch_path  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmax", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--chunks", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--edges", type=int, default=4000)
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=float, default=6.0, help="seconds of timing per lmax and mode")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch_dtype(args.dtype)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for lmax in args.lmax:
        c = args.channels
        irreps = natural_irreps(lmax, c)
        convs = {
            f"chunk {k}": GauntConvolution(irreps, natural_irreps(lmax, 1), irreps, edge_chunk=k) for k in args.chunks
        }
        convs["auto"] = GauntConvolution(irreps, natural_irreps(lmax, 1), irreps)
        for conv in convs.values():  # the PyTorch form, whose chunks these are (the C kernel takes none)
            pytorch_path(conv)
        ref = convs["auto"]
        if ref.form != "grid":
            raise SystemExit(f"lmax {lmax}: form='auto' picked {ref.form}; this benchmark times the grid form")
        x = torch.randn(args.nodes, ref.irreps_node.dim, generator=gen, dtype=dtype).requires_grad_()
        vec = torch.randn(args.edges, 3, generator=gen, dtype=dtype).requires_grad_()
        edges = torch.randint(0, args.nodes, (2, args.edges), generator=gen)
        radial = torch.randn(args.edges, ref.weight_numel, generator=gen, dtype=dtype).requires_grad_()

        def forward(conv: GauntConvolution):
            def run():
                with torch.no_grad():
                    return conv(x, vec, edges, radial)

            return run

        def forward_backward(conv: GauntConvolution):
            return lambda: conv(x, vec, edges, radial).square().sum().backward()

        fwd = time_interleaved(
            {k: forward(m) for k, m in convs.items()}, device=torch.device("cpu"), budget_s=args.budget
        )
        fb = time_interleaved(
            {k: forward_backward(m) for k, m in convs.items()}, device=torch.device("cpu"), budget_s=args.budget
        )
        auto = auto_edge_chunk(c * ref.grid.size, x.element_size(), "cpu")
        auto_grad = auto_edge_chunk(c * ref.grid.size, x.element_size(), "cpu", args.nodes)
        row = {
            "lmax": lmax,
            "grid_points": ref.grid.size,
            "auto_chunk_edges": {"forward_ms": auto, "forward_backward_ms": auto_grad},  # keyed by the mode
            "forward_ms": {k: v * 1e3 for k, v in fwd.items()},
            "forward_backward_ms": {k: v * 1e3 for k, v in fb.items()},
        }
        rows.append(row)
        best = min(args.chunks, key=lambda k: fb[f"chunk {k}"])
        print(
            f"lmax {lmax} (P = {ref.grid.size}, auto chunk {auto} / {auto_grad} with gradients): forward "
            + " ".join(f"{k}:{fwd[f'chunk {k}'] * 1e3:.1f}" for k in args.chunks)
            + f" auto:{fwd['auto'] * 1e3:.1f} ms | forward+backward "
            + " ".join(f"{k}:{fb[f'chunk {k}'] * 1e3:.1f}" for k in args.chunks)
            + f" auto:{fb['auto'] * 1e3:.1f} ms (fastest fixed: {best})",
            flush=True,
        )
    report = {
        "benchmark": "edge_chunk",
        "dtype": args.dtype,
        "threads": args.threads,
        "channels": args.channels,
        "nodes": args.nodes,
        "edges": args.edges,
        "torch": torch.__version__,
        "results": rows,
    }
    out = args.out / f"edge_chunk_cpu_{args.dtype}.json"
    write_json(out, report)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"wrote {out} (matplotlib missing: no plot)")
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, key, title in zip(axes, ("forward_ms", "forward_backward_ms"), ("forward", "forward+backward")):
        for row in rows:
            (line,) = ax.plot(
                args.chunks, [row[key][f"chunk {k}"] for k in args.chunks], "o-", label=f"lmax {row['lmax']}"
            )
            ax.plot([row["auto_chunk_edges"][key]], [row[key]["auto"]], "*", ms=14, color=line.get_color())
        ax.set(xscale="log", yscale="log", xlabel="edges per chunk", ylabel="ms", title=f"{title} (star: auto)")
        ax.legend()
    fig.suptitle(f"GauntConvolution grid form (PyTorch), C = {args.channels}, {args.edges} edges, {args.dtype}, CPU")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
