"""Batches: the shuffled global batches of one process, each data-parallel process's share of them, and its share
of the evaluation batches."""

from __future__ import annotations

import torch

from gaunt_tp.data import GraphBatch, collate
from gaunt_tp.training.metrics import LabelCounts
from gaunt_tp.training.step import ProcessShare

__all__ = ["batches_of", "evaluation_shares", "graph_cost", "process_shares"]


def _chunks(count: int, size: int, generator: torch.Generator | None) -> list[list[int]]:
    """Indices ``0..count-1`` (shuffled by ``generator``, else in order) in runs of ``size``, the last one shorter
    when ``size`` does not divide ``count``."""
    order = torch.randperm(count, generator=generator).tolist() if generator is not None else list(range(count))
    return [order[s : s + size] for s in range(0, count, size)]


def batches_of(graphs: list[GraphBatch], size: int, generator: torch.Generator | None = None) -> list[GraphBatch]:
    """Batches of ``size`` graphs (shuffled by ``generator``), the last one shorter when ``size`` does not divide."""
    return [collate([graphs[i] for i in chunk]) for chunk in _chunks(len(graphs), size, generator)]


def graph_cost(graph: GraphBatch) -> int:
    """A graph's share of a training step's work, for dealing batches out: its edges plus its atoms."""
    return graph.edge_index.shape[1] + graph.positions.shape[0]


def process_shares(
    graphs: list[GraphBatch],
    counts: list[LabelCounts],
    costs: list[int],
    size: int,
    generator: torch.Generator,
    rank: int,
    world: int,
) -> list[tuple[GraphBatch, ProcessShare]]:
    """This process's share of each of :func:`batches_of`'s global batches (the same shuffle), ``counts`` and
    ``costs`` those of each graph (:func:`gaunt_tp.training.metrics.label_counts`, :func:`graph_cost`), with the
    global batch's label counts.

    Every process takes the same number of steps, and the global batches are those one process would take, of any
    ``size``. Each global batch is dealt out greedily by cost (largest first, each graph to the process with the
    least so far), so that no process waits long for another where sizes differ. A global batch of fewer graphs than
    processes gives the processes left over a stand-in (its first graph, weighted 0)."""
    out = []
    for chunk in _chunks(len(graphs), size, generator):
        total = LabelCounts(*map(sum, zip(*(counts[i] for i in chunk))))
        mine = [i for i, r in _deal(chunk, costs, world) if r == rank]
        share = ProcessShare(total, world, stand_in=not mine)
        out.append((collate([graphs[i] for i in mine or chunk[:1]]), share))
    return out


def evaluation_shares(batches: list[GraphBatch], world: int) -> list[list[int]]:
    """The indices of ``batches`` each of ``world`` processes evaluates, in order: the batches dealt out by cost
    (:func:`graph_cost`, largest first, each to the least-loaded process), every batch to one process."""
    pairs = _deal(list(range(len(batches))), [graph_cost(b) for b in batches], world)
    return [sorted(i for i, r in pairs if r == rank) for rank in range(world)]


def _deal(chunk: list[int], cost: list[int], world: int) -> list[tuple[int, int]]:
    """``(graph, process)`` pairs: the graphs of ``chunk``, most costly first (ties in ``chunk``'s order), each to
    the process with the least cost so far (the lowest rank on ties). The loads then differ by at most the cost of
    one graph."""
    loads = [0] * world
    pairs = []
    for i in sorted(chunk, key=lambda i: -cost[i]):
        r = loads.index(min(loads))
        loads[r] += cost[i]
        pairs.append((i, r))
    return pairs
