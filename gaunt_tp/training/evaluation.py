"""Losses and errors of a model on batches: in one process, shared out between the processes of a data-parallel run,
and the final tables of the best model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from gaunt_tp.data import GraphBatch
from gaunt_tp.training.batching import batches_of, evaluation_shares
from gaunt_tp.training.metrics import ErrorAccumulator, LossWeights, has_stress_labels, weighted_loss

__all__ = ["evaluate", "evaluate_shared", "final_errors"]


def evaluate(
    model: torch.nn.Module,
    batches: Iterable[GraphBatch],
    weights: LossWeights,
    stress: bool = False,
    keep_values: bool = False,
) -> tuple[float, ErrorAccumulator]:
    """Mean loss (under ``weights``) and the errors of ``model`` on ``batches``
    (forces, and with a stress weight or ``stress`` the stress, by autograd, no graph kept); ``keep_values``
    keeps the reference and predicted values too (:class:`ErrorAccumulator`)."""
    acc, total, count = ErrorAccumulator(keep_values), 0.0, 0
    for batch in batches:
        with torch.enable_grad():
            out = model(batch, compute_forces=True, compute_stress=stress or weights.needs_stress)
        total += float(weighted_loss(batch, out, *weights).detach()) * batch.num_graphs
        count += batch.num_graphs
        acc.add(batch, out)
    return total / max(count, 1), acc


def evaluate_shared(
    model: torch.nn.Module,
    batches: list[GraphBatch],
    weights: LossWeights,
    rank: int,
    world: int,
    device: torch.device,
    stress: bool = False,
    keep_values: bool = False,
    shown: Callable[[list[GraphBatch]], Iterable[GraphBatch]] = iter,
) -> tuple[float, ErrorAccumulator | None]:
    """:func:`evaluate` with ``batches`` dealt out between the processes by cost
    (:func:`~gaunt_tp.training.batching.evaluation_shares`): every process returns the mean loss over all of them,
    the same number, and the first process (rank 0) the errors of all, gathered to it in rank order (those of one
    process up to the order of the sums); the others None. ``shown`` wraps this process's batches (a progress
    bar); ``device`` is where the process group's tensors live (a GPU for NCCL)."""
    if world == 1:
        return evaluate(model, shown(batches), weights, stress, keep_values)
    mine = [batches[i] for i in evaluation_shares(batches, world)[rank]]
    loss, acc = evaluate(model, shown(mine), weights, stress, keep_values)
    count = sum(batch.num_graphs for batch in mine)
    # gathered and summed in rank order on each process, not all-reduced: the decisions taken on the loss (best
    # model, patience, stage two) must be the same, to the bit, on every process
    sums = [torch.zeros(2, dtype=torch.float64, device=device) for _ in range(world)]
    torch.distributed.all_gather(sums, torch.tensor([loss * count, count], dtype=torch.float64, device=device))
    total, graphs = (sum(float(part[k]) for part in sums) for k in (0, 1))
    parts: list | None = [None] * world if rank == 0 else None
    torch.distributed.gather_object(acc, parts, dst=0)
    merged = ErrorAccumulator.merged(parts) if parts is not None else None
    return total / max(graphs, 1.0), merged


def final_errors(
    model: torch.nn.Module,
    splits: Sequence[tuple[str, list]],
    batch_size: int,
    rank: int,
    world: int,
    device: torch.device,
    keep_values: bool = False,
) -> tuple[dict, dict]:
    """(error tables, reference and predicted values with ``keep_values``), each by split name, of ``model`` on
    ``splits`` ((name, graphs) pairs, the graphs on ``device``), with stress errors where a split has stress labels;
    shared out between the processes, both complete on the first (empty on the others). A progress bar per split."""
    from tqdm import tqdm

    tables, values = {}, {}
    for split, graphs in splits:

        def bar(share: list[GraphBatch], desc: str = f"final {split}") -> Iterable[GraphBatch]:
            return tqdm(share, desc=desc, unit="batch", leave=False, disable=None if rank == 0 else True)

        batches = batches_of(graphs, batch_size)
        _, acc = evaluate_shared(model, batches, LossWeights(1.0, 1.0), rank, world, device,
                                 has_stress_labels(graphs), keep_values, bar)  # fmt: skip
        if acc is not None:
            tables[split] = acc.table()
            if keep_values:
                values[split] = acc.values()
    return tables, values
