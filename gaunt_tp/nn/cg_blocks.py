"""Clebsch-Gordan (e3nn) counterparts of the Gaunt blocks, for comparisons inside one model."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.ops.convolution import safe_unit_vectors
from gaunt_tp.ops.descriptor import as_irreps

__all__ = ["CGConvolution"]


class CGConvolution(nn.Module):
    """MACE's convolution: e3nn's 'uvu' TensorProduct on every Clebsch-Gordan path, scatter-summed.

    Same interface as :class:`gaunt_tp.ops.GauntConvolution`, with one radial weight per path
    and channel (e3nn's freedom) instead of one per edge degree and channel:
    ``weight_numel = (number of paths) * C``, laid out path-major as e3nn expects. The edge
    harmonics are component-normalised (``sum_m Y_lm^2 = 2l + 1``), as in MACE, so that each
    message has MACE's scale.

    Shape:
        ``forward(node_features [N, irreps_node.dim], edge_vectors [E, 3], edge_index [2, E],
        radial_weights [E, weight_numel])`` -> ``[N, irreps_out.dim]``.
    """

    def __init__(self, irreps_node: o3.Irreps | str, irreps_sh: o3.Irreps | str, irreps_out: o3.Irreps | str) -> None:
        super().__init__()
        self.irreps_node = as_irreps(irreps_node, "irreps_node")
        self.irreps_sh = as_irreps(irreps_sh, "irreps_sh")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        instructions = [
            (i1, i2, io, "uvu", True)
            for i1, (_, ir1) in enumerate(self.irreps_node)
            for i2, (_, ir2) in enumerate(self.irreps_sh)
            for io, (_, ir3) in enumerate(self.irreps_out)
            if ir3 in ir1 * ir2
        ]
        if not instructions:
            raise ValueError(f"no path from {self.irreps_node} x {self.irreps_sh} to {self.irreps_out}")
        self.tp = o3.TensorProduct(
            self.irreps_node,
            self.irreps_sh,
            self.irreps_out,
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.weight_numel = self.tp.weight_numel

    def forward(
        self,
        node_features: torch.Tensor,
        edge_vectors: torch.Tensor,
        edge_index: torch.Tensor,
        radial_weights: torch.Tensor,
        *,
        radial_index: torch.Tensor | None = None,
        edge_cache: dict | None = None,
    ) -> torch.Tensor:
        """As :class:`gaunt_tp.ops.GauntConvolution`'s forward (``radial_index``: rows shared by edges;
        ``edge_cache`` is accepted and left unused: nothing here is shared between layers)."""
        if radial_index is not None:
            radial_weights = radial_weights.index_select(0, radial_index)
        unit, _ = safe_unit_vectors(edge_vectors)
        sh = o3.spherical_harmonics(self.irreps_sh, unit, normalize=False, normalization="component")
        messages = self.tp(node_features[edge_index[0]], sh, radial_weights)
        out = messages.new_zeros(node_features.shape[0], self.irreps_out.dim)
        return out.index_add(0, edge_index[1], messages)
