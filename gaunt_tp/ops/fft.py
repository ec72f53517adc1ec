"""Fourier backend: the Gaunt Tensor Product paper's 2D Fourier method, done with real FFTs.

Each input function is expanded in the 2D Fourier basis exp(i (u theta + v phi))
(:mod:`gaunt_tp.math.fourier`), the two expansions are multiplied as a convolution
computed with FFTs, and the product's coefficients are projected back onto the
requested output degrees. The steps, per product:

1. SH -> Fourier, structured: a harmonic with order m only has ``v = +-m``, so the
   transform is block-diagonal in ``v = |m|`` (a batched matmul over v), and only
   the half spectrum ``v >= 0`` of a real function is formed.
2. Convolution by FFT: an inverse FFT in theta (complex) and in phi (real, of
   length ``M_phi``) samples each function on a uniform torus grid; the samples are
   multiplied; a real FFT in phi is truncated to ``v <= lmax_out`` *before* the
   complex FFT in theta and the projection.
3. Fourier -> SH, structured the same way in v.

Grid sizes: with ``U = lmax1 + lmax2`` the product has ``|u|, |v| <= U``; the theta
length ``M_theta >= 2U + 1`` keeps every u unaliased (the projection needs all of
them), the phi length ``M_phi >= U + lmax_out + 1`` keeps ``v <= lmax_out``
unaliased. Both are rounded up to FFT-friendly (2, 3, 5-smooth) lengths.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gaunt_tp.math.fourier import fourier_to_sh, sh_to_fourier
from gaunt_tp.ops.descriptor import ClassLayout, GauntDescriptor
from gaunt_tp.ops.tables import TableCache

__all__ = ["FourierGaunt", "fft_size"]


def fft_size(n: int) -> int:
    """Smallest 2, 3, 5-smooth integer >= n.

    Example:
        >>> fft_size(17), fft_size(31)
        (18, 32)
    """
    m = max(n, 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _groups_by_order(cls: ClassLayout) -> list[list[tuple[int, int, int]]]:
    """Entries (position in class vector, l, m) grouped by v = |m|, v = 0..lmax."""
    groups: list[list[tuple[int, int, int]]] = [[] for _ in range(cls.lmax + 1)]
    pos = 0
    for l in cls.ls:
        for m in range(-l, l + 1):
            groups[abs(m)].append((pos, l, m))
            pos += 1
    return groups


def _synthesis_tables(cls: ClassLayout, m_theta: int, half: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tables for class vector -> zero-padded half spectrum ``[M_theta, half, re/im]``, ``half = M_phi // 2 + 1``.

    Returns:
        index_in ``[V * K]`` (positions gathered from the class vector, padding points
        at 0 and meets zero rows), table ``[V, K, (2L+1) * 2 + 1]`` (last column zero),
        index_out ``[M_theta * half * 2]`` into the flattened ``[V, (2L+1)*2 + 1]`` result.
    """
    lmax = cls.lmax
    e = sh_to_fourier(lmax)  # [dim_all, 2L+1 (u), 2L+1 (v)], centred
    groups = _groups_by_order(cls)
    v_count, k_max = lmax + 1, max(len(g) for g in groups)
    width = (2 * lmax + 1) * 2 + 1
    index_in = torch.zeros(v_count, k_max, dtype=torch.long)
    table = torch.zeros(v_count, k_max, width, dtype=torch.float64)
    for v, group in enumerate(groups):
        for k, (pos, l, m) in enumerate(group):
            index_in[v, k] = pos
            coeff = e[l * l + l + m, :, lmax + v]  # [2L+1] over u
            table[v, k, :-1] = torch.stack([coeff.real, coeff.imag], dim=-1).reshape(-1)
    index_out = torch.full((m_theta, half, 2), width - 1, dtype=torch.long)  # the zero column
    for j in range(m_theta):
        u = j if j <= lmax else j - m_theta
        if -lmax <= u <= lmax:
            for v in range(v_count):
                for c in range(2):
                    index_out[j, v, c] = v * width + (u + lmax) * 2 + c
    return index_in.reshape(-1), table, index_out.reshape(-1)


