"""Configurations as graphs of torch tensors, and batches of graphs.

Field names and shapes (n atoms, E edges, B graphs in a batch):

==================  ===============  =====================================================
``positions``       [n, 3]           Angstrom
``species``         [n] long         index of the element in the model's element table
``edge_index``      [2, E] long      (sender, receiver); edge vector = positions[receiver]
                                     + shift - positions[sender]
``shifts``          [E, 3]           Cartesian periodic shift (S @ cell), Angstrom
``edge_pair``       [E] long         undirected pair of each edge: edge (i, j, S) and its reverse
                                     (j, i, -S) share one, in 0..U-1 (:func:`edge_pairs`)
``pair_edge``       [U] long         one edge of each pair (functions of the length alone are
                                     evaluated once per pair)
``cell``            [B, 3, 3]        Angstrom, as given (zeros where the structure has no cell)
``energy``          [B] float64      eV (NaN when missing), float64 in any dtype, as the model's energy
``forces``          [n, 3]           eV/Angstrom (NaN when missing)
``stress``          [B, 3, 3]        eV/Angstrom^3 (NaN when missing, and for cells without volume,
                                     where the model has no stress)
``weight``          [B]              loss weight of each configuration
``batch``           [n] long         graph of each atom
``ptr``             [B + 1] long     first atom of each graph
==================  ===============  =====================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gaunt_tp.data.configuration import Configuration
from gaunt_tp.data.neighbors import edge_pairs, neighbor_list
from gaunt_tp.errors import InputError

__all__ = ["ElementTable", "GraphBatch", "cell_volumes", "collate", "to_graph"]


class ElementTable:
    """The model's elements: atomic numbers in a fixed order, and the index of each.

    Example:
        >>> table = ElementTable([8, 1, 6])
        >>> table.zs, table.index(np.array([1, 8, 8])).tolist()
        ((1, 6, 8), [0, 2, 2])
    """

    def __init__(self, atomic_numbers: Sequence[int]) -> None:
        self.zs = tuple(sorted({int(z) for z in atomic_numbers}))
        if not self.zs or self.zs[0] < 1:
            raise InputError(f"atomic numbers must be >= 1, got {atomic_numbers}")
        self._lookup = {z: i for i, z in enumerate(self.zs)}

    def __len__(self) -> int:
        return len(self.zs)

    def index(self, atomic_numbers: np.ndarray, source: str = "") -> np.ndarray:
        unknown = sorted({int(z) for z in atomic_numbers} - set(self._lookup))
        if unknown:
            where = f"{source}: " if source else ""
            raise InputError(f"{where}elements Z={unknown} are not among the model's elements {list(self.zs)}")
        return np.array([self._lookup[int(z)] for z in atomic_numbers], dtype=np.int64)


@dataclass
class GraphBatch:
    """One or more graphs, concatenated (fields as in the module docstring)."""

    positions: torch.Tensor
    species: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    edge_pair: torch.Tensor
    pair_edge: torch.Tensor
    cell: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor
    weight: torch.Tensor
    batch: torch.Tensor
    ptr: torch.Tensor
    config_type: list[str]

    @property
    def num_graphs(self) -> int:
        return int(self.ptr.numel() - 1)

    def to(self, device: torch.device | str) -> GraphBatch:
        fields = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return GraphBatch(**fields)


def to_graph(
    config: Configuration, table: ElementTable, cutoff: float, dtype: torch.dtype = torch.float64
) -> GraphBatch:
    """A single configuration as a batch of one graph, with edges within ``cutoff`` Angstrom."""
    try:
        senders, receivers, shifts = neighbor_list(config.positions, config.cell, config.pbc, cutoff)
    except InputError as err:
        raise InputError(f"{config.source}: {err}") from None
    pair, representative = edge_pairs(senders, receivers, shifts)
    nan = float("nan")
    n = config.num_atoms
    forces = config.forces if config.forces is not None else np.full((n, 3), nan)
    stress = config.trainable_stress if config.trainable_stress is not None else np.full((3, 3), nan)
    return GraphBatch(
        positions=torch.tensor(config.positions, dtype=dtype),
        species=torch.from_numpy(table.index(config.atomic_numbers, config.source)),
        edge_index=torch.from_numpy(np.stack([senders, receivers])),
        shifts=torch.tensor(shifts.astype(np.float64) @ config.cell, dtype=dtype),
        edge_pair=torch.from_numpy(pair),
        pair_edge=torch.from_numpy(representative),
        cell=torch.tensor(config.cell, dtype=dtype)[None],
        energy=torch.tensor([config.energy if config.energy is not None else nan], dtype=torch.float64),
        forces=torch.tensor(forces, dtype=dtype),
        stress=torch.tensor(stress, dtype=dtype)[None],
        weight=torch.tensor([config.weight], dtype=dtype),
        batch=torch.zeros(n, dtype=torch.long),
        ptr=torch.tensor([0, n]),
        config_type=[config.config_type],
    )


def cell_volumes(cell: torch.Tensor) -> torch.Tensor:
    """``|det(cell)|`` of ``[B, 3, 3]`` cells (Angstrom^3), as the triple product: elementwise, so a CUDA graph can
    hold it (``linalg.det`` may read values back)."""
    return (cell[:, 0] * torch.linalg.cross(cell[:, 1], cell[:, 2], dim=-1)).sum(-1).abs()


def collate(graphs: Sequence[GraphBatch]) -> GraphBatch:
    """Concatenate graphs (or batches) into one batch, offsetting edge indices and graph ids."""
    if not graphs:
        raise InputError("collate needs at least one graph")
    atom_offsets = np.cumsum([0] + [g.positions.shape[0] for g in graphs])
    edge_offsets = np.cumsum([0] + [g.edge_index.shape[1] for g in graphs])
    pair_offsets = np.cumsum([0] + [g.pair_edge.shape[0] for g in graphs])
    graph_offsets = np.cumsum([0] + [g.num_graphs for g in graphs])
    cat = torch.cat
    return GraphBatch(
        positions=cat([g.positions for g in graphs]),
        species=cat([g.species for g in graphs]),
        edge_index=cat([g.edge_index + int(o) for g, o in zip(graphs, atom_offsets)], dim=1),
        shifts=cat([g.shifts for g in graphs]),
        edge_pair=cat([g.edge_pair + int(o) for g, o in zip(graphs, pair_offsets)]),
        pair_edge=cat([g.pair_edge + int(o) for g, o in zip(graphs, edge_offsets)]),
        cell=cat([g.cell for g in graphs]),
        energy=cat([g.energy for g in graphs]),
        forces=cat([g.forces for g in graphs]),
        stress=cat([g.stress for g in graphs]),
        weight=cat([g.weight for g in graphs]),
        batch=cat([g.batch + int(o) for g, o in zip(graphs, graph_offsets)]),
        ptr=torch.cat([graphs[0].ptr[:1]] + [g.ptr[1:] + int(o) for g, o in zip(graphs, atom_offsets)]),
        config_type=[t for g in graphs for t in g.config_type],
    )
