"""Batches padded to fixed sizes, so that one captured CUDA graph serves every batch (gaunt_tp.cuda_graphs).

A CUDA graph replays its kernels on the tensor shapes it was captured with, while batches differ in their
numbers of graphs, atoms, edges and edge pairs. :func:`pad_batch` fills a batch up to a
:class:`BatchCapacity` with parts that change no real result:

* padding graphs, ``capacity.graphs + 1 - B`` of them, each with at least one padding atom (a graph without
  atoms would divide by zero in a per-atom energy loss). Padding atoms sit at the origin with element index 0;
  their graphs' energies, their forces and stress labels are NaN (missing: left out of every loss mean) and their
  loss weights 0. Their predicted energies and forces are computed and meaningless;
* padding edges from the last padding atom to itself, with a Cartesian shift ``(2 r_max, 0, 0)``: their length is
  twice the cutoff, where the envelope is exactly zero with zero derivative, so they carry no message and
  no gradient (and they touch no real atom). All of them are one undirected pair, the last pair slot; the
  unused pair slots before it point at a padding edge too (the radial network runs once per pair slot).

A padded batch has ``capacity.graphs + 1`` graphs, ``capacity.nodes`` atoms, ``capacity.edges`` edges and
``capacity.pairs`` edge pairs. The real graphs come first, unchanged: ``energy[:B]`` and ``forces[:n]`` of the
model's output on the padded batch are those of the batch itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gaunt_tp.data.graph import GraphBatch

__all__ = ["BatchCapacity", "pad_batch", "pad_into"]


@dataclass(frozen=True)
class BatchCapacity:
    """The fixed sizes of padded batches: at most ``graphs`` real graphs; ``nodes`` atoms, ``edges`` edges and
    ``pairs`` undirected edge pairs in all, padding included."""

    graphs: int
    nodes: int
    edges: int
    pairs: int

    @classmethod
    def covering(cls, graphs: Sequence[GraphBatch], batch_size: int) -> BatchCapacity:
        """Room for any batch of at most ``batch_size`` of ``graphs`` (single graphs or batches), with its padding.

        The largest ``batch_size`` atom, edge and pair counts bound those of any batch; ``batch_size`` more atoms
        give each padding graph one, one more edge and one more pair leave room for at least one padding edge and
        the padding pair.
        """
        if not graphs or batch_size < 1:
            raise ValueError(f"a capacity needs graphs and a batch_size >= 1, got {len(graphs)} and {batch_size}")
        top = lambda counts: sum(sorted(counts, reverse=True)[:batch_size])  # noqa: E731
        nodes = top(g.positions.shape[0] for g in graphs)
        edges = top(g.edge_index.shape[1] for g in graphs)
        pairs = top(g.pair_edge.shape[0] for g in graphs)
        return cls(graphs=batch_size, nodes=nodes + batch_size, edges=edges + 1, pairs=pairs + 1)

    def fits(self, batch: GraphBatch) -> bool:
        """Whether ``batch`` can be padded to this capacity."""
        b, n, e, u = _sizes(batch)
        return b <= self.graphs and n + self.graphs + 1 - b <= self.nodes and e < self.edges and u < self.pairs

    def check(self, batch: GraphBatch) -> None:
        """A ``ValueError`` saying what does not fit, when ``batch`` cannot be padded to this capacity."""
        if not self.fits(batch):
            b, n, e, u = _sizes(batch)
            raise ValueError(
                f"a batch of {b} graphs, {n} atoms, {e} edges and {u} edge pairs does not fit {self} (padding needs "
                "one atom per padding graph, at least one edge and one pair)"
            )


def _sizes(batch: GraphBatch) -> tuple[int, int, int, int]:
    """Graphs, atoms, edges and edge pairs of ``batch``."""
    return batch.num_graphs, batch.positions.shape[0], batch.edge_index.shape[1], batch.pair_edge.shape[0]


def pad_batch(batch: GraphBatch, capacity: BatchCapacity, r_max: float) -> GraphBatch:
    """``batch`` filled up to ``capacity`` with padding graphs, atoms and edges (see the module docstring).

    ``r_max``: the model's cutoff (Angstrom); padding edges are ``2 r_max`` long. The result is on
    ``batch``'s device, with its dtypes.
    """
    capacity.check(batch)
    b, n, e, u = _sizes(batch)
    fillers = capacity.graphs - b  # padding graphs of one atom each, then a last one with the other padding atoms
    pad_nodes, pad_edges, pad_pairs = capacity.nodes - n, capacity.edges - e, capacity.pairs - u
    dev, dtype, long = batch.positions.device, batch.positions.dtype, torch.long
    nan = float("nan")
    last_atom = capacity.nodes - 1  # in the last padding graph; the padding edges' sender and receiver
    pad_graph = torch.cat([torch.arange(fillers, device=dev), torch.full((pad_nodes - fillers,), fillers, device=dev)])
    shift = torch.zeros(pad_edges, 3, dtype=dtype, device=dev)
    shift[:, 0] = 2.0 * r_max
    per_graph = lambda t, fill: torch.cat([t, t.new_full((fillers + 1, *t.shape[1:]), fill)])  # noqa: E731
    return GraphBatch(
        positions=torch.cat([batch.positions, batch.positions.new_zeros(pad_nodes, 3)]),
        species=torch.cat([batch.species, batch.species.new_zeros(pad_nodes)]),
        edge_index=torch.cat([batch.edge_index, torch.full((2, pad_edges), last_atom, dtype=long, device=dev)], 1),
        shifts=torch.cat([batch.shifts, shift]),
        edge_pair=torch.cat([batch.edge_pair, batch.edge_pair.new_full((pad_edges,), capacity.pairs - 1)]),
        pair_edge=torch.cat([batch.pair_edge, batch.pair_edge.new_full((pad_pairs,), e)]),
        cell=per_graph(batch.cell, 0.0),
        energy=per_graph(batch.energy, nan),
        forces=torch.cat([batch.forces, batch.forces.new_full((pad_nodes, 3), nan)]),
        stress=per_graph(batch.stress, nan),
        weight=per_graph(batch.weight, 0.0),
        batch=torch.cat([batch.batch, b + pad_graph]),
        ptr=torch.cat([batch.ptr, n + 1 + torch.arange(fillers, device=dev), batch.ptr.new_tensor([capacity.nodes])]),
        config_type=[*batch.config_type, *["padding"] * (fillers + 1)],
    )


def pad_into(static: GraphBatch | None, batch: GraphBatch, capacity: BatchCapacity, r_max: float) -> GraphBatch:
    """``batch`` padded to ``capacity`` and written into ``static``'s tensors in place (a captured CUDA graph reads
    its inputs at fixed addresses); returns ``static``, or the padded batch itself when ``static`` is None."""
    padded = pad_batch(batch, capacity, r_max)
    if static is None:
        return padded
    for f in dataclasses.fields(GraphBatch):
        value = getattr(padded, f.name)
        if isinstance(value, torch.Tensor):
            getattr(static, f.name).copy_(value)
        else:
            setattr(static, f.name, value)
    return static
