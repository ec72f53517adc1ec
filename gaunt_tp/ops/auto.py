"""Cost model behind ``backend="auto"``: estimated seconds per call for each backend.

Each backend reports the floating-point operations of a forward call (``flops``)
and how many kernels it launches (``launches``); the estimate is
``launches * overhead + flops / rate`` with per-device rates fitted to
``benchmarks/bench_feature_product.py`` (see docs/benchmarks.md). The pick is
deterministic: the same irreps, batch size and device always give the same backend.
"""

from __future__ import annotations

from typing import Protocol

import torch

__all__ = ["BACKENDS", "choose_backend", "estimate_seconds"]

BACKENDS = ("dense", "fft", "grid", "fused")

# Effective float32 flop/s per backend (memory traffic included) and the fixed cost of one
# kernel launch. CPU figures: fitted to benchmarks/bench_feature_product.py and to batches of
# 32..32768 products on the 2-core CI machine. CUDA figures: not yet measured (no GPU was
# available when this was written); they only order the backends by their arithmetic.
_RATES = {
    "cpu": {"dense": 3.0e10, "grid": 2.5e10, "fft": 2.0e10, "fused": 1.2e11},
    "cuda": {"dense": 5.0e12, "grid": 2.0e13, "fft": 2.0e12},
}
_OVERHEAD = {"cpu": 7.0e-6, "cuda": 1.0e-5}


class CostedBackend(Protocol):
    launches: int

    def flops(self, products: int) -> float: ...


def estimate_seconds(
    name: str, backend: CostedBackend, *, products: int, device_type: str, dtype: torch.dtype | None = None
) -> float:
    """Estimated seconds of one forward call of ``backend`` (registered as ``name``) on ``products`` products;
    infinite where it cannot run (the fused backend: CPU tensors of float32 or float64 only)."""
    device_type = device_type if device_type in _RATES else "cuda"  # other accelerators: the GPU figures
    if name not in _RATES[device_type] or (name == "fused" and dtype not in (None, torch.float32, torch.float64)):
        return float("inf")
    return backend.launches * _OVERHEAD[device_type] + backend.flops(products) / _RATES[device_type][name]


def choose_backend(
    backends: dict[str, CostedBackend], *, products: int, device_type: str, dtype: torch.dtype | None = None
) -> str:
    """Name of the backend with the smallest estimated time, among those that run on ``device_type`` and
    ``dtype``.

    Args:
        backends: name -> backend instance, for the same descriptor.
        products: number of products in the call (batch elements times channels).
        device_type: ``"cpu"`` or ``"cuda"``; other devices use the CUDA figures (no fused backend).
        dtype: the inputs' dtype (None: float32 or float64). float64 runs at about half the float32 rate on
            every backend, so between those two it does not change the pick; the fused backend takes no other.
    """
    times = {
        name: estimate_seconds(name, b, products=products, device_type=device_type, dtype=dtype)
        for name, b in backends.items()
    }
    return min(times, key=times.__getitem__)
