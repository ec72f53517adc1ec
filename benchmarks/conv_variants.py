"""A convolution term that replaces part of GauntMACE's layers in ``compare_training.py``'s diagnostic contenders.

:class:`EdgeProjections` asks whether the Gaunt convolution's shared radial weights cost accuracy. The Gaunt
convolution has one radial weight per (edge degree l2, channel), or with ``radial_per_input`` per (input irrep,
l2, channel), shared by the output degrees l3 one (l1, l2) reaches. The added term projects each node irrep of
degree l1 >= 1 (natural parity) on the edge's harmonic of that degree, an invariant per edge and channel,

    s_e,c = x_{s(e), c} . Y_l1(u_e) / sqrt(2 l1 + 1)      (component-normalised harmonics)

and sends it out like a scalar feature, ``sum_e R'_e[L, c] s_e,c Y_L(u_e)`` with radial weights of its own per
output degree L. At max_L 1 with ``radial_per_input`` that frees every (l1, l2, l3) path's weight, MACE's
freedom (12 weights per channel for its 10 paths, and one path beyond them, (1, 4, 3)).

A diagnostic in plain PyTorch operations: it answers whether that freedom helps, not how fast it runs.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.nn.radial import RadialMLP
from gaunt_tp.ops.convolution import safe_unit_vectors

__all__ = ["EdgeProjections"]


class EdgeProjections(nn.Module):
    """A GauntMACE layer (``gaunt_tp.nn.model._Layer``) with the projection term added to its convolution.

    The layer's radial MLP is replaced by one with ``len(blocks) * len(sh degrees) * C`` more outputs (drawn
    when this is built); the term is added after the convolution's scaling, divided by the average number of
    neighbours. Same call signature and outputs as the layer.
    """

    def __init__(self, layer: nn.Module, avg_num_neighbors: float, num_radial_basis: int, radial_mlp: tuple) -> None:
        super().__init__()
        conv = layer.conv
        self.layer, self.avg = layer, avg_num_neighbors
        self.channels, self.degrees = conv.channels, conv.sh_degrees
        self.blocks: list[tuple[int, int]] = []  # (offset in the node vector, degree) of each projected irrep
        offset = 0
        for mul, ir in conv.irreps_node:
            if ir.l > 0 and ir.p == (-1) ** ir.l:
                self.blocks.append((offset, ir.l))
            offset += mul * ir.dim
        extra = len(self.blocks) * len(self.degrees) * self.channels
        dtype = next(layer.parameters()).dtype
        layer.radial = RadialMLP(num_radial_basis, tuple(radial_mlp), conv.weight_numel + extra).to(dtype)

    def forward(self, h, one_hot, species, vectors, radial_feats, edge_index, edge_pair, edge_cache):  # noqa: ANN001, ANN201
        layer, c, nw = self.layer, self.channels, self.layer.conv.weight_numel
        w = layer.radial(radial_feats)
        x = layer.linear_up(h)
        a = layer.conv(x, vectors, edge_index, w[:, :nw].contiguous(), radial_index=edge_pair, edge_cache=edge_cache)
        a = a * layer.conv_scale
        unit, _ = safe_unit_vectors(vectors)
        ys = o3.spherical_harmonics(self.degrees, unit, normalize=False, normalization="component")  # [E, sum 2L+1]
        sender, receiver = edge_index
        extra = w[:, nw:].view(-1, len(self.blocks), len(self.degrees), c)[edge_pair]  # [E, k, n_L, C]
        s = 0
        for k, (offset, l1) in enumerate(self.blocks):
            y1 = o3.spherical_harmonics(l1, unit, normalize=False, normalization="component")  # [E, 2 l1 + 1]
            xs = x[:, offset : offset + c * (2 * l1 + 1)].view(-1, c, 2 * l1 + 1)[sender]
            projected = (xs * y1[:, None, :]).sum(-1) / (2 * l1 + 1) ** 0.5  # [E, C]
            s = s + projected[:, None, :] * extra[:, k]  # [E, n_L, C]
        messages, row = [], 0
        for j, l in enumerate(self.degrees):
            y = ys[:, row : row + 2 * l + 1]
            row += 2 * l + 1
            messages.append((s[:, j, :, None] * y[:, None, :]).reshape(len(unit), -1))  # [E, C (2L+1)], e3nn layout
        msg = torch.cat(messages, 1)
        a = a + torch.zeros(h.shape[0], msg.shape[1], dtype=msg.dtype).index_add_(0, receiver, msg) / self.avg
        b = layer.product(layer.linear_a(a), species)
        h_new = layer.linear_out(b) + layer.skip(h, one_hot)
        return h_new, layer.readout(h_new[:, : layer.num_scalars]).squeeze(-1)
