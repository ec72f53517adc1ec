"""Cost model behind ``backend="auto"``: estimated seconds per call for each backend."""

from __future__ import annotations

import functools

import torch

from gaunt_tp.ops.descriptor import GauntDescriptor

__all__ = ["BACKENDS", "choose_backend", "estimate_seconds"]

BACKENDS = ("dense", "fft", "grid")


def estimate_seconds(desc: GauntDescriptor, name: str, *, batch: int, device_type: str) -> float:
    """Rough time of one forward call: fixed overhead plus flops at a per-backend rate."""
    from gaunt_tp.ops.fft import fft_size  # local import keeps auto independent of backend modules' tables

    n1 = sum(c.dim for c in desc.classes1)
    n2 = sum(c.dim for c in desc.classes2)
    n3 = sum(c.dim for c in desc.classes_out)
    if name == "dense":
        flops = 2.0 * sum(
            desc.classes1[a].dim * desc.classes2[b].dim * desc.classes_out[c].dim for a, b, c in desc.class_pairs
        )
        launches = 3 * len(desc.class_pairs)
    elif name == "grid":
        band = desc.lmax1 + desc.lmax2 + desc.lmax_out
        points = (band // 2 + 1) * (band + 1)
        flops = 2.0 * points * (n1 + n2 + n3)
        launches = 6
    else:
        band = desc.lmax1 + desc.lmax2
        m_theta = fft_size(2 * band + 1)
        m_phi = fft_size(band + desc.lmax_out + 1)
        fft_flops = 5.0 * m_theta * m_phi * max(1.0, float(torch.tensor(m_theta * m_phi).log2()))
        flops = 3 * fft_flops + 4.0 * (2 * desc.lmax1 + 1) * (n1 + n2) + 4.0 * m_theta * n3
        launches = 20
    rate, overhead = _RATES[device_type].get(name, 1e9), _OVERHEAD[device_type]
    return launches * overhead + batch * flops / rate


# Sustained flop rates per backend (float32), fitted to benchmarks/bench_feature_product.py runs.
_RATES = {
    "cpu": {"dense": 2e10, "grid": 6e10, "fft": 8e9},
    "cuda": {"dense": 2e12, "grid": 2e13, "fft": 2e12},
}
_OVERHEAD = {"cpu": 1.5e-5, "cuda": 1e-5}


@functools.lru_cache(maxsize=4096)
def _choose(desc_key: int, desc: GauntDescriptor, batch: int, device_type: str) -> str:
    times = {name: estimate_seconds(desc, name, batch=batch, device_type=device_type) for name in BACKENDS}
    return min(times, key=times.__getitem__)


def choose_backend(desc: GauntDescriptor, *, batch: int, dtype: torch.dtype, device_type: str) -> str:
    """The backend with the smallest estimated time for ``batch`` products.

    Args:
        desc: what is computed.
        batch: number of products (batch elements times channels).
        dtype: feature dtype (float64 runs at about half the float32 rate on every backend,
            so it does not change the pick).
        device_type: ``"cpu"`` or ``"cuda"``; other devices use the CPU figures.
    """
    device_type = device_type if device_type in _RATES else "cpu"
    bucket = 1 << max(0, int(batch).bit_length() - 1)  # powers of two: the pick is cached per bucket
    return _choose(id(desc), desc, bucket, device_type)
