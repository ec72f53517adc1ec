"""Grid backend: evaluate both functions at sphere quadrature points, multiply, project back.

Transforms are dense matmuls with the harmonics sampled on the Gauss-Legendre grid
of band ``lmax1 + lmax2 + lmax_out``, which integrates ``f g Y_lm`` exactly.
Cost per product: ``2 P (n1 + n2 + n_out)`` flops for P grid points.
"""

from __future__ import annotations

import torch
from torch import nn

from gaunt_tp.math.conventions import real_spherical_harmonics
from gaunt_tp.math.quadrature import gauss_legendre_grid
from gaunt_tp.ops.descriptor import GauntDescriptor
from gaunt_tp.ops.tables import TableCache

__all__ = ["GridGaunt"]


class GridGaunt(nn.Module):
    """Sphere-grid Gaunt product on class vectors.

    Shape:
        class vectors ``[..., mul, n]`` in, ``[..., C, n_out]`` out (batch dims broadcast);
        the intermediate grid values are ``[..., mul, P]``.
    """

    def __init__(self, desc: GauntDescriptor) -> None:
        super().__init__()
        self.desc = desc
        self.grid = gauss_legendre_grid(desc.lmax1 + desc.lmax2 + desc.lmax_out)
        theta, phi = self.grid.mesh()
        lmax = max(desc.lmax1, desc.lmax2, desc.lmax_out)
        y = real_spherical_harmonics(lmax, theta.reshape(-1), phi.reshape(-1))  # [P, dim]
        w = self.grid.weights.reshape(-1, 1)
        tables = {}
        for side, classes in (("a", desc.classes1), ("b", desc.classes2)):
            for i, cls in enumerate(classes):
                tables[f"{side}{i}"] = y[:, cls.sh_rows()].T.contiguous()  # [n, P]
        for i, cls in enumerate(desc.classes_out):
            tables[f"o{i}"] = (w * y[:, cls.sh_rows()]).contiguous()  # [P, n_out]
        self.tables = TableCache(tables)

    @property
    def points(self) -> int:
        return self.grid.size

    def forward(self, x1: list[torch.Tensor], x2: list[torch.Tensor]) -> list[torch.Tensor]:
        t = self.tables.get(x1[0].dtype, x1[0].device)
        f1 = [x @ t[f"a{i}"] for i, x in enumerate(x1)]
        f2 = [x @ t[f"b{i}"] for i, x in enumerate(x2)]
        h: list[torch.Tensor | None] = [None] * len(self.desc.classes_out)
        for i1, i2, io in self.desc.class_pairs:
            p = f1[i1] * f2[i2]
            h[io] = p if h[io] is None else h[io] + p
        return [hc @ t[f"o{i}"] for i, hc in enumerate(h)]  # type: ignore[operator]
