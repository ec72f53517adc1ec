"""Grid backend: evaluate both functions on a sphere quadrature grid, multiply, project back.

The grid is the smallest rule exact to degree ``lmax1 + lmax2 + lmax_out``
(:func:`gaunt_tp.math.smallest_grid`: Lebedev, or Gauss-Legendre x equiangular), so it
integrates ``f g Y_lm`` exactly. Transforms are dense matmuls with the sampled
harmonics, halved by the grid's mirror symmetry y -> -y (theta -> pi - theta; the
xz-plane is e3nn's equator):

    Y_lm(pi - theta, phi) = (-1)**(l+m) Y_lm(theta, phi)

so a function splits into its mirror-even part ``f_e`` (l+m even) and mirror-odd
part ``f_o``, each evaluated on the points with y >= 0 only; on the lower
half ``f = f_e - f_o``. The product's mirror-even and -odd parts on the upper half
are ``f_e g_e + f_o g_o`` and ``f_e g_o + f_o g_e``, and each projects onto the
output harmonics of its own mirror parity. Every matmul is half the size of the
plain grid transform; features are gathered once from e3nn's layout into
``[batch * channel, n]`` rows.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.quadrature import mirror_half, smallest_grid
from gaunt_tp.ops.descriptor import ClassLayout, GauntDescriptor
from gaunt_tp.ops.functions import mirror_product, permute_features
from gaunt_tp.ops.tables import TableCache

__all__ = ["GridGaunt"]


def mirror_split(cls: ClassLayout) -> tuple[list[int], list[int], list[int], list[int]]:
    """Class-vector positions and all-degree SH rows of the mirror-even and mirror-odd entries."""
    pos_e, pos_o, row_e, row_o = [], [], [], []
    pos = 0
    for l in cls.ls:
        for m in range(-l, l + 1):
            if (l + m) % 2 == 0:
                pos_e.append(pos)
                row_e.append(l * l + l + m)
            else:
                pos_o.append(pos)
                row_o.append(l * l + l + m)
            pos += 1
    return pos_e, pos_o, row_e, row_o


def _class_gather(cls: ClassLayout, irreps_offsets: list[int], mul: int, order: list[int]) -> list[int]:
    """Indices into e3nn's layout giving ``[mul, n]`` with the class entries in ``order``."""
    flat = []  # e3nn index of class-vector position p for channel 0, and the irrep's 2l+1
    for i, l in zip(cls.irrep_indices, cls.ls):
        for k in range(2 * l + 1):
            flat.append((irreps_offsets[i] + k, 2 * l + 1))
    return [flat[p][0] + c * flat[p][1] for c in range(mul) for p in order]


