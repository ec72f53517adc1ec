"""Neighbour lists (periodic and not) from vesin."""

from __future__ import annotations

import numpy as np

from gaunt_tp.errors import InputError

__all__ = ["edge_pairs", "neighbor_list"]


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool], cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs (i, j), i != j or a periodic image, with ``|r_j + S cell - r_i| < cutoff``.

    Args:
        positions: ``[n, 3]`` Angstrom.
        cell: ``[3, 3]`` lattice vectors as rows (ignored along non-periodic directions).
        pbc: periodicity along each lattice vector; mixed periodicity is supported.
        cutoff: Angstrom, > 0.

    Returns:
        senders i ``[E]``, receivers j ``[E]`` and integer cell shifts S ``[E, 3]``; the edge
        vector is ``positions[j] + S @ cell - positions[i]`` (both directions are listed).
    """
    from vesin import NeighborList

    if not cutoff > 0:
        raise InputError(f"cutoff must be > 0, got {cutoff}")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    periodic = np.asarray(pbc, dtype=bool)
    box = _complete_cell(np.asarray(cell, dtype=np.float64), periodic) if periodic.any() else np.zeros((3, 3))
    i, j, shifts = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=positions, box=box, periodic=periodic if periodic.any() else False, quantities="ijS"
    )
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)


def _complete_cell(cell: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """``cell [3, 3]`` with its non-periodic rows, where the three rows span no volume (a slab, wire or sheet written
    with zero vectors along its vacuum, as ASE's builders do), replaced by unit vectors orthogonal to the periodic
    ones. No image is taken along a non-periodic row, so its value changes no edge; the periodic rows must be
    independent."""
    rows = cell[periodic]
    scale = max(float(np.abs(rows).max()), 1e-300)
    if abs(np.linalg.det(cell)) > 1e-12 * scale**3:  # the usual cell (every MD step): no decomposition
        return cell
    if np.linalg.matrix_rank(rows, tol=1e-9 * scale) < len(rows):
        raise InputError(
            f"the cell vectors along the periodic directions must be non-zero and independent, got {rows.tolist()}"
        )
    complement = np.linalg.svd(rows)[2][len(rows) :]  # orthonormal rows orthogonal to the periodic ones
    box = cell.copy()
    box[~periodic] = complement
    return box


def edge_pairs(senders: np.ndarray, receivers: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group each edge (i, j, S) with its reverse (j, i, -S): the undirected pairs of a full list.

    The two edges of a pair have the same length, so functions of the length alone (radial
    bases and MLPs) need to be evaluated once per pair. An edge whose reverse is not listed
    forms a pair of its own.

    Args:
        senders, receivers: ``[E]`` atom indices; shifts: ``[E, 3]`` integer cell shifts.

    Returns:
        ``pair [E]``: the pair of each edge, in 0..U-1; ``representative [U]``: one edge of each pair.
    """
    forward = np.column_stack([senders, receivers, shifts]).astype(np.int64)
    backward = np.column_stack([receivers, senders, -shifts]).astype(np.int64)
    if forward.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    diff = forward - backward
    first = np.argmax(diff != 0, axis=1)  # first differing column (0 where the edge is its own reverse)
    take_backward = diff[np.arange(len(diff)), first] > 0
    canonical = np.where(take_backward[:, None], backward, forward)
    # one integer per row (mixed radix) where it fits in int64: a 1-d unique is ~20x faster than rows
    low, high = canonical.min(axis=0), canonical.max(axis=0)
    bases = (high - low + 1).astype(object)
    if np.prod(bases) < 2**62:
        keys = np.zeros(len(canonical), dtype=np.int64)
        for column, base in zip((canonical - low).T, bases):
            keys = keys * int(base) + column
        _, representative, pair = np.unique(keys, return_index=True, return_inverse=True)
    else:
        _, representative, pair = np.unique(canonical, axis=0, return_index=True, return_inverse=True)
    return pair.reshape(-1).astype(np.int64), representative.astype(np.int64)
