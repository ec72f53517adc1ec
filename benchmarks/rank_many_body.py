"""How much of MACE's many-body function space the Gaunt many-body block spans.

Single channel, single element, input V = 0e + 1o + ... + lmax_in (natural parity). For each
body order nu and output degree l, MACE's symmetric contraction spans every homogeneous
equivariant polynomial of degree nu from V to l: its dimension is the multiplicity of l in
Sym^nu(V) (one weight per coupling path). We measure:

- ``mace``: that multiplicity, from O(3) characters (exact, any nu), cross-checked for nu <= 3 by
  the numerical rank of e3nn's ``ReducedTensorProducts`` features on random inputs;
- ``gaunt``: the rank of the plain Gaunt power (the paper's MACE variant): one feature;
- ``gaunt+factors``: the numerical rank of the features of GauntManyBody with per-factor degree
  weights (products of degree-selected factors), on random inputs;
- ``inside``: whether the Gaunt features lie in MACE's space (joint rank equals MACE's), nu <= 3.

    python benchmarks/rank_many_body.py --lmax-in 3 --lmax-out 2 --correlation 4
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch
from e3nn import o3

from gaunt_tp.math.quadrature import smallest_grid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402


def character(l: int, theta: np.ndarray) -> np.ndarray:
    """SO(3) character of degree l at rotation angle theta."""
    s = np.sin(theta / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sin((l + 0.5) * theta) / s
    return np.where(np.abs(s) < 1e-12, 2 * l + 1, out)


def sym_multiplicity(lmax_in: int, nu: int, l_out: int) -> int:
    """Multiplicity of (l_out, natural parity) in Sym^nu(0e + 1o + ... ), by characters over O(3)."""
    x, w = np.polynomial.legendre.leggauss(400)
    theta = (x + 1) * np.pi / 2
    w = w * np.pi / 2 * (1 - np.cos(theta)) / np.pi  # Haar measure of class functions on SO(3)

    def chi_v(k: int, improper: bool) -> np.ndarray:  # character of V at g^k for g = (+-1) R(theta)
        sign = -1 if (improper and k % 2 == 1) else 1
        return sum((sign**l) * character(l, k * theta) for l in range(lmax_in + 1))

    total = 0.0
    for improper in (False, True):
        h = [np.ones_like(theta)]
        for n in range(1, nu + 1):
            h.append(sum(chi_v(k, improper) * h[n - k] for k in range(1, n + 1)) / n)
        parity = (-1) ** l_out if improper else 1
        total += 0.5 * np.sum(w * h[nu] * parity * character(l_out, theta))
    return int(round(total))


def rank(features: torch.Tensor, tol: float = 1e-8) -> int:
    s = torch.linalg.svdvals(features)
    return int((s > tol * s[0]).sum()) if s.numel() and s[0] > 0 else 0


def gaunt_features(a: torch.Tensor, lmax_in: int, nu: int, l_out: int, factors: bool) -> torch.Tensor:
    """Rows: features (products of degree-selected factors, or the plain power), columns: samples x m."""
    grid = smallest_grid(nu * lmax_in + l_out)
    y = o3.spherical_harmonics(
        list(range(max(lmax_in, l_out) + 1)), grid.points, normalize=False, normalization="integral"
    )
    proj = grid.weights[:, None] * y[:, l_out * l_out : (l_out + 1) ** 2]
    parts = [a[:, l * l : (l + 1) ** 2] @ y[:, l * l : (l + 1) ** 2].T for l in range(lmax_in + 1)]  # [S, P]
    full = sum(parts)
    tuples = itertools.product(range(lmax_in + 1), repeat=nu) if factors else [None]
    rows = []
    for t in tuples:
        prod = torch.ones_like(full)
        for k in range(nu):
            prod = prod * (full if t is None else parts[t[k]])
        rows.append((prod @ proj).reshape(-1))
    return torch.stack(rows)


def mace_features(a: torch.Tensor, lmax_in: int, nu: int, l_out: int) -> torch.Tensor | None:
    """Features of e3nn's reduced symmetric tensor products (MACE's coupling basis), nu <= 3."""
    if nu == 1:
        return a[:, l_out * l_out : (l_out + 1) ** 2].reshape(1, -1) if l_out <= lmax_in else torch.zeros(0, a.numel())
    if nu > 3:
        return None
    formula = {2: "ij=ji", 3: "ijk=jik=ikj"}[nu]
    irreps = o3.Irreps(" + ".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax_in + 1)))
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        rtp = o3.ReducedTensorProducts(formula, i=irreps)
    finally:
        torch.set_default_dtype(prev)
    q = rtp.change_of_basis.to(torch.float64)  # [dim_out, d, d(, d)]
    tensor = a[:, :, None] * a[:, None, :]
    if nu == 3:
        tensor = tensor[..., None] * a[:, None, None, :]
    feats = torch.einsum("o...,s...->so", q, tensor)  # [S, dim_out]
    rows = []
    for (mul, ir), sl in zip(rtp.irreps_out, rtp.irreps_out.slices()):
        if ir.l == l_out and ir.p == (-1) ** l_out:
            block = feats[:, sl].reshape(a.shape[0], mul, ir.dim)
            rows += [block[:, k].reshape(-1) for k in range(mul)]
    return torch.stack(rows) if rows else torch.zeros(0, a.shape[0] * (2 * l_out + 1), dtype=torch.float64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmax-in", type=int, default=3)
    parser.add_argument("--lmax-out", type=int, default=2)
    parser.add_argument("--correlation", type=int, default=4)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    a = torch.randn(
        args.samples, (args.lmax_in + 1) ** 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    rows = []
    print(f"V = degrees 0..{args.lmax_in} (natural parity), one channel, one element")
    print(
        "| nu | l_out | MACE (characters) | MACE (numerical, e3nn RTP) | Gaunt power | Gaunt + factor weights | Gaunt inside MACE |"
    )
    print("|---|---|---|---|---|---|---|")
    for nu in range(1, args.correlation + 1):
        for l_out in range(args.lmax_out + 1):
            mace = sym_multiplicity(args.lmax_in, nu, l_out)
            plain = rank(gaunt_features(a, args.lmax_in, nu, l_out, factors=False))
            factored_features = gaunt_features(a, args.lmax_in, nu, l_out, factors=True)
            factored = rank(factored_features)
            mf = mace_features(a, args.lmax_in, nu, l_out)
            mace_numeric = rank(mf) if mf is not None else None
            inside = None
            if mf is not None:
                inside = rank(torch.cat([mf, factored_features])) == mace_numeric
            rows.append(
                {
                    "nu": nu,
                    "l_out": l_out,
                    "mace": mace,
                    "mace_numeric": mace_numeric,
                    "gaunt": plain,
                    "gaunt_factor_weights": factored,
                    "gaunt_inside_mace": inside,
                }
            )
            print(
                f"| {nu} | {l_out} | {mace} | {mace_numeric if mace_numeric is not None else '-'} | {plain} | {factored} | "
                f"{'-' if inside is None else ('yes' if inside else 'NO')} |",
                flush=True,
            )
    totals = {k: sum(r[k] for r in rows) for k in ("mace", "gaunt", "gaunt_factor_weights")}
    print(
        f"total over nu <= {args.correlation}, l_out <= {args.lmax_out}: MACE {totals['mace']}, "
        f"Gaunt power {totals['gaunt']}, Gaunt + factor weights {totals['gaunt_factor_weights']}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "rank_many_body.json"
    write_json(path, {"lmax_in": args.lmax_in, "rows": rows, "totals": totals})


if __name__ == "__main__":
    main()
