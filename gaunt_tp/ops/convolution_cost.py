"""How GauntConvolution sizes its work: the cost model that picks its form, and its edge chunks.

Both are fitted to measurements on a 2-core CPU (``benchmarks/bench_convolution.py``,
``benchmarks/bench_edge_chunk.py``); :class:`gaunt_tp.ops.GauntConvolution` calls them at construction
(``form="auto"``) and per call (``edge_chunk=None``).
"""

from __future__ import annotations

__all__ = ["FORMS", "GPU_EDGE_CHUNK", "auto_edge_chunk", "convolution_cost"]

FORMS = ("grid", "aligned")

# Effective float32 flop/s of each form on the CPU, a fixed cost per (edge, channel, class product) row
# (gathers, copies, small batched matrices) and the cost of one kernel launch, fitted to
# benchmarks/bench_convolution.py forward times (lmax 1..6, C = 64, 200 nodes, 4000 edges, 1 thread of a
# shared 2-core machine): the grid form ran 4.5..81 ms, the aligned form 39..446 ms, so "auto" picks grid
# there. Not measured on GPUs (the aligned form is a few large batched matmuls, which may favour it there).
_RATE = {"grid": 8.0e9, "aligned": 3.7e9}
_ROW_SECONDS = {"grid": 1.3e-8, "aligned": 1.2e-7}
_LAUNCH_SECONDS = 1.0e-5

# Automatic edge chunks (benchmarks/bench_edge_chunk.py; C = 64, 200 nodes, 4000 edges, float32). On the
# CPU the grid form's [edges, C, P] buffers are kept near 4 MiB, so a chunk's few buffers stay in cache:
# at lmax 3 the forward took 6.4 ms with 256-edge chunks and 19.7 ms with 1024, at lmax 6 forward+backward
# 120 ms with 256 and 180 ms with 1024 (larger buffers also cross glibc's 32 MiB mmap threshold and are
# page-faulted in afresh on every call). When autograd records, each chunk's backward scatters into a full
# [nodes, C, P] gradient, so chunks are not made smaller than the node count (up to 1024): in the whole
# model on 1000 atoms 1024-edge chunks beat 256.
# On GPUs every chunk costs its ~30 kernel launches (forward; more in the backward passes), and at the sizes
# of molecules and 1000-atom boxes those launches, not memory traffic, set the time: buffers of up to 256 MiB
# (at least GPU_EDGE_CHUNK edges) keep a 1000-atom box in one chunk. A 999-atom box of 3BPA (16986 edges) took
# 17 chunks per convolution with the fixed 1024-edge chunks GPUs had before, and its MD step (the PyTorch path,
# max_L 2) 3663 operations against 1121 now (benchmarks/count_operations.py; MACE's blocks: 1407).
_CPU_CHUNK_BYTES = 4 * 2**20
_CPU_CHUNK_RANGE = (128, 1024)
_GPU_CHUNK_BYTES = 256 * 2**20
GPU_EDGE_CHUNK = 1024  # the fewest edges a GPU chunk holds, and the aligned form's chunk


def auto_edge_chunk(row_elements: int, itemsize: int, device_type: str, nodes: int = 0) -> int:
    """Edges per chunk for a per-edge buffer of ``row_elements`` values of ``itemsize`` bytes.

    CPU: the largest power of two with ``chunk * row_elements * itemsize <= 4 MiB``, raised to the
    smallest power of two ``>= nodes`` (pass the node count when gradients are recorded, 0 otherwise),
    clamped to 128..1024. Other devices: the largest power of two with buffers of at most 256 MiB, and at
    least ``GPU_EDGE_CHUNK`` (1024).

    Example:
        >>> auto_edge_chunk(64 * 146, 4, "cpu"), auto_edge_chunk(64 * 146, 4, "cpu", nodes=200)
        (128, 256)
        >>> auto_edge_chunk(64 * 26, 4, "cuda"), auto_edge_chunk(64 * 146, 8, "cuda")
        (32768, 2048)
    """
    if device_type != "cpu":
        return max(_largest_power_of_two(_GPU_CHUNK_BYTES // max(row_elements * itemsize, 1)), GPU_EDGE_CHUNK)
    low, high = _CPU_CHUNK_RANGE
    cache_fit = _largest_power_of_two(_CPU_CHUNK_BYTES // max(row_elements * itemsize, 1))
    covers_nodes = 1 << (nodes - 1).bit_length() if nodes > 0 else 1  # smallest power of two >= nodes
    return min(max(cache_fit, covers_nodes, low), high)


def _largest_power_of_two(n: int) -> int:
    """The largest power of two ``<= max(n, 1)``."""
    return 1 << (max(n, 1).bit_length() - 1)


def convolution_cost(
    form: str,
    *,
    channels: int,
    sh_degrees: list[int],
    routes: list[tuple[tuple[int, ...], tuple[int, ...]]],
    grid_points: int,
    edge_chunk: int,
) -> float:
    """Estimated seconds per edge of one forward call in ``form`` ("grid" or "aligned").

    ``flops / rate[form] + C * routes * row_cost[form] + launches * overhead / edge_chunk``, counting
    multiply-adds as two flops:

    - grid: the edge function on P points (``2 n_l2 P`` per channel), then per route a product
      and a scatter-add (``2 P``);
    - aligned: per route, the rotations of the input and output degrees
      (``2 sum (2l+1)^2`` each), the meridian evaluation and projection
      (``2 M Q (K_in + K_out)`` for M orders, Q nodes, K degrees) and the edge function at the
      nodes (``2 n_l2 Q``); per edge (not per channel) the Wigner matrices (``4 sum (2l+1)^3``).

    Args:
        channels: C. sh_degrees: the edge degrees. routes: ``(ls_in, ls_out)`` per class product.
        grid_points: P of the grid form. edge_chunk: edges per launch.
    """
    n_l2 = len(sh_degrees)
    if form == "grid":
        flops = channels * grid_points * (2 * n_l2 + 2 * len(routes)) + 4 * grid_points * max(sh_degrees)
        launches = 2 + 2 * len(routes)
    elif form == "aligned":
        flops, degrees = 0.0, set()
        for ls_in, ls_out in routes:
            orders = 2 * min(max(ls_in), max(ls_out)) + 1
            nodes = (max(ls_in) + max(sh_degrees) + max(ls_out)) // 2 + 1
            rotations = 2 * sum((2 * l + 1) ** 2 for l in ls_in + ls_out)
            product = 2 * orders * nodes * (len(ls_in) + len(ls_out)) + 2 * n_l2 * nodes + orders * nodes
            flops += channels * (rotations + product)
            degrees |= set(ls_in + ls_out)
        flops += 4 * sum((2 * l + 1) ** 3 for l in degrees)
        launches = 12 + 6 * len(degrees) + 8 * len(routes)
    else:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    rows = channels * len(routes)
    return flops / _RATE[form] + rows * _ROW_SECONDS[form] + launches * _LAUNCH_SECONDS / edge_chunk
