"""A training step's forward pass, loss and backward pass: eagerly, or replayed from a captured CUDA graph.

:class:`GraphedStep` (``gaunt-tp train --cuda_graph``) captures the forward-loss-backward sequence once per loss
weighting (see :mod:`gaunt_tp.cuda_graphs`: why, and the padding to one size that it needs). The optimiser step,
gradient clipping and the weights' moving average stay eager: a few fused kernels, free to change the learning
rate between steps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from gaunt_tp.cuda_graphs import capture_graph, check_capture_device
from gaunt_tp.data.graph import GraphBatch
from gaunt_tp.data.padding import BatchCapacity, pad_into
from gaunt_tp.training.metrics import LabelCounts, LossWeights, weighted_loss

__all__ = ["EagerStep", "GraphedStep", "ProcessShare", "loss_and_backward"]


class ProcessShare(NamedTuple):
    """One process's part of a global batch that data-parallel processes split between them.

    ``counts`` are the global batch's labels: every process divides its sums by them, so that the processes'
    losses add up to the global batch's loss, however unevenly its configurations and atoms are split.
    ``processes`` scales the backward pass, DDP averaging the processes' gradients (so their mean is the global
    loss's gradient). ``stand_in``: this process's share is empty (a global batch smaller than the number of
    processes); it runs a graph of the batch with the loss multiplied by 0, to join the gradients' all-reduce.
    """

    counts: LabelCounts
    processes: int
    stand_in: bool = False


def loss_and_backward(
    model: torch.nn.Module, batch: GraphBatch, weights: LossWeights, share: ProcessShare | None = None
) -> torch.Tensor:
    """The weighted loss of ``model`` on ``batch`` (0-dim, detached), its gradients accumulated into ``.grad``;
    ``weights`` a :class:`LossWeights` or a tuple of its fields in order. With ``share``, this process's part of
    the global batch's loss (0 for a stand-in), its gradient scaled by the number of processes."""
    out = model(batch, compute_forces=True, compute_stress=LossWeights(*weights).needs_stress, training=True)
    if share is None:
        loss = weighted_loss(batch, out, *weights)
        loss.backward()
        return loss.detach()
    loss = weighted_loss(batch, out, *weights, counts=share.counts) * (0.0 if share.stand_in else 1.0)
    (loss * share.processes).backward()
    return loss.detach()


class EagerStep:
    """``step(batch, weights)``: the parameters' gradients set to those of the loss on ``batch``; returns the loss.

    ``model`` may be a ``DistributedDataParallel`` wrapper (its backward pass averages the gradients), with
    ``share`` this process's :class:`ProcessShare` of the global batch.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def __call__(self, batch: GraphBatch, weights: LossWeights, share: ProcessShare | None = None) -> torch.Tensor:
        self.model.zero_grad(set_to_none=True)
        return loss_and_backward(self.model, batch, weights, share)


class GraphedStep:
    """:class:`EagerStep`'s result through a batch padded to ``capacity``, captured as a CUDA graph.

    Args:
        model: a :class:`gaunt_tp.nn.GauntMACE` (not a DDP wrapper: one process); padding edges are twice its
            cutoff long.
        capacity: the padded size; every batch passed must fit (:meth:`BatchCapacity.check`).
        capture: ``True``: capture one CUDA graph per loss weighting (after ``warmup`` eager runs on a side
            stream, as CUDA graph capture requires) and replay it; the model must be on a CUDA device.
            ``False``: run the same padded step eagerly (any device; this is how the padding is tested on CPUs).

    The loss returned is the graph's output tensor when captured: read (or add) it before the next call, which
    overwrites it. After a replay the parameters' ``.grad`` are the graph's gradient tensors; the optimiser reads
    them as usual, and nothing may set them to None in between (``zero_grad`` is not needed: a replay overwrites).
    """

    def __init__(self, model: torch.nn.Module, capacity: BatchCapacity, *, capture: bool, warmup: int = 3) -> None:
        check_capture_device(model, capture)
        self.model, self.capacity, self.capture, self.warmup = model, capacity, capture, warmup
        self.static: GraphBatch | None = None
        self._graphs: dict[LossWeights, tuple[torch.cuda.CUDAGraph, torch.Tensor, list[torch.Tensor | None]]] = {}

    def __call__(self, batch: GraphBatch, weights: LossWeights, share: None = None) -> torch.Tensor:
        if share is not None:
            raise ValueError("a captured step runs in one process: it takes no share of a global batch")
        self.static = pad_into(self.static, batch, self.capacity, self.model.config.r_max)
        weights = LossWeights(*weights)  # plain Python numbers: the key of this loss's captured graph
        weights = LossWeights(*(float(w) for w in weights[:-1]), universal=bool(weights.universal))
        if not self.capture:
            return self._step(weights)
        if weights not in self._graphs:
            device = next(self.model.parameters()).device
            graph, loss = capture_graph(lambda: self._step(weights), device=device, warmup=self.warmup)
            self._graphs[weights] = graph, loss, [p.grad for p in self.model.parameters()]
        graph, loss, grads = self._graphs[weights]
        graph.replay()
        for p, g in zip(self.model.parameters(), grads):  # this graph's gradient tensors, after another's replay
            p.grad = g
        return loss

    def _step(self, weights: LossWeights) -> torch.Tensor:
        """The padded step, eager or as :func:`gaunt_tp.cuda_graphs.capture_graph` calls it: the gradients are set to
        None first, so that the backward pass allocates them (in the graph's memory pool, when capturing)."""
        self.model.zero_grad(set_to_none=True)
        return loss_and_backward(self.model, self.static, weights)
