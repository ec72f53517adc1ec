"""Cost of the parity-odd paths relative to the Gaunt product, side by side in one run.

For each lmax, natural-parity inputs with every degree <= lmax and C channels, N nodes:
- ``gaunt``: GauntTensorProduct to the natural-parity outputs (the even paths), auto backend;
- ``odd``: OddPathProduct to the pseudo-parity outputs 1e + 2o + ... (the odd paths);
- ``both``: GauntTensorProduct(odd_paths=True) to both;
- ``e3nn-odd``: e3nn's TensorProduct on the odd paths (same function), as the baseline.
Writes ``<out>/odd_product_cpu.json`` and ``.png``.

    python benchmarks/bench_odd_product.py
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

from gaunt_tp import GauntTensorProduct  # noqa: E402
from gaunt_tp.testing import E3nnGauntReference  # noqa: E402


def irreps(lmax: int, mul: int, pseudo: bool) -> str:
    def parity(l: int) -> str:
        natural = "e" if l % 2 == 0 else "o"
        return ("o" if natural == "e" else "e") if pseudo else natural

    start = 1 if pseudo else 0  # 0o is not reached by odd paths of natural inputs
    return " + ".join(f"{mul}x{l}{parity(l)}" for l in range(start, lmax + 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmax", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--nodes", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for lmax in args.lmax:
        nat, pse = irreps(lmax, args.channels, False), irreps(lmax, args.channels, True)
        both = f"{nat} + {pse}"
        gaunt = GauntTensorProduct(nat, nat, nat)
        odd = GauntTensorProduct(nat, nat, pse, odd_paths=True)
        full = GauntTensorProduct(nat, nat, both, odd_paths=True)
        ref = E3nnGauntReference(nat, nat, pse, odd_paths=True).float()
        x1, x2 = torch.randn(2, args.nodes, gaunt.irreps_in1.dim)
        err = float((odd(x1, x2) - ref(x1, x2)).abs().max() / ref(x1, x2).abs().max())
        if err > 1e-4:
            raise RuntimeError(f"odd product disagrees with e3nn at lmax {lmax}: {err:.1e}")
        t = time_interleaved(
            {
                "gaunt": lambda: gaunt(x1, x2),
                "odd": lambda: odd(x1, x2),
                "both": lambda: full(x1, x2),
                "e3nn-odd": lambda: ref(x1, x2),
            },
            device=torch.device("cpu"),
            repeats=30,
            budget_s=args.budget,
        )
        row = {
            "lmax": lmax,
            "seconds": t,
            "odd_over_gaunt": t["odd"] / t["gaunt"],
            "both_over_gaunt": t["both"] / t["gaunt"],
            "e3nn_over_odd": t["e3nn-odd"] / t["odd"],
        }
        rows.append(row)
        print(
            f"lmax {lmax}: "
            + " ".join(f"{k}={v * 1e3:.3g}ms" for k, v in t.items())
            + f" | odd/gaunt {row['odd_over_gaunt']:.2f}x, both/gaunt {row['both_over_gaunt']:.2f}x, e3nn/odd {row['e3nn_over_odd']:.1f}x",
            flush=True,
        )
    report = {
        "benchmark": "odd_product",
        "channels": args.channels,
        "nodes": args.nodes,
        "threads": args.threads,
        "dtype": "float32",
        "torch": torch.__version__,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "odd_product_cpu.json"
    write_json(path, report)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("gaunt", "odd", "both", "e3nn-odd"):
        ax.plot(
            [r["lmax"] for r in rows],
            [r["seconds"][key] * 1e3 for r in rows],
            marker="o",
            label=key,
            linestyle="--" if key.startswith("e3nn") else "-",
        )
    ax.set_yscale("log")
    ax.set_xlabel("lmax")
    ax.set_ylabel("forward time (ms, median)")
    ax.set_title(f"parity-odd paths vs Gaunt product\n(C={args.channels}, N={args.nodes}, float32, CPU)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