class GridGaunt(nn.Module):
    """Sphere-grid Gaunt product from e3nn layout to e3nn layout.

    Shape:
        ``x1 [N1, irreps_in1.dim]``, ``x2 [N2, irreps_in2.dim]`` with N1, N2 equal or 1;
        returns ``[N, irreps_out.dim]``. Grid values are ``[N, mul, P/2]`` per mirror part.
    """

    def __init__(self, desc: GauntDescriptor) -> None:
        super().__init__()
        self.desc = desc
        self.grid = smallest_grid(desc.lmax1 + desc.lmax2 + desc.lmax_out)
        points, half_weights = mirror_half(self.grid)
        lmax = max(desc.lmax1, desc.lmax2, desc.lmax_out)
        y = o3.spherical_harmonics(list(range(lmax + 1)), points, normalize=False, normalization="integral")
        w = half_weights.reshape(-1, 1)
        tables: dict[str, torch.Tensor] = {}
        self.splits: dict[str, int] = {}
        self.class_slices: dict[str, tuple[int, int]] = {}
        for side, irreps, classes, mul in (
            ("a", desc.irreps_in1, desc.classes1, desc.mul1),
            ("b", desc.irreps_in2, desc.classes2, desc.mul2),
        ):
            offsets = [s.start for s in irreps.slices()]
            perm: list[int] = []
            for i, cls in enumerate(classes):
                pos_e, pos_o, row_e, row_o = mirror_split(cls)
                self.class_slices[f"{side}{i}"] = (len(perm), cls.dim)
                perm += _class_gather(cls, offsets, mul, pos_e + pos_o)
                self.splits[f"{side}{i}"] = len(pos_e)
                tables[f"{side}{i}_e"] = y[:, row_e].T.contiguous()  # [n_e, P/2]
                tables[f"{side}{i}_o"] = y[:, row_o].T.contiguous()  # [n_o, P/2]
            self._register_permutation(f"{side}_perm", perm)
        out_offsets = [s.start for s in desc.irreps_out.slices()]
        scatter: list[int] = []
        for i, cls in enumerate(desc.classes_out):
            pos_e, pos_o, row_e, row_o = mirror_split(cls)
            scatter += _class_gather(cls, out_offsets, desc.mul, pos_e + pos_o)
            self.splits[f"o{i}"] = len(pos_e)
            tables[f"o{i}_e"] = (w * y[:, row_e]).contiguous()  # [P/2, n_e]
            tables[f"o{i}_o"] = (w * y[:, row_o]).contiguous()  # [P/2, n_o]
        self._register_permutation("out_perm", torch.tensor(scatter).argsort().tolist())
        self.tables = TableCache(tables)
        self.half_points = points.shape[0]
        self.launches = (
            3 * (len(desc.classes1) + len(desc.classes2)) + 4 * len(desc.class_pairs) + 3 * len(desc.classes_out) + 2
        )

    def _register_permutation(self, name: str, perm: list[int]) -> None:
        index = torch.tensor(perm, dtype=torch.long)
        self.register_buffer(name, index, persistent=False)
        self.register_buffer(f"{name}_inverse", index.argsort(), persistent=False)

    @property
    def points(self) -> int:
        return self.grid.size

    def flops(self, products: int) -> float:
        """Floating-point operations of one forward call on ``products`` (batch x channel) products."""
        half = self.half_points
        n1 = sum(c.dim for c in self.desc.classes1)
        n2 = sum(c.dim for c in self.desc.classes2)
        n3 = sum(c.dim for c in self.desc.classes_out)
        return products * half * (2.0 * (n1 + n2 + n3) + 8.0 * len(self.desc.class_pairs))

    def _synthesize(
        self, xp: torch.Tensor, key: str, t: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mirror parts ``[N, mul, P/2]`` of one class from the permuted features ``xp [N, dim]``."""
        ye, yo = t[f"{key}_e"], t[f"{key}_o"]
        n_e = self.splits[key]
        start, dim = self.class_slices[key]
        mul = self.desc.mul1 if key[0] == "a" else self.desc.mul2
        n = xp.shape[0]
        block = xp if start == 0 and xp.shape[1] == mul * dim else xp[:, start : start + mul * dim]
        rows = block.reshape(n * mul, dim)
        fe = (rows[:, :n_e] @ ye).view(n, mul, ye.shape[1])  # sizes spelled out: n may be 0
        fo = (rows[:, n_e:] @ yo).view(n, mul, yo.shape[1]) if yo.shape[0] else None
        return fe, fo

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        desc = self.desc
        t = self.tables.get(x1.dtype, x1.device)
        x1 = permute_features(x1, self.a_perm, self.a_perm_inverse)
        x2 = permute_features(x2, self.b_perm, self.b_perm_inverse)
        f1 = [self._synthesize(x1, f"a{i}", t) for i in range(len(desc.classes1))]
        f2 = [self._synthesize(x2, f"b{i}", t) for i in range(len(desc.classes2))]
        he: list[torch.Tensor | None] = [None] * len(desc.classes_out)
        ho: list[torch.Tensor | None] = [None] * len(desc.classes_out)
        for i1, i2, io in desc.class_pairs:
            even, odd = mirror_product(*f1[i1], *f2[i2])
            he[io] = even if he[io] is None else he[io] + even
            if odd is not None:
                ho[io] = odd if ho[io] is None else ho[io] + odd
        n = max(x1.shape[0], x2.shape[0])
        z = []
        for i in range(len(desc.classes_out)):
            even, odd = he[i], ho[i]  # every output class is reached by a pair, so even is set
            parts = [even.reshape(-1, even.shape[-1]) @ t[f"o{i}_e"]]  # type: ignore[union-attr]
            if t[f"o{i}_o"].shape[1]:
                parts.append(
                    odd.reshape(-1, odd.shape[-1]) @ t[f"o{i}_o"]
                    if odd is not None
                    else parts[0].new_zeros(parts[0].shape[0], t[f"o{i}_o"].shape[1])
                )
            zc = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            z.append(zc.view(n, desc.mul * zc.shape[1]))
        out = z[0] if len(z) == 1 else torch.cat(z, dim=1)
        return permute_features(out, self.out_perm, self.out_perm_inverse)
