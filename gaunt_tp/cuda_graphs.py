"""A model's work captured once as a CUDA graph and replayed, on batches padded to fixed sizes.

On a GPU a MACE-sized model on one molecule, or a training step on a few, is bound by kernel launches: thousands
of small kernels, each launched from Python (and, for forces, through the autograd engine). A CUDA graph
launches them all as one unit. It replays fixed shapes at fixed addresses, so batches are padded to one
:class:`gaunt_tp.data.padding.BatchCapacity` (padding that changes no real result) and copied into the tensors
the graph reads. The model's range checks of indices are skipped while capturing (they read values back to the
host, which a capture forbids); the eager warm-up calls before each capture run them.

- :func:`capture_graph`: the warm-up and the capture of any function.
- :class:`GraphedPotential`: energies, forces and stress of a potential (the ASE calculator's ``cuda_graph=True``,
  the validation of ``gaunt-tp train --cuda_graph``).
- :class:`gaunt_tp.training.step.GraphedStep`: a training step (``gaunt-tp train --cuda_graph``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch

from gaunt_tp.data.graph import GraphBatch
from gaunt_tp.data.padding import BatchCapacity, pad_into

__all__ = ["GraphedPotential", "capture_graph", "check_capture_device"]

T = TypeVar("T")


def check_capture_device(model: torch.nn.Module, capture: bool) -> None:
    """A ``ValueError`` when ``capture`` is asked for a model that is not on a CUDA device."""
    if capture and next(model.parameters()).device.type != "cuda":
        raise ValueError("capturing a CUDA graph needs the model on a CUDA device")


def capture_graph(fn: Callable[[], T], *, device: torch.device, warmup: int = 3) -> tuple[torch.cuda.CUDAGraph, T]:
    """``fn()`` captured as a CUDA graph, after ``warmup`` eager calls on a side stream (as capture requires:
    lazy initialisation, tables moved to the device, the allocator's first blocks). Returns the graph and the
    captured call's outputs, which every ``graph.replay()`` overwrites in place.

    ``device`` is the GPU that ``fn``'s tensors are on: streams and graphs belong to the current device, so it is
    made current for the capture (a model on ``cuda:1`` while ``cuda:0`` is current would otherwise run outside it).
    """
    with torch.cuda.device(device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
    return graph, out


class GraphedPotential:
    """A potential's energies, forces and (optionally) stress, on batches padded to a capacity, captured per
    capacity and stress flag and replayed.

    Args:
        model: a :class:`gaunt_tp.nn.GauntMACE` (frozen or not; no gradient reaches its weights here).
        capture: ``True``: CUDA graphs (the model on a CUDA device). ``False``: the same padded calls, eager (any
            device; how the padding is tested on CPUs).
        margin: a new capacity holds ``margin`` times the atoms, edges and pairs of the batch that outgrew the
            last one, so that an MD trajectory, whose edge count wanders, recaptures rarely.

    ``potential(batch, compute_stress=False)``, called as the model is (for the training loop's evaluation and the
    calculator), returns the model's ``energy [B]``, ``node_energy [n]``, ``forces [n, 3]`` and, with
    ``compute_stress``, ``stress [B, 3, 3]`` for ``batch`` alone, detached: views of the graph's outputs, valid until
    the next call. ``captures`` counts the graphs captured so far.
    """

    def __init__(self, model: torch.nn.Module, *, capture: bool, margin: float = 1.25) -> None:
        check_capture_device(model, capture)
        if margin < 1.0:
            raise ValueError(f"margin must be >= 1, got {margin}")
        self.model, self.capture, self.margin = model, capture, float(margin)
        self.capacity: BatchCapacity | None = None
        self.static: GraphBatch | None = None
        self.captures = 0
        self._graphs: dict[bool, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]] = {}

    def _grown(self, batch: GraphBatch) -> BatchCapacity:
        b, grow = batch.num_graphs, lambda count: math.ceil(self.margin * count)  # noqa: E731
        old = self.capacity or BatchCapacity(graphs=b, nodes=0, edges=0, pairs=0)
        return BatchCapacity(
            graphs=max(old.graphs, b),
            nodes=max(old.nodes, grow(batch.positions.shape[0]) + max(old.graphs, b) + 1),
            edges=max(old.edges, grow(batch.edge_index.shape[1]) + 1),
            pairs=max(old.pairs, grow(batch.pair_edge.shape[0]) + 1),
        )

    def _call(self, compute_stress: bool) -> dict[str, torch.Tensor]:
        with torch.enable_grad():
            out = self.model(self.static, compute_forces=True, compute_stress=compute_stress)
        return {key: value.detach() for key, value in out.items()}

    def __call__(
        self, batch: GraphBatch, *, compute_forces: bool = True, compute_stress: bool = False
    ) -> dict[str, torch.Tensor]:
        if not compute_forces:
            raise ValueError("GraphedPotential computes forces always (compute_forces=True, the model's default)")
        if self.capacity is None or not self.capacity.fits(batch):  # first call, or outgrown: new graphs
            self.capacity, self.static, self._graphs = self._grown(batch), None, {}
        self.static = pad_into(self.static, batch, self.capacity, self.model.config.r_max)
        if not self.capture:
            out = self._call(compute_stress)
        else:
            if compute_stress not in self._graphs:
                device = next(self.model.parameters()).device
                self._graphs[compute_stress] = capture_graph(lambda: self._call(compute_stress), device=device)
                self.captures += 1
            graph, out = self._graphs[compute_stress]
            graph.replay()
        b, n = batch.num_graphs, batch.positions.shape[0]
        sizes = {"energy": b, "node_energy": n, "forces": n, "stress": b}
        return {key: value[: sizes[key]] for key, value in out.items()}
