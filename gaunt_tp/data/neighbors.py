"""Neighbour lists (periodic and not) from vesin."""

from __future__ import annotations

import numpy as np

__all__ = ["neighbor_list"]


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
        raise ValueError(f"cutoff must be > 0, got {cutoff}")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    periodic = np.asarray(pbc, dtype=bool)
    box = np.asarray(cell, dtype=np.float64) if periodic.any() else np.zeros((3, 3))
    if periodic.any() and abs(np.linalg.det(box)) < 1e-12:
        raise ValueError("a periodic structure needs a cell with non-zero volume")
    i, j, shifts = NeighborList(cutoff=cutoff, full_list=True).compute(
        points=positions, box=box, periodic=periodic if periodic.any() else False, quantities="ijS"
    )
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)
