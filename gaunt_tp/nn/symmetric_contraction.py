"""MACE's symmetric contraction evaluated as sparse polynomials in the node features.

MACE's product basis learns, per element and channel, a free linear combination of every
equivariant coupling path of ``A^{⊗nu}`` (nu <= correlation) to each output irrep. Those paths span
the equivariant polynomials of degree nu in the channel's vector ``a`` (:mod:`gaunt_tp.math.
symmetric_powers`); at the sizes MACE uses they are short, sparse polynomials in a few hundred
monomials ``a_i a_j a_k``. This block computes the same function space as MACE's contraction by
evaluating those polynomials directly, instead of contracting dense coupling tensors.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.symmetric_powers import coupling_chains, equivariant_polynomials, monomials
from gaunt_tp.nn.channel_irreps import (
    channel_major,
    check_block_irreps,
    check_counts,
    check_node_inputs,
    row_layout,
    rows_layout,
)
from gaunt_tp.ops.many_body_kernel import symmetric_products
from gaunt_tp.ops.native import native_error
from gaunt_tp.ops.tables import TableCache

__all__ = ["SymmetricContraction"]


class SymmetricContraction(nn.Module):
    r"""Element-dependent linear combination of every equivariant polynomial of the node features.

    ``out_c^{L M} = sum_{nu=1..correlation} sum_p w[z, (L, nu, p), c] * B_{L nu p}^M(a_c)`` for a node
    of element z, where ``a_c`` is channel c's vector of input irreps and ``B_{L nu p}`` runs over a
    basis of the O(3)-equivariant polynomials of degree nu to the output irrep L
    (:func:`gaunt_tp.math.symmetric_powers.equivariant_polynomials`, scaled to unit second moment per
    component for unit normal inputs). That is the function space of MACE's ``SymmetricContraction``
    (one free weight per coupling path, element and channel), parity-odd couplings such as the cross
    product included, which no Gaunt product reaches.

    Parametrised as MACE is by default (``weights_on="chains"``): one weight per coupling chain
    ``((a ⊗ a)_l' ⊗ a)_L`` over ordered input irreps and intermediate degrees (86 per channel and element
    for 0e + 1o + 2e + 3o to 0e + 1o at correlation 3, where 29 polynomials are independent), mapped onto
    the basis weights above by a fixed matrix (:func:`gaunt_tp.math.symmetric_powers.coupling_chains`) at
    each call; ``weights_on="basis"`` learns the 29 directly. Same functions, different training: the
    redundant chains trained better in ``benchmarks/compare_training.py`` (docs/benchmark-log.md).

    The polynomials are evaluated from the monomials they use (products of input entries, built one
    factor at a time and shared), their coefficients applied as a sparse table. The cost grows with the
    number of monomials, about ``(sum_l (2l+1))^correlation / correlation!``: meant for MACE's sizes
    (``max_ell <= 3``, ``correlation <= 3``), beyond which :class:`gaunt_tp.nn.GauntManyBody` scales better.

    Args:
        irreps_in: node features A, natural parity, distinct degrees, one multiplicity C.
        irreps_out: outputs, natural parity, multiplicity C.
        correlation: largest polynomial degree nu (body order nu + 1), >= 1.
        num_elements: number of chemical elements (rows of the weights).
        weights_on: ``"chains"`` (MACE's parametrisation) or ``"basis"``.
        out_layout: ``"e3nn"`` or ``"rows"``: the output in the convolution kernels' rows layout
            (component-major ``[N, irreps_out.dim / C, C]``, rows ordered by irrep then component, as
            :class:`gaunt_tp.nn.linear.RowsLinear` reads it), which saves the transpositions to e3nn's layout.

    Parameters:
        ``chain_weights [num_elements, num_chains, C]`` (chains ordered by output irrep, then nu, then as
        :func:`gaunt_tp.math.symmetric_powers.coupling_chains` lists them; MACE's chains, but not mace-torch's
        one for one: :mod:`gaunt_tp.interop.mace` maps them), initialised N(0, 1) / (chains of that
        output and nu), as MACE does; or, with
        ``weights_on="basis"``, ``weights [num_elements, num_paths, C]`` (paths ordered by output irrep, then
        nu, then basis index; ``path_ranges[i]``: the slice of output irrep i), initialised
        N(0, 1 / (paths of that output)).

    Shape:
        ``forward(node_features [N, irreps_in.dim], species [N] (int, 0..num_elements-1))`` returns
        ``[N, irreps_out.dim]`` in e3nn layout, or ``[N, irreps_out.dim / C, C]`` with ``out_layout="rows"``.

    Example:
        >>> import torch
        >>> sc = SymmetricContraction("8x0e + 8x1o + 8x2e", "8x0e + 8x1o", correlation=3, num_elements=2)
        >>> sc(torch.randn(5, 72), torch.tensor([0, 1, 1, 0, 1])).shape
        torch.Size([5, 32])
    """

    def __init__(
        self,
        irreps_in: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        correlation: int,
        num_elements: int,
        weights_on: str = "chains",
        out_layout: str = "e3nn",
    ) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out, self.channels = check_block_irreps(irreps_in, irreps_out)
        self.irreps_in_text = str(self.irreps_in)
        check_counts(correlation=correlation, num_elements=num_elements)
        if weights_on not in ("basis", "chains"):
            raise ValueError(f"weights_on must be 'basis' or 'chains', got {weights_on!r}")
        if out_layout not in ("e3nn", "rows"):
            raise ValueError(f"out_layout must be 'e3nn' or 'rows', got {out_layout!r}")
        self.correlation, self.num_elements, self.weights_on = correlation, num_elements, weights_on
        self.out_layout = out_layout
        degrees = [ir.l for _, ir in self.irreps_in]
        n = sum(2 * l + 1 for l in degrees)
        nonzeros, path_of_slot, entry_of_slot, self.path_ranges, chains = _sparse_basis(
            degrees, self.irreps_in, self.irreps_out, correlation
        )
        self.num_paths = self.path_ranges[-1].stop
        order = _monomial_order(nonzeros, n, correlation)
        column = {m: k for k, m in enumerate(order)}
        self.level_sizes = [sum(len(m) == nu for m in order) for nu in range(1, correlation + 1)]
        tables = {  # a monomial of degree nu: the one in column `prefix` (degree nu - 1) times input entry `last`
            "prefix": torch.tensor([column[m[:-1]] for m in order[n:]], dtype=torch.int64),
            "last": torch.tensor([m[-1] for m in order[n:]], dtype=torch.int64),
            "column": torch.tensor([column[m] for m, _, _ in nonzeros], dtype=torch.int64),
            "slot": torch.tensor([s for _, s, _ in nonzeros], dtype=torch.int64),
            "coefficient": torch.tensor([v for _, _, v in nonzeros], dtype=torch.float64),
            "path_of_slot": torch.tensor(path_of_slot, dtype=torch.int64),
            "entry_of_slot": torch.tensor(entry_of_slot, dtype=torch.int64),
            "perm_in": torch.tensor(channel_major(self.irreps_in), dtype=torch.int64),
        }
        if out_layout == "e3nn":  # the outputs' rows back to e3nn's layout
            tables["perm_out_inverse"] = torch.tensor(channel_major(self.irreps_out), dtype=torch.int64).argsort()
        if weights_on == "chains":
            tables["chains"] = torch.block_diag(*chains).T.contiguous()  # [paths, chains]
        self.tables = TableCache(tables)
        self.num_slots, self.in_dim, self.out_dim = len(path_of_slot), self.irreps_in.dim, self.irreps_out.dim
        out_rows = row_layout(self.irreps_out) if out_layout == "e3nn" else rows_layout(self.irreps_out)
        self.kernel_layout = _kernel_layout(self.irreps_in, out_rows, tables, self.num_slots, len(order))
        self.kernel_sizes = (self.channels, n, self.out_dim // self.channels, len(order) - n, len(nonzeros),
                             self.num_slots, self.num_paths, self.in_dim, self.out_dim)  # fmt: skip
        self.use_kernel = native_error() is None
        if weights_on == "basis":  # unit second moment per output component (the basis has unit moments)
            init = torch.cat([torch.full((len(r),), len(r) ** -0.5) for r in self.path_ranges])
            self.weights = nn.Parameter(torch.randn(num_elements, self.num_paths, self.channels) * init[None, :, None])
        else:  # MACE's parametrisation: a weight per coupling chain, N(0, 1) / chains of that (output, nu)
            init = torch.cat([torch.full((len(r),), 1.0 / max(len(r), 1)) for r in chains])  # none for some nu
            self.chain_weights = nn.Parameter(torch.randn(num_elements, len(init), self.channels) * init[None, :, None])

    def extra_repr(self) -> str:
        return (
            f"{self.irreps_in} -> {self.irreps_out}, correlation={self.correlation}, num_elements={self.num_elements}"
        )

    def forward(self, node_features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        check_node_inputs(node_features, species, self.in_dim, self.irreps_in_text, self.num_elements)
        t = self.tables.get(node_features.dtype, node_features.device)
        if self.weights_on == "basis":
            w = self.weights.index_select(0, species)  # [N, paths, C]
        else:
            w = (t["chains"] @ self.chain_weights).index_select(0, species)  # one batched matmul over elements
        if self.use_kernel and node_features.is_cpu and node_features.dtype in (torch.float32, torch.float64):
            reference = lambda a, w: self._contract(a, w, t)  # noqa: E731
            out = symmetric_products(
                node_features, w, self.kernel_layout, self.kernel_sizes, t["coefficient"], reference
            )
        else:
            out = self._contract(node_features, w, t)
        return out if self.out_layout == "e3nn" else out.unflatten(1, (-1, self.channels))

    def _contract(self, node_features: torch.Tensor, w: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """The forward pass in PyTorch for per-node weights ``w [N, num_paths, C]``: monomials, then slots, then
        outputs, each a row of ``[rows, N * C]`` (rows gathered and added whole). Returns ``[N, irreps_out.dim]``
        in the output layout (rows flattened)."""
        n, c = node_features.shape[0], self.channels
        a = node_features.index_select(1, t["perm_in"]).unflatten(1, (c, -1)).permute(2, 0, 1).flatten(1)  # N = 0 too
        mono, start = a, 0  # [monomials so far, N C]
        for size in self.level_sizes[1:]:  # monomials of degree nu from those of degree nu - 1
            prefix, last = t["prefix"][start : start + size], t["last"][start : start + size]
            mono = torch.cat([mono, mono.index_select(0, prefix) * a.index_select(0, last)])
            start += size
        terms = mono.index_select(0, t["column"]) * t["coefficient"][:, None]
        values = mono.new_zeros(self.num_slots, n * c).index_add_(0, t["slot"], terms)  # [slots, N C]
        w = w.index_select(1, t["path_of_slot"]).transpose(0, 1).reshape(self.num_slots, n * c)
        out = mono.new_zeros(self.out_dim // c, n * c).index_add_(0, t["entry_of_slot"], values * w)
        if self.out_layout == "rows":
            return out.unflatten(1, (n, c)).transpose(0, 1).flatten(1)
        return out.unflatten(1, (n, c)).permute(1, 2, 0).flatten(1).index_select(1, t["perm_out_inverse"])


def _sparse_basis(
    degrees: list[int], irreps_in: o3.Irreps, irreps_out: o3.Irreps, correlation: int
) -> tuple[list[tuple[tuple[int, ...], int, float]], list[int], list[int], list[range], list[torch.Tensor]]:
    """The basis polynomials of every output irrep and degree nu <= correlation as nonzero coefficients.

    Returns ``(nonzeros, path_of_slot, entry_of_slot, path_ranges, chains)``: one row per nonzero
    coefficient (monomial as a tuple of input entries, slot, value), a slot being one component M of one
    path (slots ordered like the paths, indexed by ``path_of_slot`` / ``entry_of_slot``); ``path_ranges[i]``
    the paths of output irrep i; ``chains`` the ``[K, P]`` maps of MACE's coupling chains onto the paths,
    one per (output irrep, nu). Each basis polynomial is scaled to unit second moment per component.
    """
    n = sum(2 * l + 1 for l in degrees)
    nonzeros: list[tuple[tuple[int, ...], int, float]] = []
    path_of_slot: list[int] = []
    entry_of_slot: list[int] = []
    path_ranges: list[range] = []
    chains: list[torch.Tensor] = []
    offset_out = paths = 0
    for _, ir in irreps_out:
        first = paths
        for nu in range(1, correlation + 1):
            basis = equivariant_polynomials(degrees, ir.l, nu) * (2 * ir.l + 1) ** 0.5  # unit moment per M
            mono = monomials(n, nu).tolist()
            chains.append(coupling_chains(degrees, ir.l, nu) / (2 * ir.l + 1) ** 0.5)  # [K, P] onto our paths
            for p in range(basis.shape[0]):
                for m_out in range(2 * ir.l + 1):
                    slot = len(path_of_slot)
                    path_of_slot.append(paths)
                    entry_of_slot.append(offset_out + m_out)
                    for m in basis[p, m_out].nonzero().flatten().tolist():
                        nonzeros.append((tuple(mono[m]), slot, float(basis[p, m_out, m])))
                paths += 1
        if paths == first:
            raise ValueError(f"no polynomial of degree <= {correlation} in {irreps_in} reaches {ir}")
        path_ranges.append(range(first, paths))
        offset_out += ir.dim
    return nonzeros, path_of_slot, entry_of_slot, path_ranges, chains


def _monomial_order(nonzeros: list[tuple[tuple[int, ...], int, float]], n: int, correlation: int) -> list[tuple]:
    """The monomials to build, degree by degree, each a monomial of one degree less times one input entry:
    the n input entries, then each degree's monomials sorted (so that those sharing a prefix are consecutive,
    which the kernels' backward relies on)."""
    needed: list[set[tuple[int, ...]]] = [set() for _ in range(correlation + 1)]
    for mono, _, _ in nonzeros:
        needed[len(mono)].add(mono)
    for nu in range(correlation, 1, -1):
        needed[nu - 1].update(m[:-1] for m in needed[nu])
    return [(i,) for i in range(n)] + [m for nu in range(2, correlation + 1) for m in sorted(needed[nu])]


def _kernel_layout(
    irreps_in: o3.Irreps, out_rows: list[int], tables: dict[str, torch.Tensor], num_slots: int, num_columns: int
) -> torch.Tensor:
    """The C kernels' index arrays (``csrc/many_body.c``, ``symmetric_*``): the input's and the output's entry
    offsets and channel strides (``out_rows``), each slot's nonzeros as one run, and the nonzeros again by
    monomial for the force backward."""
    starts = torch.zeros(num_slots + 1, dtype=torch.int64)
    starts[1:] = torch.bincount(tables["slot"], minlength=num_slots).cumsum(0)
    by_column = torch.argsort(tables["column"], stable=True)
    column_starts = torch.zeros(num_columns + 1, dtype=torch.int64)
    column_starts[1:] = torch.bincount(tables["column"], minlength=num_columns).cumsum(0)
    return torch.cat([
        torch.tensor(row_layout(irreps_in) + out_rows), tables["prefix"], tables["last"],
        starts, tables["column"], tables["path_of_slot"], tables["entry_of_slot"],
        column_starts, by_column, tables["slot"][by_column],
    ])  # fmt: skip
