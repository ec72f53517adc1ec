"""Many-body blocks that replace GauntMACE's in ``compare_training.py``'s diagnostic contenders.

Each class is built from the :class:`gaunt_tp.nn.GauntManyBody` it replaces (its irreps, grid tables and
index maps) and has its call signature, ``forward(node_features [N, irreps_in.dim], species [N])``:

- :class:`MaceProduct`: mace-torch's ``SymmetricContraction`` (a free weight on every coupling path);
- :class:`AllPaths`: a free, element-dependent combination of every Gaunt monomial ``P_L(g_i1 ... g_inu)``;
- :class:`Intermediate`: the default block, its third body order's pair product weighted per intermediate
  degree;
- :class:`OddIntermediates`: the default block plus paths through parity-odd intermediate degrees.

Diagnostics in plain PyTorch operations: they answer which freedom the default block lacks, not how fast.
"""

from __future__ import annotations

import itertools

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.gradients import harmonic_gradients
from gaunt_tp.math.quadrature import smallest_grid
from gaunt_tp.nn import GauntManyBody
from gaunt_tp.ops.odd import tangent_frames

__all__ = ["AllPaths", "Intermediate", "MaceProduct", "OddIntermediates"]


def _inverse_rms(z: torch.Tensor, degree_out: torch.Tensor, n_out: int, dims: tuple[int, ...]) -> torch.Tensor:
    """``1 / RMS`` of ``z [..., output entries]`` per output irrep (last axis), over ``dims``; 0 where z is 0."""
    rms = torch.stack([z[..., degree_out == i].square().mean(dim=dims) for i in range(n_out)], -1).sqrt()
    return torch.where(rms > 1e-8, 1 / rms.clamp_min(1e-8), 0.0)


class MaceProduct(nn.Module):
    """mace-torch's SymmetricContraction with the replaced block's irreps, correlation and elements."""

    def __init__(self, gaunt: GauntManyBody) -> None:
        super().__init__()
        from mace.modules.irreps_tools import reshape_irreps
        from mace.modules.symmetric_contraction import SymmetricContraction

        self.reshape = reshape_irreps(gaunt.irreps_in)
        self.contraction = SymmetricContraction(
            gaunt.irreps_in, gaunt.irreps_out, correlation=gaunt.correlation, num_elements=gaunt.num_elements
        )
        self.num_elements = gaunt.num_elements

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        one_hot = torch.nn.functional.one_hot(species, self.num_elements).to(x.dtype)
        return self.contraction(self.reshape(x), one_hot)


