"""Bases of equivariant symmetric polynomials: MACE's product basis written over monomials.

A node's features per channel are one vector ``a`` of natural-parity irreps of distinct degrees
(``0e + 1o + 2e + ...``, entries in e3nn order). A polynomial of degree nu in ``a`` is written in
its monomials ``a_i1 a_i2 ... a_inu`` with ``i1 <= ... <= inu`` (:func:`monomials`). The
equivariant ones of output degree L (natural parity) are what MACE's symmetric contraction spans
at body order nu + 1: every coupling path ``((a ⊗ a)_l' ⊗ a ...)_L``, made symmetric in the
factors. :func:`equivariant_polynomials` returns a basis of that space as coefficient tables
``B[p, M, m]``, so that the p-th polynomial's component M is ``sum_m B[p, M, m] * monomial_m(a)``.

The basis is orthonormal for unit normal inputs: with ``a ~ N(0, I)``,
``E[sum_M poly_p^M(a) poly_q^M(a)] = delta_pq``. It is built by Gram-Schmidt over the coupling
paths in a fixed order (no eigen- or singular-vector solver), so that it is the same on every
machine and learned weights stay meaningful in a saved model.
"""

from __future__ import annotations

import functools
import itertools

import torch

from gaunt_tp.math.gaunt import gaunt
from gaunt_tp.math.gradients import odd_product_coefficients

__all__ = ["coupling_chains", "equivariant_polynomials", "monomials", "symmetriser"]


def monomials(n: int, degree: int) -> torch.Tensor:
    """All ``i1 <= ... <= i_degree`` over ``n`` variables, ``[count, degree]`` int64, lexicographic."""
    return torch.tensor(list(itertools.combinations_with_replacement(range(n), degree)), dtype=torch.int64).view(
        -1, degree
    )


@functools.cache
def _coupling(l1: int, l2: int, l3: int) -> torch.Tensor:
    """The equivariant bilinear map of degrees (l1, l2) to l3 (unique up to a factor), exact in float64:
    Gaunt coefficients where l1 + l2 + l3 is even, the parity-odd (cross-product) ones where it is odd,
    scaled as e3nn's ``wigner_3j`` with "component" normalisation (Frobenius norm sqrt(2 l3 + 1), MACE's
    coupling tensors; e3nn's own tables carry float32 precision)."""
    c = gaunt(l1, l2, l3) if (l1 + l2 + l3) % 2 == 0 else odd_product_coefficients(l1, l2, l3)
    return c * ((2 * l3 + 1) ** 0.5 / c.norm())


def _couplings(degrees: tuple[int, ...], l_out: int, nu: int) -> list[torch.Tensor]:
    """Spanning set of equivariant maps ``V^{⊗nu} -> L`` (V the inputs): full tensors ``[2L+1, n, ..., n]``.

    Chains ``(((a_k1 ⊗ a_k2)_l2 ⊗ a_k3)_l3 ... )_L`` over all ordered tuples of input irreps k and all
    intermediate degrees (:func:`_coupling`); only chains whose parity (product of the inputs') is the
    output's. The same set of paths as MACE's ``U`` tensors (as many, for every case counted in the tests).
    """
    n = sum(2 * l + 1 for l in degrees)
    offsets = [sum(2 * l + 1 for l in degrees[:k]) for k in range(len(degrees))]
    out = []
    for ks in itertools.product(range(len(degrees)), repeat=nu):
        if sum(degrees[k] for k in ks) % 2 != l_out % 2:  # parity of the product vs the output's
            continue
        # partial chains: (tensor [2l+1, d_k1, ..., d_kj], l), l the running degree
        chains = [(torch.eye(2 * degrees[ks[0]] + 1, dtype=torch.float64), degrees[ks[0]])]
        for j, k in enumerate(ks[1:], start=1):
            lk, grown = degrees[k], []
            for t, l in chains:
                for l_new in [l_out] if j == nu - 1 else range(abs(l - lk), l + lk + 1):
                    if abs(l - lk) <= l_new <= l + lk:
                        # [2lk+1, 2l_new+1, d_k1..d_kj] -> [2l_new+1, d_k1..d_kj, 2lk+1]
                        grown.append(
                            (torch.tensordot(_coupling(l, lk, l_new), t, dims=([0], [0])).movedim(0, -1), l_new)
                        )
            chains = grown
        for t, l in chains:
            if l != l_out:
                continue
            full = torch.zeros((2 * l_out + 1,) + (n,) * nu, dtype=torch.float64)
            index = (slice(None),) + tuple(slice(offsets[k], offsets[k] + 2 * degrees[k] + 1) for k in ks)
            full[index] = t
            out.append(full)
    return out


@functools.cache
def symmetriser(n: int, nu: int) -> torch.Tensor:
    """For every index tuple of ``[n] * nu`` (flattened, row-major), the row of its sorted tuple in
    :func:`monomials` ``(n, nu)``."""
    rows = {tuple(m): r for r, m in enumerate(monomials(n, nu).tolist())}
    return torch.tensor([rows[tuple(sorted(t))] for t in itertools.product(range(n), repeat=nu)])


