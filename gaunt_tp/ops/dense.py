"""Dense backend: contract with the precomputed Gaunt tensor. The oracle, O(L^6)."""

from __future__ import annotations

import torch
from torch import nn

from gaunt_tp.math.gaunt import gaunt
from gaunt_tp.ops.descriptor import ClassLayout, GauntDescriptor
from gaunt_tp.ops.tables import TableCache

__all__ = ["DenseGaunt", "class_gaunt_tensor"]


def class_gaunt_tensor(c1: ClassLayout, c2: ClassLayout, c3: ClassLayout) -> torch.Tensor:
    """Gaunt coefficients between three class vectors, ``[c1.dim, c2.dim, c3.dim]`` float64."""
    out = torch.zeros(c1.dim, c2.dim, c3.dim, dtype=torch.float64)
    o1 = 0
    for l1 in c1.ls:
        o2 = 0
        for l2 in c2.ls:
            o3_ = 0
            for l3 in c3.ls:
                out[o1 : o1 + 2 * l1 + 1, o2 : o2 + 2 * l2 + 1, o3_ : o3_ + 2 * l3 + 1] = gaunt(l1, l2, l3)
                o3_ += 2 * l3 + 1
            o2 += 2 * l2 + 1
        o1 += 2 * l1 + 1
    return out


class DenseGaunt(nn.Module):
    """``z[c] = sum_{pairs} sum_ij x1[a]_i x2[b]_j G[a, b, c]_ijk`` with the full Gaunt tensor.

    Contracted as ``x1 @ G`` then a batched product with x2: O(n1 n2 n3) per product.

    Shape:
        ``x1 [N1, irreps_in1.dim]``, ``x2 [N2, irreps_in2.dim]`` with N1, N2 equal or 1;
        returns ``[N, irreps_out.dim]``.
    """

    def __init__(self, desc: GauntDescriptor) -> None:
        super().__init__()
        self.desc = desc
        tables = {}
        for i1, i2, io in desc.class_pairs:
            tables[f"g{i1}{i2}{io}"] = class_gaunt_tensor(desc.classes1[i1], desc.classes2[i2], desc.classes_out[io])
        self.tables = TableCache(tables)
        d = desc
        self.launches = 4 * len(d.class_pairs) + 2 * (len(d.classes1) + len(d.classes2) + len(d.classes_out))

    def flops(self, products: int) -> float:
        """Floating-point operations of one forward call on ``products`` (batch x channel) products."""
        d = self.desc
        return (
            2.0
            * products
            * sum(d.classes1[a].dim * d.classes2[b].dim * (d.classes_out[c].dim + 1) for a, b, c in d.class_pairs)
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        desc = self.desc
        t = self.tables.get(x1.dtype, x1.device)
        x1 = desc.split_classes(x1, desc.blocks1, desc.classes1)
        x2 = desc.split_classes(x2, desc.blocks2, desc.classes2)
        out: list[torch.Tensor | None] = [None] * len(self.desc.classes_out)
        for i1, i2, io in self.desc.class_pairs:
            a, b = torch.broadcast_tensors(x1[i1][..., :1], x2[i2][..., :1])
            shape = a.shape[:-1]
            n1, n2 = x1[i1].shape[-1], x2[i2].shape[-1]
            g = t[f"g{i1}{i2}{io}"]  # [n1, n2, n3]
            xa = x1[i1].expand(*shape, n1).reshape(-1, n1)
            xb = x2[i2].expand(*shape, n2).reshape(-1, 1, n2)
            partial = (xa @ g.reshape(n1, -1)).view(-1, n2, g.shape[2])  # [B, n2, n3]
            z = torch.bmm(xb, partial).reshape(*shape, g.shape[2])
            out[io] = z if out[io] is None else out[io] + z
        return desc.merge_out(out)  # type: ignore[arg-type]
