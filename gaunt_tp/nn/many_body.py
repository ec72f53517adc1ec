"""Many-body (higher body order) features as powers of node functions on a sphere grid.

MACE's product basis builds, per node, the symmetric nu-fold products of the atomic
basis A and contracts them with learnable, element-dependent weights. In the Gaunt
form the node features are one function per channel on the sphere,
``f_c = sum_lm A_c^{lm} Y_lm``, and the nu-fold product is a pointwise power on a grid
exact to degree ``nu_max * lmax_in + lmax_out``, computed by divide and conquer
(``f^2 = f f``, ``f^3 = f^2 f``, ...), then projected once per body order.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.quadrature import smallest_grid
from gaunt_tp.nn.channel_irreps import (
    channel_major,
    check_block_irreps,
    check_counts,
    check_node_inputs,
    row_layout,
)
from gaunt_tp.ops.many_body_kernel import ManyBodyLayout, many_body_products
from gaunt_tp.ops.native import native_error
from gaunt_tp.ops.tables import TableCache

__all__ = ["GauntManyBody"]


class GauntManyBody(nn.Module):
    r"""Element-dependent weighted sum of the nu-fold Gaunt products of node features.

    ``out_c^{l m} = sum_{nu=1..correlation} w[z, nu, l, c] * N[nu, l] *
    P_l( prod_{k=1..nu} f_{z,k,c} )^{m}`` for a node of element z, where P_l projects a
    function onto degree l, N[nu, l] is a fixed normalisation (unit second moment at
    initialisation for unit inputs), and the k-th factor is
    ``f_{z,k,c} = sum_lm u[z, k, l, c] A_c^{lm} Y_lm``. With ``factor_weights=False``
    every u is 1 and the factors are one function: the paper's MACE variant, one free
    weight per element, body order, output degree and channel. With
    ``factor_weights=True`` (the default) each factor weights the input degrees on its
    own, so ``f^3`` becomes ``f_1 f_2 f_3`` with different functions: the spanned space
    grows from one feature per (nu, l) to one per multiset of input degrees that
    couples to l (``benchmarks/rank_many_body.py`` measures it against MACE's symmetric
    contraction), at the same O(L^3) cost per factor.

    One product still gives one function per (nu, l, channel), whereas MACE's symmetric
    contraction learns a linear combination of all its coupling paths. ``num_products = K``
    sums K such products, each with its own factors and weights,
    ``out = sum_{q=1..K} sum_nu w[z, q, nu, l, c] N[nu, l] P_l(prod_k f_{z,q,k,c})``
    (a rank-K combination of the features), at K times the cost of one.

    On CPUs in float32/float64 the forward pass and the first and second derivatives run in C kernels
    (:mod:`gaunt_tp.ops.many_body_kernel`) where they build; set :attr:`use_kernel` to False for the
    same arithmetic in PyTorch operations (as on GPUs).

    Args:
        irreps_in: node features A, natural parity, one multiplicity C.
        irreps_out: outputs, natural parity, multiplicity C.
        correlation: largest body order nu (>= 1).
        num_elements: number of chemical elements (rows of the weights).
        factor_weights: learn per-factor, per-element weights on the input degrees.
        num_products: K, the number of products summed (needs ``factor_weights`` when > 1:
            without them the K products are one function).

    Parameters:
        ``weights [num_elements, K * correlation, n_out_irreps, C]`` (index ``q * correlation + nu - 1``),
        ``factor [num_elements, K * correlation, n_in_irreps, C]`` (index ``q * correlation + k - 1``)
        or None.

    Shape:
        ``forward(node_features [N, irreps_in.dim], species [N] (int, 0..num_elements-1))``
        returns ``[N, irreps_out.dim]``, e3nn layout.

    Example:
        >>> import torch
        >>> mb = GauntManyBody("8x0e + 8x1o + 8x2e", "8x0e + 8x1o", correlation=3, num_elements=2)
        >>> mb(torch.randn(5, 72), torch.tensor([0, 1, 1, 0, 1])).shape
        torch.Size([5, 32])
    """

    def __init__(
        self,
        irreps_in: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        correlation: int,
        num_elements: int,
        factor_weights: bool = True,
        num_products: int = 1,
    ) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out, self.channels = check_block_irreps(irreps_in, irreps_out)
        self.irreps_in_text = str(self.irreps_in)
        check_counts(correlation=correlation, num_elements=num_elements, num_products=num_products)
        if num_products > 1 and not factor_weights:
            raise ValueError("num_products > 1 needs factor_weights=True (otherwise the products are one function)")
        self.correlation, self.num_elements, self.factor_weights = correlation, num_elements, factor_weights
        self.num_products = num_products
        self.lmax_in = lmax_in = max(ir.l for _, ir in self.irreps_in)
        self.lmax_out = lmax_out = max(ir.l for _, ir in self.irreps_out)
        reachable = [ir.l for _, ir in self.irreps_out if ir.l > correlation * lmax_in]
        if reachable:
            raise ValueError(f"output degrees {reachable} exceed correlation * lmax_in = {correlation * lmax_in}")
        self.grid = smallest_grid(correlation * lmax_in + lmax_out)
        points = self.grid.points
        y = o3.spherical_harmonics(
            list(range(max(lmax_in, lmax_out) + 1)), points, normalize=False, normalization="integral"
        )
        # the class vector's entries as rows of e3nn's harmonics of all degrees (l^2 + l + m)
        self.rows_in = rows_in = [l * l + k for _, ir in self.irreps_in for l in [ir.l] for k in range(2 * l + 1)]
        self.rows_out = rows_out = [l * l + k for _, ir in self.irreps_out for l in [ir.l] for k in range(2 * l + 1)]
        # e3nn layout [irrep: C, 2l+1] <-> class vector [C, n]: gather indices both ways
        perm_in, perm_out = channel_major(self.irreps_in), channel_major(self.irreps_out)
        self.register_buffer("perm_in", torch.tensor(perm_in), persistent=False)
        self.register_buffer("perm_out_inverse", torch.tensor(perm_out).argsort(), persistent=False)
        # which input / output irrep each class-vector entry belongs to
        self.register_buffer(
            "degree_in",
            torch.tensor([i for i, (_, ir) in enumerate(self.irreps_in) for _ in range(ir.dim)]),
            persistent=False,
        )
        self.register_buffer(
            "degree_out",
            torch.tensor([i for i, (_, ir) in enumerate(self.irreps_out) for _ in range(ir.dim)]),
            persistent=False,
        )
        n_in, n_out = len(self.irreps_in), len(self.irreps_out)
        terms = num_products * correlation
        self.weights = nn.Parameter(torch.randn(num_elements, terms, n_out, self.channels) / terms**0.5)
        self.factor = nn.Parameter(torch.ones(num_elements, terms, n_in, self.channels)) if factor_weights else None
        synth, proj = y[:, rows_in].T.contiguous(), (self.grid.weights[:, None] * y[:, rows_out]).contiguous()
        norm = self._normalisation(synth, proj)
        unreached = [str(ir) for i, (_, ir) in enumerate(self.irreps_out) if not norm[:, i].any()]
        if unreached:  # an odd degree from even ones only, say
            raise ValueError(f"no product of up to {correlation} of {self.irreps_in} has the output irreps {unreached}")
        self.tables = TableCache({"synth": synth, "proj": proj, "norm": norm})
        layout = [
            *row_layout(self.irreps_in),
            *self.degree_in.tolist(),
            *row_layout(self.irreps_out),
            *self.degree_out.tolist(),
        ]
        self.kernel_layout = ManyBodyLayout(
            torch.tensor(layout, dtype=torch.int64), len(rows_in), len(rows_out), n_in, n_out,
            self.irreps_in.dim, self.irreps_out.dim, self.channels, num_products, correlation,
        )  # fmt: skip
        self.use_kernel = native_error() is None

    @torch.no_grad()
    def _normalisation(self, synth: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
        """``N[nu, l]``: 1 / RMS of the projected nu-th power for unit-variance inputs (fixed-seed estimate); 0 where
        the nu-th power has no part of degree l (its RMS is rounding noise: an input without 0e, or l above nu times
        the inputs' degrees, or gaps in them), so that the term is left out rather than its noise amplified."""
        g = torch.Generator().manual_seed(0)
        a = torch.randn(256, len(self.degree_in), dtype=torch.float64, generator=g)
        f = a @ synth
        power, out = torch.ones_like(f), []
        for _ in range(self.correlation):
            power = power * f
            z = power @ proj  # [256, n_out]
            rms = torch.stack([z[:, self.degree_out == i].square().mean() for i in range(len(self.irreps_out))]).sqrt()
            out.append(torch.where(rms > 1e-8, 1.0 / rms, 0.0))  # reached terms have an RMS of order 1
        return torch.stack(out)  # [nu, n_out]

    def extra_repr(self) -> str:
        return (
            f"{self.irreps_in} -> {self.irreps_out}, correlation={self.correlation}, num_elements={self.num_elements}"
        )

    def forward(self, node_features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        check_node_inputs(node_features, species, self.kernel_layout.in_dim, self.irreps_in_text, self.num_elements)
        u = self.factor[species] if self.factor is not None else None  # [N, K nu, n_in, C]
        w = self.weights[species]  # [N, K nu, n_out, C]
        if self.use_kernel and node_features.is_cpu and node_features.dtype in (torch.float32, torch.float64):
            t = self.tables.get(node_features.dtype, node_features.device)
            return many_body_products(node_features, u, w, self.kernel_layout, t, self._products)
        return self._products(node_features, u, w)

    def _products(self, node_features: torch.Tensor, u: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        """The forward pass in PyTorch for per-node factor weights u and product weights w (see forward)."""
        c = self.channels
        t = self.tables.get(node_features.dtype, node_features.device)
        a = node_features.index_select(1, self.perm_in).unflatten(1, (c, -1))  # [N, C, n_in] (also for N = 0)
        nu = self.correlation
        if u is not None:
            u = u.index_select(2, self.degree_in).transpose(2, 3)  # [N, K nu, C, n_in]
            factors = [(a * u[:, k]) @ t["synth"] for k in range(u.shape[1])]  # each [N, C, P]
        else:
            factors = [a @ t["synth"]] * nu
        norm = t["norm"].repeat(self.num_products, 1)  # [K nu, n_out]
        w = (w * norm[None, :, :, None]).index_select(2, self.degree_out).transpose(2, 3)  # [N, K nu, C, n_out_entries]
        out = None
        for q in range(self.num_products):
            power = None
            for k in range(q * nu, (q + 1) * nu):
                power = factors[k] if power is None else power * factors[k]
                term = (power @ t["proj"]) * w[:, k]
                out = term if out is None else out + term
        return out.flatten(1).index_select(1, self.perm_out_inverse)  # type: ignore[union-attr]
