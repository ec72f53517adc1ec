"""Checks and index maps shared by the many-body blocks, whose features are one multiplicity C of
natural-parity irreps of distinct degrees (``C x 0e + C x 1o + C x 2e + ...``), and the index map of the
convolution kernels' rows layout (:func:`component_rows`)."""

from __future__ import annotations

import torch
from e3nn import o3

from gaunt_tp.ops.checks import index_range
from gaunt_tp.ops.descriptor import as_irreps

__all__ = [
    "channel_major", "check_block_irreps", "check_counts", "check_node_inputs", "component_rows", "row_layout",
    "rows_layout",
]  # fmt: skip


def check_block_irreps(irreps_in: o3.Irreps | str, irreps_out: o3.Irreps | str) -> tuple[o3.Irreps, o3.Irreps, int]:
    """Parse and check a block's irreps: one multiplicity C, distinct degrees of natural parity, the same C in
    both. Returns ``(irreps_in, irreps_out, C)``."""
    parsed = []
    for name, irreps in (("irreps_in", irreps_in), ("irreps_out", irreps_out)):
        irreps = as_irreps(irreps, name)
        if len(irreps) == 0 or len({mul for mul, _ in irreps}) != 1:
            raise ValueError(f"{name}={irreps} must be non-empty with one multiplicity (channels)")
        if any(ir.p != (-1) ** ir.l for _, ir in irreps) or len({ir.l for _, ir in irreps}) != len(irreps):
            raise ValueError(f"{name}={irreps} must hold distinct degrees of natural parity (0e, 1o, 2e, ...)")
        parsed.append(irreps)
    channels = parsed[0][0].mul
    if parsed[1][0].mul != channels:
        raise ValueError(f"irreps_out multiplicity must equal the input's ({channels}), got {parsed[1]}")
    return parsed[0], parsed[1], channels


def check_counts(**counts: object) -> None:
    """Clear errors for block sizes (correlation, num_elements, ...) that are not ints >= 1."""
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def channel_major(irreps: o3.Irreps) -> list[int]:
    """Gather indices from e3nn's layout ``[irrep: C, 2l+1]`` to ``[C, n]`` (n = one copy of every irrep,
    entries in irreps order): entry ``c * n + k`` of the result is e3nn position ``perm[c * n + k]``."""
    channels = irreps[0].mul
    return [
        sl.start + c * ir.dim + k
        for c in range(channels)
        for (_, ir), sl in zip(irreps, irreps.slices())
        for k in range(ir.dim)
    ]


def component_rows(irreps: o3.Irreps, channels: int) -> list[int]:
    """Gather indices from e3nn's layout to the convolution kernels' rows layout ``[R, C]`` (component-major):
    irrep i of multiplicity ``k_i C`` as ``k_i (2 l_i + 1)`` rows of C channels, ordered by irrep, then block k,
    then component m. Entry ``r * C + c`` of the result is the e3nn position of row r, channel c."""
    return [
        sl.start + (k * channels + c) * ir.dim + m
        for (mul, ir), sl in zip(irreps, irreps.slices())
        for k in range(mul // channels)
        for m in range(ir.dim)
        for c in range(channels)
    ]


def row_layout(irreps: o3.Irreps) -> list[int]:
    """The C kernels' view of one e3nn row: for each entry i of one channel (irreps order), its position in
    channel 0, then for each the stride between channels (2l + 1); entry i of channel c sits at
    ``offset[i] + c * stride[i]``."""
    n = irreps.dim // irreps[0].mul
    return [*channel_major(irreps)[:n], *[ir.dim for _, ir in irreps for _ in range(ir.dim)]]


def rows_layout(irreps: o3.Irreps) -> list[int]:
    """:func:`row_layout` for a node's features in the rows layout of :func:`component_rows` with one block per
    irrep (``[n entries, C]``): entry i of channel c sits at ``i * C + c``."""
    n, channels = irreps.dim // irreps[0].mul, irreps[0].mul
    return [*(i * channels for i in range(n)), *([1] * n)]


def check_node_inputs(node_features: torch.Tensor, species: torch.Tensor, dim: int, irreps: str,
                      num_elements: int) -> None:  # fmt: skip
    """Clear errors for node features that are not ``[N, dim]`` or species not integer ``[N]`` in range.
    ``dim`` and ``irreps`` (the input irreps as text, for the message) are plain Python values, which
    ``torch.compile`` treats as constants (it cannot guard on e3nn's ``Irreps``)."""
    if node_features.dim() != 2 or node_features.shape[1] != dim:  # dim: a plain int (torch.compile)
        raise ValueError(f"node_features must be [N, {dim}] for {irreps}, got {tuple(node_features.shape)}")
    if species.shape != node_features.shape[:1] or species.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"species must be integer [N] = [{node_features.shape[0]}], got {species.dtype} {tuple(species.shape)}"
        )
    if species.numel() and (span := index_range(species)) is not None:
        low, high = span
        if low < 0 or high >= num_elements:
            raise ValueError(f"species holds element index {low if low < 0 else high}, outside 0..{num_elements - 1}")
