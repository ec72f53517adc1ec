"""How launch-bound is the Gaunt product on a GPU? Eager forward against the replay of a captured CUDA graph.

The same forward product (inputs and output of every degree <= lmax, natural parity, C channels, N
nodes, float32, no autograd) is timed eagerly and as a CUDA graph replay, beside e3nn's TensorProduct
computing the same function; the replayed output is checked against the eager one.

    python benchmarks/bench_graph_replay.py --lmax 4 6 8 --nodes 4096
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import bar_plot, write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

from gaunt_tp import GauntTensorProduct  # noqa: E402
from gaunt_tp.testing import E3nnGauntReference, natural_irreps  # noqa: E402


def captured(fn, *args):
    """A CUDA graph of ``fn(*args)`` on static inputs: returns (replay, static output)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as graph capture requires
            fn(*args)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(*args)
    return graph.replay, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmax", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--nodes", type=int, default=4096)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    device = torch.device("cuda")
    rows = []
    with torch.no_grad():
        for lmax in args.lmax:
            irreps = natural_irreps(lmax, args.channels)
            tp = GauntTensorProduct(irreps, irreps, irreps).to(device)
            ref = E3nnGauntReference(irreps, irreps, irreps).to(device=device, dtype=torch.float32)
            x1, x2 = torch.randn(2, args.nodes, tp.irreps_in1.dim, device=device)
            eager = tp(x1, x2)
            replay, static_out = captured(tp, x1, x2)
            replay()
            torch.cuda.synchronize()
            err = float((static_out - eager).abs().max() / eager.abs().max())
            if err > 1e-5:
                raise RuntimeError(f"graph replay disagrees with eager at lmax {lmax}: {err:.1e}")
            times = time_interleaved(
                {"eager": lambda: tp(x1, x2), "graph": replay, "e3nn": lambda: ref(x1, x2)},
                device=device,
                repeats=50,
                budget_s=args.budget,
            )
            row = {"lmax": lmax, "backend": tp.backend, "seconds": times,
                   "e3nn_over_eager": times["e3nn"] / times["eager"], "e3nn_over_graph": times["e3nn"] / times["graph"]}  # fmt: skip
            rows.append(row)
            print(
                f"lmax {lmax} [{tp.backend}]: eager {times['eager'] * 1e3:.3g} ms, graph {times['graph'] * 1e3:.3g} ms, "
                f"e3nn {times['e3nn'] * 1e3:.3g} ms; e3nn/eager {row['e3nn_over_eager']:.1f}x, "
                f"e3nn/graph {row['e3nn_over_graph']:.1f}x",
                flush=True,
            )
    report = {"benchmark": "graph_replay", "device_name": torch.cuda.get_device_name(device),
              "channels": args.channels, "nodes": args.nodes, "dtype": "float32", "torch": torch.__version__,
              "results": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "graph_replay_cuda.json"
    write_json(path, report)
    groups = {f"lmax {r['lmax']} [{r['backend']}]": r["seconds"] for r in rows}
    title = f"Gaunt product, eager vs CUDA graph replay: C={args.channels}, N={args.nodes}, {report['device_name']}"
    bar_plot(groups, path.with_suffix(".png"), title, baseline="e3nn")
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
