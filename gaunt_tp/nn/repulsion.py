"""A short-range pair repulsion: the Ziegler-Biersack-Littmark (ZBL) screened Coulomb potential, as MACE adds it.

For two atoms of atomic numbers Z_i, Z_j at distance r (Angstrom), in eV:

    V(r) = k Z_i Z_j / r * sum_m c_m exp(-d_m r / a_ij) * f(r / (R_i + R_j)),
    a_ij = s * 0.529 / (Z_i^t + Z_j^t),

with k = 14.3996 eV Angstrom (e^2 / 4 pi eps_0), ZBL's universal screening function (c = 0.1818, 0.5099, 0.2802,
0.02817; d = 3.2, 0.9423, 0.4028, 0.2016), MACE's screening length (s = 0.4543, t = 0.300: ZBL's universal length
0.8854 a_0 / (Z_i^0.23 + Z_j^0.23) refitted), and the polynomial envelope ``f`` of the radial basis
(:class:`gaunt_tp.nn.radial.PolynomialCutoff`, power p) cut off at the sum of the two covalent radii R (ASE's
``ase.data.covalent_radii``), so the repulsion acts only where atoms come closer than a bond. Each atom of a pair
takes half of V. It stops atoms fusing in MD where the training data has no close contacts (mace-torch's
``--pair_repulsion``, ``ZBLBasis``); it has no trained parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from gaunt_tp.nn.radial import covalent_radii, polynomial_envelope

__all__ = ["ZBLRepulsion"]

COULOMB = 14.3996  # e^2 / (4 pi eps_0) in eV Angstrom, as MACE rounds it
BOHR = 0.529  # Angstrom, as MACE rounds it
EXPONENTS = (3.2, 0.9423, 0.4028, 0.2016)  # ZBL's d_m
COEFFICIENTS = (0.1818, 0.5099, 0.2802, 0.02817)  # ZBL's c_m
SCREENING = (0.4543, 0.300)  # MACE's s and t


class ZBLRepulsion(nn.Module):
    """Per-atom ZBL repulsion energies of a graph's edges (module docstring).

    Args:
        atomic_numbers: the model's elements, in the order of its species indices.
        p: power of the polynomial envelope (the model's ``num_cutoff_basis``).

    Buffers (float, read from a converted model's weights so that they keep its rounding):
        ``numbers [elements]`` atomic numbers, ``radii [elements]`` covalent radii (Angstrom), ``coefficients [4]``
        c_m, ``screening [2]`` (s, t).

    Shape:
        ``lengths [E]`` (Angstrom), ``species [n]`` (element indices), ``edge_index [2, E]`` (sender, receiver)
        -> ``[n]`` eV, each directed edge's half of V on its receiver (both directions present: the full V per pair).
    """

    def __init__(self, atomic_numbers: tuple[int, ...], p: int) -> None:
        super().__init__()
        if p < 2:
            raise ValueError(f"the envelope polynomial needs p >= 2, got {p}")
        self.p = float(p)
        zs = torch.tensor(atomic_numbers, dtype=torch.float64)
        self.register_buffer("numbers", zs)
        self.register_buffer("radii", covalent_radii(atomic_numbers))
        self.register_buffer("coefficients", torch.tensor(COEFFICIENTS, dtype=torch.float64))
        self.register_buffer("screening", torch.tensor(SCREENING, dtype=torch.float64))

    def forward(self, lengths: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        sender, receiver = edge_index
        s_u, s_v = species.index_select(0, sender), species.index_select(0, receiver)
        z = self.numbers.to(lengths.dtype)
        z_t = z ** self.screening[1].to(lengths.dtype)
        a = self.screening[0].to(lengths.dtype) * BOHR / (z_t[s_u] + z_t[s_v])
        x = lengths / a
        phi = sum(c * torch.exp(-d * x) for c, d in zip(self.coefficients.to(lengths.dtype), EXPONENTS))
        energy = COULOMB * z[s_u] * z[s_v] / lengths * phi
        envelope = polynomial_envelope(lengths / (self.radii[s_u] + self.radii[s_v]).to(lengths.dtype), self.p)
        half = 0.5 * energy * envelope  # lengths are clamped above 0: energies finite, zero beyond the radii
        return torch.zeros(species.shape[0], dtype=lengths.dtype, device=lengths.device).index_add(0, receiver, half)