def _gaussian_moments(exponents: torch.Tensor) -> torch.Tensor:
    """``E[prod_i x_i^e_i]`` for ``x ~ N(0, I)`` and integer exponents ``[..., n]``: ``prod (e_i - 1)!!``
    over even ``e_i``, 0 if any is odd."""
    top = int(exponents.max()) if exponents.numel() else 0
    table = torch.zeros(top + 1, dtype=torch.float64)
    table[0] = 1.0
    for k in range(2, top + 1, 2):
        table[k] = table[k - 2] * (k - 1)
    return table[exponents].prod(-1)


@functools.cache
def _chains(degrees: tuple[int, ...], l_out: int, nu: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The coupling chains as polynomials (made symmetric: coefficients over monomials), ``[K, 2L+1, count]``,
    and the Gram matrix of the monomials for unit normal inputs, ``[count, count]``."""
    n = sum(2 * l + 1 for l in degrees)
    mono = monomials(n, nu)
    exponents = torch.zeros(len(mono), n, dtype=torch.int64).scatter_add_(1, mono, torch.ones_like(mono))
    gram = _gaussian_moments(exponents[:, None, :] + exponents[None, :, :])
    sym = symmetriser(n, nu)
    chains = [
        torch.zeros(2 * l_out + 1, len(mono), dtype=torch.float64).index_add_(1, sym, t.reshape(2 * l_out + 1, -1))
        for t in _couplings(degrees, l_out, nu)
    ]
    empty = torch.zeros(0, 2 * l_out + 1, len(mono), dtype=torch.float64)
    return (torch.stack(chains) if chains else empty), gram


def _inner(u: torch.Tensor, v: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """``E[sum_M u^M(a) v^M(a)]`` for unit normal a, u and v ``[..., 2L+1, count]`` (summed over the last two)."""
    return (u * (v @ gram)).sum((-2, -1))


@functools.cache
def _basis(degrees: tuple[int, ...], l_out: int, nu: int) -> torch.Tensor:
    chains, gram = _chains(degrees, l_out, nu)
    basis: list[torch.Tensor] = []  # each [2L+1, count], orthonormal in E[sum_M p^M q^M]

    inner = functools.partial(_inner, gram=gram)
    for v in chains:
        size = inner(v, v)
        if size < 1e-20:
            continue
        for _ in range(2):  # Gram-Schmidt, twice over for round-off
            for b in basis:
                v = v - inner(b, v) * b
        rest = inner(v, v)
        if rest > 1e-10 * size:
            basis.append(v / rest.sqrt())
    return torch.stack(basis) if basis else chains[:0]


def equivariant_polynomials(degrees: list[int] | tuple[int, ...], l_out: int, nu: int) -> torch.Tensor:
    """Basis of the O(3)-equivariant polynomials of degree ``nu`` from inputs of natural-parity degrees
    ``degrees`` (distinct, in the order of the input vector) to degree ``l_out`` of natural parity.

    Returns ``B [P, 2 l_out + 1, len(monomials(n, nu))]`` (float64, a fresh copy; P may be 0), n the input
    dimension ``sum(2l + 1)``: polynomial p's component M is ``sum_m B[p, M, m] * prod_k a[monomials[m, k]]``.
    Orthonormal for ``a ~ N(0, I)``; the same on every machine (see the module docstring).
    """
    return _basis(_checked(degrees, l_out, nu), int(l_out), int(nu)).clone()


def _checked(degrees: list[int] | tuple[int, ...], l_out: int, nu: int) -> tuple[int, ...]:
    degrees = tuple(int(l) for l in degrees)
    if not degrees or len(set(degrees)) != len(degrees) or min(degrees) < 0:
        raise ValueError(f"degrees must be distinct non-negative ints, got {degrees}")
    if l_out < 0 or nu < 1:
        raise ValueError(f"need l_out >= 0 and nu >= 1, got l_out={l_out}, nu={nu}")
    return degrees


def coupling_chains(degrees: list[int] | tuple[int, ...], l_out: int, nu: int) -> torch.Tensor:
    """MACE's coupling paths of degree ``nu`` (every chain ``((a_k1 ⊗ a_k2)_l' ⊗ ...)_L`` over ordered tuples of
    input irreps and intermediate degrees, coupling tensors normalised as e3nn's "component" Wigner 3j
    symbols), as coordinates in :func:`equivariant_polynomials`' basis: ``R [K, P]`` with chain k's
    polynomial ``sum_p R[k, p] B[p]``. K >= P: the chains are redundant (some are zero once made symmetric).
    """
    degrees = _checked(degrees, l_out, nu)
    chains, gram = _chains(degrees, int(l_out), int(nu))
    basis = _basis(degrees, int(l_out), int(nu))
    return _inner(chains[:, None], basis[None], gram)  # orthonormal basis: coordinates are inner products
