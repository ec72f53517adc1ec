"""Fourier backend: the Gaunt Tensor Product paper's 2D Fourier method, with structured transforms.

On a CPU where gaunt-tp's C kernel builds, the same samples and projection run in the fused
kernel (:class:`FusedFourierGaunt`); the PyTorch operations below serve GPUs and the rest.

Each input function is expanded in the 2D Fourier basis exp(i (u theta + v phi))
(:mod:`gaunt_tp.math.fourier`), the two expansions are convolved by the convolution
theorem (both are sampled on a uniform ``M_theta x M_phi`` torus grid by inverse
discrete Fourier transforms, multiplied, and transformed back), and the product's
coefficients are projected onto the requested output degrees. The steps, per function:

1. SH -> theta samples, one small matmul per order ``v = |m|``: a harmonic of order m
   only has the frequencies ``v = +-m``, so SH -> Fourier is block-diagonal in v; it
   is composed with the inverse DFT in theta into one table ``[V, 2 * rows, K]``.
   Only the half spectrum ``v >= 0`` of a real function is formed.
2. Inverse real DFT in phi: one matmul ``[M_phi, 2V]`` over the half spectrum.
3. Pointwise product of the samples.
4. Forward real DFT in phi, truncated to ``v <= lmax_out`` *before* anything else
   (one matmul ``[2 V_out, M_phi]``), then the forward DFT in theta composed with the
   Fourier -> SH projection, again one small matmul per order v.

The DFTs are dense matrix products rather than FFT calls: the lengths here are
2 * lmax + 2 or less (under 40 up to lmax 8), where a matrix product runs far faster
than an FFT library's batched tiny transforms (measured in docs/benchmark-log.md: the
pocketfft version of this backend was 5-12x behind the grid backend).

Torus symmetry: every function here is a polynomial in the Cartesian coordinates, so
``f(2 pi - theta, phi) = f(theta, phi + pi)``. With even ``M_theta`` and ``M_phi`` the
rows ``theta_j``, ``j > M_theta / 2`` repeat rows ``M_theta - j`` shifted by half a
turn in phi, whose phi spectrum is the same times ``(-1)**v``; only the
``rows = M_theta / 2 + 1`` rows with ``theta`` in ``[0, pi]`` are computed, and the
projection table folds the others in.

Grid sizes: with ``U = lmax1 + lmax2`` the product has ``|u|, |v| <= U``; the theta
length ``M_theta >= 2U + 1`` keeps every u unaliased (the projection needs all of
them), the phi length ``M_phi >= U + lmax_out + 1`` keeps ``v <= lmax_out``
unaliased; both are the smallest even numbers that do.

Layout: batch last. Samples are ``[M_phi, rows, N, mul]`` so every step is a plain
matmul or a batched matmul over v with no transposes in between.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gaunt_tp.math.conventions import unit_vectors
from gaunt_tp.math.fourier import fourier_to_sh, sh_to_fourier
from gaunt_tp.ops.descriptor import ClassLayout, GauntDescriptor
from gaunt_tp.ops.fused import FusedProducts, Samples, harmonic_values
from gaunt_tp.ops.native import native_error
from gaunt_tp.ops.tables import TableCache

__all__ = ["FourierGaunt", "FusedFourierGaunt", "torus_samples", "torus_size"]


def torus_size(lmax1: int, lmax2: int, lmax_out: int) -> tuple[int, int]:
    """``(M_theta, M_phi)``: the smallest even lengths that sample a product exactly.

    Example:
        >>> torus_size(8, 8, 8)
        (34, 26)
    """
    band = lmax1 + lmax2
    even = lambda n: n + (n % 2)  # noqa: E731
    return even(2 * band + 1), even(band + lmax_out + 1)


def _groups_by_order(cls: ClassLayout) -> list[list[tuple[int, int, int]]]:
    """Entries (position in class vector, l, m) grouped by v = |m|, v = 0..lmax."""
    groups: list[list[tuple[int, int, int]]] = [[] for _ in range(cls.lmax + 1)]
    pos = 0
    for l in cls.ls:
        for m in range(-l, l + 1):
            groups[abs(m)].append((pos, l, m))
            pos += 1
    return groups


def _theta_angles(m_theta: int, count: int) -> torch.Tensor:
    return 2 * math.pi * torch.arange(count, dtype=torch.float64) / m_theta


def _phi_synthesis(v_count: int, m_phi: int) -> torch.Tensor:
    """Inverse real DFT in phi: ``[M_phi, 2V]``, ``f(phi_k) = sum_v Re(s_v) cos(v phi_k) - Im(s_v) sin(v phi_k)``."""
    phi = 2 * math.pi * torch.arange(m_phi, dtype=torch.float64) / m_phi
    v = torch.arange(v_count, dtype=torch.float64)
    angle = phi[:, None] * v[None, :]
    return torch.stack([torch.cos(angle), -torch.sin(angle)], dim=-1).reshape(m_phi, 2 * v_count)


def _phi_analysis(v_count: int, m_phi: int) -> torch.Tensor:
    """Forward real DFT in phi, truncated to ``v < V``: ``[2V, M_phi]``, (Re, Im) of ``mean_k h_k e^{-i v phi_k}``."""
    phi = 2 * math.pi * torch.arange(m_phi, dtype=torch.float64) / m_phi
    v = torch.arange(v_count, dtype=torch.float64)
    angle = v[:, None] * phi[None, :]
    return torch.stack([torch.cos(angle), -torch.sin(angle)], dim=1).reshape(2 * v_count, m_phi) / m_phi


def _synthesis_tables(cls: ClassLayout, m_theta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class vector -> half spectrum in phi at the theta rows in ``[0, pi]``.

    Returns:
        index_in ``[V * K]`` (class-vector positions gathered into ``[V, K]``; padding
        points at position 0 and meets zero columns) and table ``[V, 2 * rows, K]``:
        ``s_v(theta_j) = scale_v * sum_u E[lm, u, v] exp(i u theta_j)`` as (Re rows, Im rows),
        ``scale_v`` 1 for v = 0 and 2 otherwise (v and -v of a real function).
    """
    lmax = cls.lmax
    e = sh_to_fourier(lmax)  # [dim_all, 2L+1 (u), 2L+1 (v)], centred
    groups = _groups_by_order(cls)
    v_count, k_max = lmax + 1, max(len(g) for g in groups)
    rows = m_theta // 2 + 1
    u = torch.arange(-lmax, lmax + 1, dtype=torch.float64)
    phase = torch.exp(1j * _theta_angles(m_theta, rows)[:, None] * u[None, :])  # [rows, 2L+1]
    index_in = torch.zeros(v_count, k_max, dtype=torch.long)
    table = torch.zeros(v_count, 2, rows, k_max, dtype=torch.float64)
    for v, group in enumerate(groups):
        scale = 1.0 if v == 0 else 2.0
        for k, (pos, l, m) in enumerate(group):
            index_in[v, k] = pos
            s = scale * (phase @ e[l * l + l + m, :, lmax + v])  # [rows]
            table[v, 0, :, k] = s.real
            table[v, 1, :, k] = s.imag
    return index_in.reshape(-1), table.reshape(v_count, 2 * rows, k_max)


