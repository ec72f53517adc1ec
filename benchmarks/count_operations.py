"""PyTorch operations dispatched per call of GauntMACE, the models of ``bench_potential.py``.

On molecules of tens of atoms a model call is mostly many small operations (each microseconds of
dispatch and autograd bookkeeping), so their number is a machine-independent measure of that overhead,
where timings on a shared 2-core machine vary by tens of percent. Counted with a ``TorchDispatchMode``
(every ATen operation that reaches dispatch, forward and backward, the C kernels' calls excluded), one
call after a warm-up call, per variant and max_L, for a training step on 5 3BPA molecules and MD steps (energy
and forces) of one molecule and of a periodic box of 37 (999 atoms):

    python benchmarks/count_operations.py --max_L 1 2 --variants symmetric+cg symmetric+cg-paths

``--pytorch_path`` counts the PyTorch code that GPUs run (the C kernels off); ``--gpu_chunks`` gives the grid
convolution the edge chunks it takes on a GPU (``auto_edge_chunk``'s CUDA rule), ``--edge_chunk N`` fixed ones:

    python benchmarks/count_operations.py --max_L 2 --variants gaunt --pytorch_path --edge_chunk 1024
    python benchmarks/count_operations.py --max_L 2 --variants gaunt --pytorch_path --gpu_chunks
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import ase.io
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_potential import VARIANTS, box_of_molecules, gaunt_runner  # noqa: E402
from report import write_json  # noqa: E402

import gaunt_tp.ops.convolution  # noqa: E402
from gaunt_tp.dtypes import DTYPES, torch_dtype  # noqa: E402


class _Count(TorchDispatchMode):
    """Counts the operations dispatched while active, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def count(fn) -> collections.Counter[str]:  # noqa: ANN001
    """Operations of one call of ``fn`` (after one call to warm caches)."""
    fn()
    with _Count() as counter:
        fn()
    return counter.counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/3bpa/train_300K.xyz")
    parser.add_argument("--max_L", type=int, nargs="+", default=[1])
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--variants", nargs="+", default=["symmetric+cg", "symmetric+cg-paths"], choices=list(VARIANTS))
    parser.add_argument("--pytorch_path", action="store_true", help="the C kernels off: the code GPUs run")
    chunks = parser.add_mutually_exclusive_group()
    chunks.add_argument("--edge_chunk", type=int, default=None, help="fixed edge chunks of the grid convolution")
    chunks.add_argument("--gpu_chunks", action="store_true", help="the edge chunks the convolution takes on a GPU")
    parser.add_argument("--name", default="operation_counts", help="output file stem")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    dtype = torch_dtype(args.dtype)
    frames = ase.io.read(args.data, index=":5")
    big = box_of_molecules(frames[0], 37, np.random.default_rng(0))
    systems = {"train_step": frames, "md_3bpa": [frames[0]], "md_1000": [big]}
    if args.gpu_chunks:  # the CUDA rule wherever the convolution asks for its chunk
        cpu_rule = gaunt_tp.ops.convolution.auto_edge_chunk
        gaunt_tp.ops.convolution.auto_edge_chunk = lambda row, size, device, nodes=0: cpu_rule(row, size, "cuda", nodes)
    results = {}
    for max_l in args.max_L:
        for variant in args.variants:
            runner = gaunt_runner(systems, max_l, dtype, args.edge_chunk, pytorch_path=args.pytorch_path,
                                  **VARIANTS[variant])  # fmt: skip
            for task in ("md_3bpa", "train_step", "md_1000"):
                counts = count(runner[task])
                results[f"max_L={max_l}/{variant}/{task}"] = {"total": sum(counts.values()), "by_name": dict(counts)}
                print(f"max_L {max_l} {variant} {task}: {sum(counts.values())} operations", flush=True)
    write_json(args.out / f"{args.name}.json", {"dtype": args.dtype, "torch": torch.__version__, "counts": results,
                                                "pytorch_path": args.pytorch_path, "edge_chunk": args.edge_chunk,
                                                "gpu_chunks": args.gpu_chunks})  # fmt: skip


if __name__ == "__main__":
    main()
