"""The parity-odd product: the Clebsch-Gordan paths with l1+l2+l3 odd, on a sphere grid.

Gaunt coefficients vanish on the paths with l1+l2+l3 odd (the cross product
1o x 1o -> 1e is one). Those paths are the coefficients of a different bilinear
function of f and g, ``r . (grad f x grad g)`` on the unit sphere
(:func:`gaunt_tp.math.odd_product_coefficients`), which a sphere grid computes at a
grid product's cost: evaluate ``r x grad f`` and ``grad g`` at the points, take the
dot product pointwise, project onto the output harmonics. Both vectors are
tangent to the sphere up to a radial part that drops out of the dot product, so
they are evaluated by their two components in a tangent frame ``(t1, t2)`` at each
point (any orthonormal pair with ``t1 x t2 = r``): two components instead of x, y, z,
which is two thirds of the transforms and of the pointwise work. Each path equals
e3nn's Clebsch-Gordan path times a constant,
``odd_product_coefficients(l1, l2, l3) = c * o3.wigner_3j(l1, l2, l3)``.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.gradients import harmonic_gradients
from gaunt_tp.math.quadrature import smallest_grid
from gaunt_tp.ops.descriptor import GauntDescriptor
from gaunt_tp.ops.fused import FusedOddProduct
from gaunt_tp.ops.native import native_error, native_library
from gaunt_tp.ops.tables import TableCache

__all__ = ["OddPathProduct", "tangent_frames"]


def tangent_frames(points: torch.Tensor) -> torch.Tensor:
    """An orthonormal tangent frame ``(t1, t2)`` with ``t1 x t2 = r`` at each unit vector r.

    ``t1`` is ``a x r`` normalised, with ``a`` the z axis, or the x axis where ``|r_z| > 0.5``
    (so ``a`` is never close to parallel to r); ``t2 = r x t1``.

    Shape:
        points ``[P, 3]`` (unit vectors); returns ``[P, 2, 3]``.

    Example:
        >>> f = tangent_frames(torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
        >>> torch.linalg.cross(f[:, 0], f[:, 1]).tolist()
        [[1.0, 0.0, 0.0]]
    """
    axis = torch.zeros_like(points)
    near_z = points[:, 2].abs() > 0.5
    axis[near_z, 0] = 1.0
    axis[~near_z, 2] = 1.0
    t1 = torch.linalg.cross(axis, points, dim=-1)
    t1 = t1 / t1.norm(dim=-1, keepdim=True)
    t2 = torch.linalg.cross(points, t1, dim=-1)
    return torch.stack([t1, t2], dim=1)


class OddPathProduct(nn.Module):
    """Channel-wise parity-odd product from e3nn layout to e3nn layout.

    ``z_u^{l3 m3} = sum H(l1 m1, l2 m2, l3 m3) x1_u^{l1 m1} x2_u^{l2 m2}`` over the paths
    (l1, p1) x (l2, p2) -> (l3, p3) with p1 p2 = p3, |l1-l2| <= l3 <= l1+l2 and
    l1+l2+l3 odd, where H is :func:`gaunt_tp.math.odd_product_coefficients`.

    Args:
        desc: a :class:`GauntDescriptor` built with ``odd=True``.
        backend: ``"grid"`` (PyTorch operations on the tangent components, any device),
            ``"fused"`` (:class:`gaunt_tp.ops.fused.FusedOddProduct`, the C kernel on Cartesian
            components with parity parts; CPU, float32/float64) or ``"auto"`` (the kernel for
            float32/float64 CPU tensors where it builds, else the grid).

    Shape:
        ``x1 [N1, irreps_in1.dim]``, ``x2 [N2, irreps_in2.dim]`` with N1, N2 equal or 1;
        returns ``[N, irreps_out.dim]``. Grid values are ``[N, mul, 2, P]`` (tangent components).
    """

    def __init__(self, desc: GauntDescriptor, backend: str = "auto") -> None:
        super().__init__()
        if not desc.odd:
            raise ValueError("OddPathProduct needs a descriptor built with odd=True")
        if backend not in ("auto", "grid", "fused"):
            raise ValueError(f"backend must be 'auto', 'grid' or 'fused', got {backend!r}")
        self.desc = desc
        if backend == "fused":
            native_library()  # raises NativeUnavailable with the reason
        self.use_kernel = backend == "fused" or (backend == "auto" and native_error() is None)
        self.always_kernel = backend == "fused"
        self._kernel: FusedOddProduct | None = None  # built on the first call that runs it
        self.grid = smallest_grid(desc.lmax1 + desc.lmax2 + desc.lmax_out - 1)
        r = self.grid.points
        lmax = max(desc.lmax1, desc.lmax2, desc.lmax_out)
        grads = harmonic_gradients(max(desc.lmax1, desc.lmax2), r)  # [P, n_all, 3]
        curls = torch.linalg.cross(r[:, None, :].expand_as(grads), grads, dim=-1)  # r x grad P
        frame = tangent_frames(r)  # [P, 2, 3]
        curls = torch.einsum("pnk,pjk->pnj", curls, frame)  # [P, n_all, 2]
        grads = torch.einsum("pnk,pjk->pnj", grads, frame)
        y = o3.spherical_harmonics(list(range(lmax + 1)), r, normalize=False, normalization="integral")
        tables = {}
        for i, cls in enumerate(desc.classes1):
            tables[f"a{i}"] = curls[:, cls.sh_rows()].permute(1, 2, 0).reshape(cls.dim, -1)  # [n, 2 P]
        for i, cls in enumerate(desc.classes2):
            tables[f"b{i}"] = grads[:, cls.sh_rows()].permute(1, 2, 0).reshape(cls.dim, -1)  # [n, 2 P]
        for i, cls in enumerate(desc.classes_out):
            tables[f"o{i}"] = (self.grid.weights[:, None] * y[:, cls.sh_rows()]).contiguous()  # [P, n]
        self.tables = TableCache(tables)
        self.points = self.grid.size

    def flops(self, products: int) -> float:
        """Floating-point operations of one forward call on ``products`` products."""
        d = self.desc
        n1, n2, n3 = (sum(c.dim for c in cs) for cs in (d.classes1, d.classes2, d.classes_out))
        return products * self.points * (4.0 * (n1 + n2) + 2.0 * n3 + 4.0 * len(d.class_pairs))

    @torch.compiler.disable  # building tables is no part of a graph
    def kernel(self) -> FusedOddProduct:
        """This product in the fused kernel, built on first use (a GPU-only module never builds it)."""
        if self._kernel is None:
            self._kernel = FusedOddProduct(self.desc)
        return self._kernel

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        if self.use_kernel and (self.always_kernel or (x1.is_cpu and x1.dtype in (torch.float32, torch.float64))):
            return self.kernel()(x1, x2)
        desc = self.desc
        t = self.tables.get(x1.dtype, x1.device)
        c1 = desc.split_classes(x1, desc.blocks1, desc.classes1)
        c2 = desc.split_classes(x2, desc.blocks2, desc.classes2)
        curl = [(x @ t[f"a{i}"]).unflatten(-1, (2, self.points)) for i, x in enumerate(c1)]  # [N, mul, 2, P]
        grad = [(x @ t[f"b{i}"]).unflatten(-1, (2, self.points)) for i, x in enumerate(c2)]
        h: list[torch.Tensor | None] = [None] * len(desc.classes_out)
        for i1, i2, io in desc.class_pairs:
            a, b = curl[i1], grad[i2]
            w = torch.addcmul(a[..., 0, :] * b[..., 0, :], a[..., 1, :], b[..., 1, :])  # (r x grad f) . grad g
            h[io] = w if h[io] is None else h[io] + w
        return desc.merge_out([hc @ t[f"o{i}"] for i, hc in enumerate(h)])  # type: ignore[operator]
