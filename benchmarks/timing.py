"""Side-by-side timing for the benchmark scripts: interleaved runs, medians, CUDA events on GPUs."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    device: torch.device,
    repeats: int = 30,
    warmup: int = 2,
    budget_s: float = 20.0,
    min_rounds: int = 5,
) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin so that machine noise hits all alike.

    The first ``warmup`` calls of each are not timed (code generation, FFT plans, caches).
    Stops early, after at least ``min_rounds`` rounds, once ``budget_s`` of wall time is spent.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    shuffle = random.Random(0).shuffle  # a new order every round: no contender always follows the same one
    start = time.perf_counter()
    for rep in range(repeats):
        shuffle(order)
        for name in order:
            fn = fns[name]
            if device.type == "cuda":
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                fn()
                end.record()
                end.synchronize()
                samples[name].append(begin.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
        if rep + 1 >= min_rounds and time.perf_counter() - start > budget_s:
            break
    return {name: statistics.median(s) for name, s in samples.items()}


def matmul_rate(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    """Sustained flop/s of a large square matrix multiply (the machine's reference rate)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = time_interleaved({"mm": lambda: a @ b}, device=device, repeats=10, warmup=2)["mm"]
    return 2.0 * n**3 / t