def _projection_tables(cls: ClassLayout, band: int, m_theta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables for the truncated spectrum ``[M_theta, lmax+1, re/im]`` -> class vector.

    Returns:
        table ``[V, M_theta * 2, K]`` and index_out ``[n]`` into the flattened ``[V, K]`` result.
    """
    lmax = cls.lmax
    w = fourier_to_sh(band, lmax)  # [dim_all, 2 band + 1 (u), 2 lmax + 1 (v)]
    groups = _groups_by_order(cls)
    v_count, k_max = lmax + 1, max(len(g) for g in groups)
    table = torch.zeros(v_count, m_theta, 2, k_max, dtype=torch.float64)
    index_out = torch.zeros(cls.dim, dtype=torch.long)
    for v, group in enumerate(groups):
        scale = 1.0 if v == 0 else 2.0  # v and -v: 2 Re(h W) from the half spectrum
        for k, (pos, l, m) in enumerate(group):
            index_out[pos] = v * k_max + k
            for j in range(m_theta):
                u = j if j <= band else j - m_theta
                if -band <= u <= band:
                    coeff = w[l * l + l + m, u + band, lmax + v]
                    table[v, j, 0, k] = scale * coeff.real
                    table[v, j, 1, k] = -scale * coeff.imag
    return table.reshape(v_count, m_theta * 2, k_max), index_out


class FourierGaunt(nn.Module):
    """2D-Fourier (FFT) Gaunt product on class vectors.

    Shape:
        ``x1 [N1, irreps_in1.dim]``, ``x2 [N2, irreps_in2.dim]`` with N1, N2 equal or 1;
        returns ``[N, irreps_out.dim]``. The samples are ``[N, mul, M_theta, M_phi]``.
    """

    def __init__(self, desc: GauntDescriptor) -> None:
        super().__init__()
        self.desc = desc
        band = desc.lmax1 + desc.lmax2
        self.m_theta = fft_size(2 * band + 1)
        self.m_phi = fft_size(max(band + desc.lmax_out + 1, 2 * desc.lmax1 + 1, 2 * desc.lmax2 + 1))
        tables = {}
        self.in_shapes: dict[str, tuple[int, int]] = {}
        for side, classes in (("a", desc.classes1), ("b", desc.classes2)):
            for i, cls in enumerate(classes):
                idx_in, table, idx_out = _synthesis_tables(cls, self.m_theta, self.m_phi // 2 + 1)
                tables[f"{side}{i}_table"] = table
                self._register_index(f"{side}{i}_in", idx_in)
                self._register_index(f"{side}{i}_out", idx_out)
                self.in_shapes[f"{side}{i}"] = (table.shape[0], table.shape[1])
        self.out_v: list[int] = []
        for i, cls in enumerate(desc.classes_out):
            table, idx_out = _projection_tables(cls, band, self.m_theta)
            tables[f"o{i}_table"] = table
            self._register_index(f"o{i}_out", idx_out)
            self.out_v.append(cls.lmax + 1)
        self.tables = TableCache(tables)
        self.launches = (
            7 * (len(desc.classes1) + len(desc.classes2)) + len(desc.class_pairs) + 7 * len(desc.classes_out) + 4
        )

    def _register_index(self, name: str, index: torch.Tensor) -> None:
        self.register_buffer(name, index, persistent=False)

    @property
    def points(self) -> int:
        return self.m_theta * self.m_phi

    def flops(self, products: int) -> float:
        """Floating-point operations of one forward call on ``products`` (batch x channel) products.

        Real 2D FFTs of M points are counted as ``2.5 M log2 M`` flops each.
        """
        m = self.m_theta * self.m_phi
        fft = 2.5 * m * math.log2(m)
        transforms = 0.0
        for key, (v_count, k_max) in self.in_shapes.items():
            transforms += 2.0 * v_count * k_max * (self.tables.masters[f"{key}_table"].shape[-1])
        for i, v_count in enumerate(self.out_v):
            transforms += 2.0 * self.tables.masters[f"o{i}_table"].numel()
        n_fft = len(self.in_shapes) + len(self.out_v)
        return products * (transforms + n_fft * fft + m * len(self.desc.class_pairs) * 2.0)

    def _synthesize(self, x: torch.Tensor, key: str, t: dict[str, torch.Tensor]) -> torch.Tensor:
        v_count, k_max = self.in_shapes[key]
        lead = x.shape[:-1]
        xg = x.reshape(-1, x.shape[-1]).index_select(-1, getattr(self, f"{key}_in")).view(-1, v_count, k_max)
        spec = torch.einsum("bvk,vkn->bvn", xg, t[f"{key}_table"]).reshape(xg.shape[0], -1)
        spec = spec.index_select(-1, getattr(self, f"{key}_out")).view(-1, self.m_theta, self.m_phi // 2 + 1, 2)
        samples = torch.fft.irfft2(torch.view_as_complex(spec), s=(self.m_theta, self.m_phi), norm="forward")
        return samples.view(*lead, self.m_theta, self.m_phi)

    def _project(self, h: torch.Tensor, i: int, t: dict[str, torch.Tensor]) -> torch.Tensor:
        lead = h.shape[:-2]
        v_count = self.out_v[i]
        spec = torch.fft.rfft2(h.reshape(-1, self.m_theta, self.m_phi), norm="forward")[..., :v_count]
        spec = torch.view_as_real(spec)  # [B, M_theta, V, 2]
        spec = spec.permute(0, 2, 1, 3).reshape(spec.shape[0], v_count, self.m_theta * 2)
        z = torch.einsum("bvj,vjk->bvk", spec, t[f"o{i}_table"]).reshape(spec.shape[0], -1)
        z = z.index_select(-1, getattr(self, f"o{i}_out"))
        return z.view(*lead, -1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        desc = self.desc
        t = self.tables.get(x1.dtype, x1.device)
        x1 = desc.split_classes(x1, desc.blocks1, desc.classes1)
        x2 = desc.split_classes(x2, desc.blocks2, desc.classes2)
        f1 = [self._synthesize(x, f"a{i}", t) for i, x in enumerate(x1)]
        f2 = [self._synthesize(x, f"b{i}", t) for i, x in enumerate(x2)]
        h: list[torch.Tensor | None] = [None] * len(self.desc.classes_out)
        for i1, i2, io in self.desc.class_pairs:
            p = f1[i1] * f2[i2]
            h[io] = p if h[io] is None else h[io] + p
        return desc.merge_out([self._project(hc, i, t) for i, hc in enumerate(h)])  # type: ignore[arg-type]