def _projection_tables(cls: ClassLayout, band: int, m_theta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Phi spectrum ``[V, 2 * rows]`` (Re rows, Im rows) at the theta rows in ``[0, pi]`` -> class vector.

    ``z_lm = sum_{j, v} Re(G[lm, j, v] H[j, v])`` with ``H`` the phi spectrum of row j and
    ``G[lm, j, v] = scale_v / M_theta * sum_u W[lm, u, v] exp(-i u theta_j)`` (the forward
    DFT in theta composed with :func:`gaunt_tp.math.fourier_to_sh`); rows ``j > M_theta/2``
    are folded onto ``M_theta - j`` with the factor ``(-1)**v``.

    Returns:
        table ``[V, K, 2 * rows]`` and index_out ``[dim]`` into the flattened ``[V, K]`` result.
    """
    lmax = cls.lmax
    w = fourier_to_sh(band, lmax)  # [dim_all, 2 band + 1 (u), 2 lmax + 1 (v)]
    groups = _groups_by_order(cls)
    v_count, k_max = lmax + 1, max(len(g) for g in groups)
    rows = m_theta // 2 + 1
    u = torch.arange(-band, band + 1, dtype=torch.float64)
    phase = torch.exp(-1j * _theta_angles(m_theta, m_theta)[:, None] * u[None, :]) / m_theta  # [M_theta, 2band+1]
    table = torch.zeros(v_count, k_max, 2, rows, dtype=torch.float64)
    index_out = torch.zeros(cls.dim, dtype=torch.long)
    for v, group in enumerate(groups):
        scale = 1.0 if v == 0 else 2.0
        for k, (pos, l, m) in enumerate(group):
            index_out[pos] = v * k_max + k
            g = scale * (phase @ w[l * l + l + m, :, lmax + v])  # [M_theta]
            folded = g[:rows].clone()
            mirror = torch.arange(1, m_theta // 2)
            folded[mirror] += (-1) ** v * g[m_theta - mirror]
            table[v, k, 0] = folded.real  # Re(G H) = Re G Re H - Im G Im H
            table[v, k, 1] = -folded.imag
    return table.reshape(v_count, k_max, 2 * rows), index_out


def torus_samples(lmax1: int, lmax2: int, lmax_out: int) -> Samples:
    """The half torus of this backend as :class:`gaunt_tp.ops.fused.Samples`, for the fused kernel.

    Samples ``(theta_j, phi_k)``, ``j = 0..M_theta/2``, ``k < M_phi``, ordered phi-major; the
    projection is this backend's (forward real DFT in phi truncated to ``v <= lmax_out``, forward
    DFT in theta composed with the exact Fourier -> SH projection, the other half of the torus
    folded in) written out per sample, exact for products of degrees ``lmax1`` and ``lmax2``. The
    mirrors act on indices: y -> -y is theta -> pi - theta, x -> -x is phi -> -phi, z -> -z is
    phi -> pi - phi (``x = sin(theta) sin(phi)``, ``z = sin(theta) cos(phi)``).
    """
    m_theta, m_phi = torus_size(lmax1, lmax2, lmax_out)
    rows = m_theta // 2 + 1
    cls = ClassLayout(sign=1, irrep_indices=tuple(range(lmax_out + 1)), ls=tuple(range(lmax_out + 1)))
    table, index_out = _projection_tables(cls, lmax1 + lmax2, m_theta)  # [V, K, 2 rows], position -> v K + k
    v_count, k_max = table.shape[0], table.shape[1]
    psi = _phi_analysis(v_count, m_phi).view(v_count, 2, m_phi)
    full = torch.einsum("vkcj,vcf->fjvk", table.view(v_count, k_max, 2, rows), psi)
    projection = full.reshape(m_phi * rows, v_count * k_max)[:, index_out]  # [P, (lmax_out+1)**2]
    theta = _theta_angles(m_theta, rows)
    phi = 2 * math.pi * torch.arange(m_phi, dtype=torch.float64) / m_phi
    points = unit_vectors(theta[None, :], phi[:, None]).reshape(-1, 3)
    k, j = torch.meshgrid(torch.arange(m_phi), torch.arange(rows), indexing="ij")
    index = lambda kk, jj: (kk % m_phi * rows + jj).reshape(-1)  # noqa: E731
    mirrors = {0: index(-k, j), 1: index(k, m_theta // 2 - j), 2: index(m_phi // 2 - k, j)}
    return Samples(points, projection, mirrors)


class FusedFourierGaunt(FusedProducts):
    """This backend's product in the fused C kernel (:mod:`gaunt_tp.ops.fused`; CPU, float32/float64).

    The convolution theorem on the half torus of :func:`torus_samples`: both functions are
    sampled there (the SH -> Fourier change of basis composed with the inverse DFTs is the
    evaluation of the harmonics at the samples), multiplied, and projected back with this
    backend's exact Fourier projection written out per sample; the kernel splits everything
    into parity parts under the torus's mirrors, like the sphere-grid kernel.

    Shape:
        as :class:`FourierGaunt`.
    """

    def __init__(self, desc: GauntDescriptor) -> None:
        harmonics = harmonic_values(max(desc.lmax1, desc.lmax2, desc.lmax_out))
        samples = torus_samples(desc.lmax1, desc.lmax2, desc.lmax_out)
        super().__init__(desc, samples, {"a": [harmonics], "b": [harmonics], "o": [harmonics]})


def _e3nn_positions(cls: ClassLayout, irreps_offsets: list[int]) -> list[tuple[int, int]]:
    """For each class-vector entry: (index in e3nn's layout for channel 0, stride between channels = 2l+1)."""
    out = []
    for i, l in zip(cls.irrep_indices, cls.ls):
        out += [(irreps_offsets[i] + k, 2 * l + 1) for k in range(2 * l + 1)]
    return out


class FourierGaunt(nn.Module):
    """2D-Fourier Gaunt product from e3nn layout to e3nn layout.

    Shape:
        ``x1 [N1, irreps_in1.dim]``, ``x2 [N2, irreps_in2.dim]`` with N1, N2 equal or 1;
        returns ``[N, irreps_out.dim]`` (a transposed view). The samples are
        ``[M_phi, rows, mul, N]``.

    Args:
        desc: what to compute.
        fused: run float32/float64 CPU inputs in the fused C kernel (:class:`FusedFourierGaunt`,
            the same samples and projection) instead of the PyTorch operations below. ``None``
            (default): where the kernel builds (:func:`gaunt_tp.ops.native.native_error`).

    PyTorch path: on a CPU the batch is cut into chunks of nodes whose samples take about
    :attr:`chunk_bytes` (2 MiB): they stay in cache and are reused from the allocator's
    free lists instead of being fresh pages on every call (measured in
    docs/benchmark-log.md). On a GPU the whole batch goes at once.
    """

    chunk_bytes = 2 << 20

    def __init__(self, desc: GauntDescriptor, fused: bool | None = None) -> None:
        super().__init__()
        self.desc = desc
        self.use_kernel = native_error() is None if fused is None else fused
        self._kernel: FusedFourierGaunt | None = None  # built on the first call that runs it
        band = desc.lmax1 + desc.lmax2
        self.m_theta, self.m_phi = torus_size(desc.lmax1, desc.lmax2, desc.lmax_out)
        self.rows = self.m_theta // 2 + 1
        tables = {}
        self.in_shapes: dict[str, tuple[int, int, int]] = {}
        for side, irreps, classes, mul in (
            ("a", desc.irreps_in1, desc.classes1, desc.mul1),
            ("b", desc.irreps_in2, desc.classes2, desc.mul2),
        ):
            offsets = [sl.start for sl in irreps.slices()]
            for i, cls in enumerate(classes):
                idx_in, table = _synthesis_tables(cls, self.m_theta)
                where = _e3nn_positions(cls, offsets)
                gather = [where[p][0] + c * where[p][1] for p in idx_in.tolist() for c in range(mul)]
                tables[f"{side}{i}_theta"] = table
                tables[f"{side}{i}_phi"] = _phi_synthesis(cls.lmax + 1, self.m_phi)
                self.register_buffer(f"{side}{i}_in", torch.tensor(gather), persistent=False)
                self.in_shapes[f"{side}{i}"] = (table.shape[0], table.shape[2], mul)
        self.out_shapes: list[tuple[int, int]] = []
        offsets = [sl.start for sl in desc.irreps_out.slices()]
        scatter = torch.zeros(desc.irreps_out.dim, dtype=torch.long)
        base = 0
        for i, cls in enumerate(desc.classes_out):
            table, idx_out = _projection_tables(cls, band, self.m_theta)
            tables[f"o{i}_theta"] = table
            tables[f"o{i}_phi"] = _phi_analysis(cls.lmax + 1, self.m_phi)
            for p, (at, stride) in enumerate(_e3nn_positions(cls, offsets)):
                for c in range(desc.mul):
                    scatter[at + c * stride] = base + int(idx_out[p]) * desc.mul + c
            base += table.shape[0] * table.shape[1] * desc.mul
            self.out_shapes.append((table.shape[0], table.shape[1]))
        self.register_buffer("out_index", scatter, persistent=False)
        self.tables = TableCache(tables)
        self.launches = 3 * (len(desc.classes1) + len(desc.classes2)) + 2 * len(desc.class_pairs)
        self.launches += 2 * len(desc.classes_out) + 2

    @property
    def points(self) -> int:
        """Torus samples per function that are computed (theta in [0, pi])."""
        return self.rows * self.m_phi

    def flops(self, products: int) -> float:
        """Floating-point operations of one forward call on ``products`` (batch x channel) products."""
        rows, m_phi = self.rows, self.m_phi
        total = 0.0
        for v_count, k_max in (*(s[:2] for s in self.in_shapes.values()), *self.out_shapes):
            total += 2.0 * v_count * k_max * 2 * rows + 2.0 * 2 * v_count * m_phi * rows
        return products * (total + 2.0 * rows * m_phi * len(self.desc.class_pairs))

    def _synthesize(self, xt: torch.Tensor, key: str, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Samples ``[M_phi, rows, mul, N]`` of one class of ``xt [irreps.dim, N]`` (e3nn layout, transposed)."""
        v_count, k_max, mul = self.in_shapes[key]
        n = xt.shape[1]
        xg = xt.index_select(0, getattr(self, f"{key}_in")).view(v_count, k_max, mul * n)
        spec = torch.bmm(t[f"{key}_theta"], xg)  # [V, 2 * rows, mul * N] = [V, 2, rows, mul, N]
        samples = t[f"{key}_phi"] @ spec.view(2 * v_count, -1)
        return samples.view(self.m_phi, self.rows, mul, n)

    def _project(self, h: torch.Tensor, i: int, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Coefficients ``[V * K * mul, N]`` of one output class from the samples ``h [M_phi, rows, mul, N]``."""
        v_count, k_max = self.out_shapes[i]
        spec = t[f"o{i}_phi"] @ h.reshape(self.m_phi, -1)  # [2V, rows * mul * N] = [V, 2, rows, mul, N]
        z = torch.bmm(t[f"o{i}_theta"], spec.view(v_count, 2 * self.rows, -1))  # [V, K, mul * N]
        return z.view(v_count * k_max * h.shape[2], h.shape[3])

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        if self.use_kernel and x1.is_cpu and x1.dtype in (torch.float32, torch.float64):
            return self.kernel()(x1, x2)
        n = max(x1.shape[0], x2.shape[0])
        per_node = self.rows * self.m_phi * self.desc.mul * x1.element_size()
        step = max(1, self.chunk_bytes // per_node)
        x1t, x2t = x1.t(), x2.t()
        if n <= step or x1.device.type != "cpu":
            return self._forward(x1t, x2t).t()
        pick = lambda x, i: x if x.shape[1] == 1 else x[:, i : i + step]  # noqa: E731
        return torch.cat([self._forward(pick(x1t, i), pick(x2t, i)) for i in range(0, n, step)], dim=1).t()

    @torch.compiler.disable  # building tables is no part of a graph
    def kernel(self) -> FusedFourierGaunt:
        """This product in the fused kernel, built on first use (a GPU-only module never builds it)."""
        if self._kernel is None:
            self._kernel = FusedFourierGaunt(self.desc)
        return self._kernel

    def _forward(self, x1t: torch.Tensor, x2t: torch.Tensor) -> torch.Tensor:
        desc = self.desc
        t = self.tables.get(x1t.dtype, x1t.device)
        f1 = [self._synthesize(x1t, f"a{i}", t) for i in range(len(desc.classes1))]
        f2 = [self._synthesize(x2t, f"b{i}", t) for i in range(len(desc.classes2))]
        h: list[torch.Tensor | None] = [None] * len(desc.classes_out)
        for i1, i2, io in desc.class_pairs:
            p = f1[i1] * f2[i2]
            h[io] = p if h[io] is None else h[io] + p
        z = [self._project(hc, i, t) for i, hc in enumerate(h)]  # type: ignore[arg-type]
        z_all = z[0] if len(z) == 1 else torch.cat(z)
        return z_all.index_select(0, self.out_index)
