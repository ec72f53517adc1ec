"""Equivariant polynomial bases: equivariant, independent, as many as O(3) characters count, orthonormal."""

import math

import numpy as np
import pytest
import torch

from gaunt_tp.math.symmetric_powers import equivariant_polynomials, monomials
from gaunt_tp.testing import natural_irreps, random_rotation, wigner_matrix


def multiplicity(lmax_in: int, nu: int, l_out: int) -> int:
    """How often (l_out, natural parity) occurs in Sym^nu(0e + 1o + ... + lmax_in), from O(3) characters:
    the power sums of the characters give the symmetric power's (Newton's identities), averaged over the
    group with Haar measure (an independent count of the basis size)."""
    x, w = np.polynomial.legendre.leggauss(200)
    theta = (x + 1) * np.pi / 2
    w = w * (1 - np.cos(theta)) / 2  # class-function measure on SO(3), total 1

    def chi(l: int, angle: np.ndarray) -> np.ndarray:
        s = np.sin(angle / 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(np.abs(s) < 1e-12, 2 * l + 1, np.sin((l + 0.5) * angle) / s)

    total = 0.0
    for improper in (False, True):
        power = [
            sum(((-1) ** l if improper and k % 2 else 1) * chi(l, k * theta) for l in range(lmax_in + 1))
            for k in range(nu + 1)
        ]
        h = [np.ones_like(theta)]
        for m in range(1, nu + 1):
            h.append(sum(power[k] * h[m - k] for k in range(1, m + 1)) / m)
        total += 0.5 * np.sum(w * h[nu] * ((-1) ** l_out if improper else 1) * chi(l_out, theta))
    return round(total)


def evaluate(basis: torch.Tensor, a: torch.Tensor, nu: int) -> torch.Tensor:
    """``[batch, P, 2L+1]`` values of the basis polynomials at ``a [batch, n]`` (dense, from the tables)."""
    mono = a[:, monomials(a.shape[1], nu)].prod(-1)
    return torch.einsum("pMm,bm->bpM", basis, mono)


def test_monomials_are_sorted_and_counted():
    m = monomials(5, 3)
    assert m.shape == (math.comb(5 + 2, 3), 3)
    assert bool((m[:, :-1] <= m[:, 1:]).all()) and len({tuple(r) for r in m.tolist()}) == len(m)


@pytest.mark.parametrize("lmax_in", [1, 2, 3])
@pytest.mark.parametrize("nu", [1, 2, 3])
def test_basis_is_equivariant_independent_and_complete(lmax_in, nu):
    degrees = list(range(lmax_in + 1))
    n = (lmax_in + 1) ** 2
    gen = torch.Generator().manual_seed(nu)
    a = torch.randn(40, n, dtype=torch.float64, generator=gen)
    for l_out in range(3):
        basis = equivariant_polynomials(degrees, l_out, nu)
        assert basis.shape[0] == multiplicity(lmax_in, nu, l_out), (l_out, basis.shape)
        if basis.shape[0] == 0:
            continue
        values = evaluate(basis, a, nu)
        assert torch.linalg.matrix_rank(values.transpose(0, 1).reshape(basis.shape[0], -1)) == basis.shape[0]
        for inversion in (False, True):
            rotation = random_rotation(generator=gen)
            d_in = wigner_matrix(natural_irreps(lmax_in, 1), rotation, inversion)
            d_out = wigner_matrix(natural_irreps(l_out, 1, l_out), rotation, inversion)
            torch.testing.assert_close(evaluate(basis, a @ d_in.T, nu), values @ d_out.T, rtol=0, atol=1e-12)


def test_orthonormal_for_unit_normal_inputs():
    degrees, nu = [0, 1, 2], 3
    basis = equivariant_polynomials(degrees, 1, nu)
    a = torch.randn(200_000, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    values = evaluate(basis, a, nu)
    gram = torch.einsum("bpM,bqM->pq", values, values) / a.shape[0]
    torch.testing.assert_close(gram, torch.eye(basis.shape[0], dtype=torch.float64), rtol=0, atol=0.05)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="distinct"):
        equivariant_polynomials([1, 1], 0, 2)
    with pytest.raises(ValueError, match="nu >= 1"):
        equivariant_polynomials([0, 1], 0, 0)


def test_coupling_chains_are_maces_paths_in_the_basis():
    """Every coupling chain evaluated from its full tensor on a ⊗ a ⊗ a equals its coordinates times the basis;
    the counts are MACE's numbers of path weights for 0e + 1o + 2e + 3o (1, 4, 23 for 0e; 1, 6, 51 for 1o)."""
    from gaunt_tp.math.symmetric_powers import _couplings, coupling_chains

    degrees = (0, 1, 2, 3)
    a = torch.randn(5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for l_out, counts in ((0, (1, 4, 23)), (1, (1, 6, 51))):
        for nu, count in zip((1, 2, 3), counts):
            coords = coupling_chains(degrees, l_out, nu)
            assert coords.shape == (count, equivariant_polynomials(degrees, l_out, nu).shape[0])
            full = torch.stack(_couplings(degrees, l_out, nu))  # [K, 2L+1, 16, ..., 16]
            direct = torch.stack([_evaluate_full(full, x) for x in a], 0)  # [batch, K, 2L+1]
            via_basis = torch.einsum(
                "kp,bpM->bkM", coords, evaluate(equivariant_polynomials(degrees, l_out, nu), a, nu)
            )
            torch.testing.assert_close(via_basis, direct, rtol=1e-12, atol=1e-12)


def _evaluate_full(full: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``full [K, 2L+1, n, ..., n]`` contracted with x on every input index."""
    out = full
    while out.dim() > 2:
        out = out @ x
    return out
