"""Cost of GauntMACE's options, side by side in one run: edge chunks, many-body products, radial weights.

The model of ``bench_potential.py`` (64 channels, max_ell 3, correlation 3, 2 interactions, H C N O),
timed on its three tasks (a training step on five 3BPA molecules, an MD step of one molecule, an MD
step of 999 atoms in a periodic box) in these variants, interleaved:

- ``default``: one many-body product;
- ``num_products=4``: four many-body products summed;
- ``radial_per_input``: radial weights per input irrep, edge degree and channel.

Writes ``model_options_<dtype>.json``. (Edge chunks, timed here until stop 46, apply to the PyTorch form alone: the
CPU's C kernels ignore them; ``bench_edge_chunk.py`` times them on that form.)

    python benchmarks/bench_model_options.py --max_L 1 --dtype float64
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import ase.io
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_potential import box_of_molecules, gaunt_runner  # noqa: E402
from report import bar_plot, write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

from gaunt_tp.dtypes import DTYPES, torch_dtype  # noqa: E402

VARIANTS = {
    "default": {},
    "num_products=4": {"num_products": 4},
    "radial_per_input": {"radial_per_input": True},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/3bpa/train_300K.xyz")
    parser.add_argument("--max_L", type=int, default=1)
    parser.add_argument("--dtype", default="float64", choices=DTYPES)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget", type=float, default=15.0, help="seconds of timing per task")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch_dtype(args.dtype)
    torch.set_default_dtype(dtype)
    frames = ase.io.read(args.data, index=":5")
    big = box_of_molecules(frames[0], 37, np.random.default_rng(0))
    systems = {"train_step": frames, "md_3bpa": [frames[0]], "md_1000": [big]}
    runners = {name: gaunt_runner(systems, args.max_L, dtype, **kw) for name, kw in VARIANTS.items()}
    results = {}
    for task in systems:
        t = time_interleaved(
            {name: r[task] for name, r in runners.items()},
            device=torch.device("cpu"),
            repeats=20,
            budget_s=args.budget,
            min_rounds=3,
        )
        results[task] = {"seconds": t, "relative_to_default": {k: v / t["default"] for k, v in t.items()}}
        print(
            f"{task}: " + ", ".join(f"{k} {v * 1e3:.4g} ms ({v / t['default']:.2f}x)" for k, v in t.items()), flush=True
        )
    report = {"max_L": args.max_L, "dtype": args.dtype, "threads": args.threads, "torch": torch.__version__,
              "results": results}  # fmt: skip
    path = args.out / f"model_options_{args.dtype}.json"
    write_json(path, report)
    title = f"GauntMACE options, max_L {args.max_L}, {args.dtype}, CPU ({args.threads} threads)"
    bar_plot({task: r["seconds"] for task, r in results.items()}, path.with_suffix(".png"), title, baseline="default")
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