class AllPaths(nn.Module):
    """``out^L = sum_paths w[z, path, L, c] N[path, L] P_L(g_i1 ... g_inu)`` over all monomials
    ``i1 <= ... <= inu``, ``nu <= 3``, with ``g_i`` the grid function of input irrep i alone (34 monomials
    for 4 input degrees): the Gaunt product form with every coefficient free."""

    def __init__(self, gaunt: GauntManyBody) -> None:
        super().__init__()
        if gaunt.correlation != 3:
            raise ValueError("the all-paths diagnostic is written for correlation 3")
        self.tables, self.channels = gaunt.tables, gaunt.channels  # the replaced block's grid tables and maps
        for name in ("perm_in", "perm_out_inverse", "degree_out"):
            self.register_buffer(name, getattr(gaunt, name), persistent=False)
        degrees = gaunt.degree_in.tolist()
        self.slices = [(degrees.index(i), degrees.index(i) + degrees.count(i)) for i in range(len(gaunt.irreps_in))]
        monomials = [
            m for nu in range(1, 4) for m in itertools.combinations_with_replacement(range(len(gaunt.irreps_in)), nu)
        ]
        pairs = [m for m in monomials if len(m) == 2]
        triples = [m for m in monomials if len(m) == 3]
        self.register_buffer("i2", torch.tensor([p[0] for p in pairs]), persistent=False)
        self.register_buffer("j2", torch.tensor([p[1] for p in pairs]), persistent=False)
        self.register_buffer("i3", torch.tensor([pairs.index(t[:2]) for t in triples]), persistent=False)
        self.register_buffer("j3", torch.tensor([t[2] for t in triples]), persistent=False)
        n_out = len(gaunt.irreps_out)
        self.weights = nn.Parameter(
            torch.randn(gaunt.num_elements, len(monomials), n_out, gaunt.channels) / len(monomials) ** 0.5
        )
        with torch.no_grad():
            a = torch.randn(256, 1, len(degrees), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            norm = _inverse_rms(self.project(a), self.degree_out, n_out, (0, 1, 3))  # [monomials, n_out]
        self.register_buffer("norm", norm, persistent=False)

    def project(self, a: torch.Tensor) -> torch.Tensor:
        t = self.tables.get(a.dtype, a.device)
        g = torch.stack([a[..., s:e] @ t["synth"][s:e] for s, e in self.slices], 2)  # [N, C, n_in, P]
        m2 = g[:, :, self.i2] * g[:, :, self.j2]
        m3 = m2[:, :, self.i3] * g[:, :, self.j3]
        return torch.cat([g, m2, m3], 2) @ t["proj"]  # [N, C, monomials, n_out entries]

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        z = self.project(x.index_select(1, self.perm_in).view(n, self.channels, -1))
        w = (self.weights[species] * self.norm[None, :, :, None]).index_select(2, self.degree_out)
        out = torch.einsum("ncme,nmec->nce", z, w)
        return out.reshape(n, -1).index_select(1, self.perm_out_inverse)


class _ExtraTerm(nn.Module):
    """The replaced block, unchanged, plus a term made from its three factors ``f_k = S (a * u_k)``.

    Subclasses give ``term(a [N, C, n_in], u (three [N, C, n_in]), species) -> [N, C, n_out entries]`` and
    ``weights(species) -> [N, n_out irreps, C]``.
    """

    def __init__(self, gaunt: GauntManyBody, what: str) -> None:
        super().__init__()
        if gaunt.correlation != 3 or gaunt.num_products != 1 or gaunt.factor is None:
            raise ValueError(f"the {what} diagnostic is written for correlation 3, one product, factor weights")
        self.gaunt = gaunt

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        gb = self.gaunt
        n, c = x.shape[0], gb.channels
        a = x.index_select(1, gb.perm_in).view(n, c, -1)
        u = gb.factor[species].index_select(2, gb.degree_in).transpose(2, 3)  # [N, 3, C, n_in]
        z = self.term(a, [u[:, k] for k in range(3)], species)
        w = self.weights(species).index_select(1, gb.degree_out)  # [N, n_out entries, C]
        return gb(x, species) + (z * w.transpose(1, 2)).reshape(n, -1).index_select(1, gb.perm_out_inverse)


class Intermediate(_ExtraTerm):
    """The third body order's pair product weighted per intermediate degree: ``f_1 f_2`` projected onto every
    degree L' <= 2 lmax_in, each scaled by a learnable element- and channel-dependent factor ``m``,
    synthesised again and multiplied by ``f_3``. Written as the default block plus the change,
    ``w_3 N_3 P_out(S((m - 1) P(f_1 f_2)) f_3)``, which is zero at ``m = 1`` (the start)."""

    def __init__(self, gaunt: GauntManyBody) -> None:
        super().__init__(gaunt, "intermediate-degree")
        lmid = 2 * gaunt.lmax_in
        grid = smallest_grid(max(2 * lmid, 3 * gaunt.lmax_in + gaunt.lmax_out))  # f1 f2 projected exactly
        y = o3.spherical_harmonics(list(range(lmid + 1)), grid.points, False, normalization="integral")
        w = grid.weights[:, None]
        for name, value in (("synth", y[:, gaunt.rows_in].T), ("proj", w * y[:, gaunt.rows_out]),
                            ("mid_synth", y.T), ("mid_proj", w * y)):  # fmt: skip
            self.register_buffer(name, value.contiguous(), persistent=False)
        self.register_buffer("mid_degree", torch.tensor([l for l in range(lmid + 1) for _ in range(2 * l + 1)]),
                             persistent=False)  # fmt: skip
        self.mid = nn.Parameter(torch.ones(gaunt.num_elements, lmid + 1, gaunt.channels))

    def term(self, a: torch.Tensor, u: list, species: torch.Tensor) -> torch.Tensor:
        f = [(a * u[k]) @ self.synth for k in range(3)]  # [N, C, P]
        change = (self.mid[species] - 1).index_select(1, self.mid_degree).transpose(1, 2)  # [N, C, n_mid]
        return ((((f[0] * f[1]) @ self.mid_proj * change) @ self.mid_synth) * f[2]) @ self.proj

    def weights(self, species: torch.Tensor) -> torch.Tensor:
        norm = self.gaunt.tables.get(self.gaunt.weights.dtype, self.gaunt.weights.device)["norm"][2]
        return self.gaunt.weights[species][:, 2] * norm[None, :, None]  # the block's own third-order weights


class OddIntermediates(_ExtraTerm):
    """Paths through parity-odd intermediates: ``q = r . (grad f_1 x grad f_2)`` (the couplings l1+l2+L' odd,
    a pseudo-scalar function), projected onto each degree L' <= 2 lmax_in - 1 with a learnable element- and
    channel-dependent weight, then ``r . (grad q x grad f_3)`` projected onto the outputs with weights of its
    own (scalar outputs get nothing: no such path ends at 0e)."""

    def __init__(self, gaunt: GauntManyBody) -> None:
        super().__init__(gaunt, "odd-intermediate")
        lmax_in, lmid = gaunt.lmax_in, 2 * gaunt.lmax_in - 1
        grid = smallest_grid(max(2 * lmid, lmid + lmax_in - 1 + gaunt.lmax_out))  # both projections exact
        points, w = grid.points, grid.weights[:, None]
        frames = tangent_frames(points)  # [P, 2, 3]
        grad_in = torch.einsum("pnk,pak->anp", harmonic_gradients(lmax_in, points)[:, gaunt.rows_in], frames)
        grad_mid = torch.einsum("pnk,pak->anp", harmonic_gradients(lmid, points), frames)
        y_mid = o3.spherical_harmonics(list(range(lmid + 1)), points, False, normalization="integral")
        y_out = o3.spherical_harmonics(list(range(gaunt.lmax_out + 1)), points, False, normalization="integral")
        for name, value in (("grad_in", grad_in), ("grad_mid", grad_mid), ("mid_proj", w * y_mid),
                            ("proj", w * y_out[:, gaunt.rows_out])):  # fmt: skip
            self.register_buffer(name, value.contiguous(), persistent=False)
        self.register_buffer("mid_degree", torch.tensor([l for l in range(lmid + 1) for _ in range(2 * l + 1)]),
                             persistent=False)  # fmt: skip
        n_out = len(gaunt.irreps_out)
        self.mid = nn.Parameter(torch.ones(gaunt.num_elements, lmid + 1, gaunt.channels))
        self.odd_weights = nn.Parameter(torch.randn(gaunt.num_elements, n_out, gaunt.channels) / 2)
        with torch.no_grad():  # 1 / RMS per output degree for unit inputs and unit random factors (equal: q = 0)
            a, *u = torch.randn(
                4, 256, 1, len(gaunt.rows_in), dtype=torch.float64, generator=torch.Generator().manual_seed(0)
            )
            z = self._odd(a, u, torch.ones(256, 1, (lmid + 1) ** 2, dtype=torch.float64))
            self.register_buffer("odd_norm", _inverse_rms(z, gaunt.degree_out, n_out, (0, 1, 2)), persistent=False)

    def _odd(self, a: torch.Tensor, u: list, mid: torch.Tensor) -> torch.Tensor:
        g = [[(a * u[k]) @ self.grad_in[c] for c in range(2)] for k in range(3)]  # frame components [N, C, P]
        q = ((g[0][0] * g[1][1] - g[0][1] * g[1][0]) @ self.mid_proj) * mid  # [N, C, n_mid]
        dq = [q @ self.grad_mid[c] for c in range(2)]
        return (dq[0] * g[2][1] - dq[1] * g[2][0]) @ self.proj

    def term(self, a: torch.Tensor, u: list, species: torch.Tensor) -> torch.Tensor:
        return self._odd(a, u, self.mid[species].index_select(1, self.mid_degree).transpose(1, 2))

    def weights(self, species: torch.Tensor) -> torch.Tensor:
        return self.odd_weights[species] * self.odd_norm[None, :, None]
