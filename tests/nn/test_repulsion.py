"""The ZBL pair repulsion against the screened Coulomb formula written out here, and its envelope's smoothness."""

import math

import numpy as np
import pytest
import torch
from ase.data import covalent_radii

from gaunt_tp.nn.repulsion import ZBLRepulsion

ELEMENTS = (1, 6, 7, 8)


def zbl_dimer(z1: int, z2: int, r: float, p: int = 5) -> float:
    """ZBL's universal screened Coulomb energy (eV) of two atoms at r Angstrom with MACE's screening length,
    enveloped by the polynomial of power p that vanishes at the sum of the covalent radii (written out alone)."""
    a = 0.4543 * 0.529 / (z1**0.3 + z2**0.3)
    phi = sum(c * math.exp(-d * r / a) for c, d in [(0.1818, 3.2), (0.5099, 0.9423), (0.2802, 0.4028),
                                                      (0.02817, 0.2016)])  # fmt: skip
    x = r / (covalent_radii[z1] + covalent_radii[z2])
    if x >= 1:
        return 0.0
    envelope = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    return 14.3996 * z1 * z2 / r * phi * envelope


def dimer_energies(module: ZBLRepulsion, z1: int, z2: int, r: torch.Tensor) -> torch.Tensor:
    """Per-atom energies ``[2]`` of the dimer at distance r (both edge directions)."""
    species = torch.tensor([ELEMENTS.index(z1), ELEMENTS.index(z2)])
    lengths = r.reshape(1).expand(2)
    return module(lengths, species, torch.tensor([[0, 1], [1, 0]]))


@pytest.mark.parametrize("z1, z2", [(1, 1), (6, 8), (7, 6), (8, 8)])
def test_dimer_energies_are_the_screened_coulomb_formula_split_in_halves(z1, z2):
    module = ZBLRepulsion(ELEMENTS, p=5)
    bond = covalent_radii[z1] + covalent_radii[z2]
    for r in np.linspace(0.05, 1.3 * bond, 23):
        per_atom = dimer_energies(module, z1, z2, torch.tensor(r, dtype=torch.float64))
        want = zbl_dimer(z1, z2, r)
        torch.testing.assert_close(per_atom, torch.full((2,), want / 2, dtype=torch.float64), rtol=1e-13, atol=1e-13)
    # repulsive and steep: hundreds of eV at a tenth of the bond length, decreasing with the distance
    near = [float(dimer_energies(module, z1, z2, torch.tensor(f * bond, dtype=torch.float64)).sum())
            for f in (0.1, 0.5)]  # fmt: skip
    assert near[0] > 100 and near[0] > near[1] > 0


def test_the_repulsion_ends_at_the_covalent_radii_with_two_continuous_derivatives():
    module = ZBLRepulsion(ELEMENTS, p=5)
    bond = covalent_radii[6] + covalent_radii[8]
    for r, nonzero in [(bond * (1 - 1e-9), False), (bond, False), (bond * 1.5, False), (bond * 0.9, True)]:
        x = torch.tensor(r, dtype=torch.float64, requires_grad=True)
        energy = dimer_energies(module, 6, 8, x).sum()
        (first,) = torch.autograd.grad(energy, x, create_graph=True)
        (second,) = torch.autograd.grad(first, x)
        values = [abs(float(v)) for v in (energy, first, second)]
        if nonzero:
            assert min(values) > 1e-3
        else:
            assert max(values) < 1e-6


def test_float32_and_the_buffers_follow_the_dtype():
    module = ZBLRepulsion(ELEMENTS, p=6).float()
    assert all(b.dtype == torch.float32 for b in module.buffers())
    got = dimer_energies(module, 7, 8, torch.tensor(0.8)).sum()
    assert got.dtype == torch.float32 and float(got) == pytest.approx(zbl_dimer(7, 8, 0.8, p=6), rel=1e-6)


def test_twice_differentiable_and_bad_input_refused():
    """gradcheck and gradgradcheck in the lengths (forces and their training's double backward); atomic numbers
    outside ASE's table and envelope powers below 2 are ValueErrors."""
    module = ZBLRepulsion(ELEMENTS, p=5)
    lengths = torch.tensor([0.3, 0.7, 0.7, 1.1, 2.5], dtype=torch.float64, requires_grad=True)
    species = torch.tensor([0, 1, 2, 3, 1])
    edges = torch.tensor([[0, 1, 2, 3, 4], [1, 0, 3, 2, 0]])
    assert torch.autograd.gradcheck(lambda r: module(r, species, edges), (lengths,))
    assert torch.autograd.gradgradcheck(lambda r: module(r, species, edges), (lengths,))
    with pytest.raises(ValueError, match="atomic numbers must be in 1..118"):
        ZBLRepulsion((1, 0), p=5)
    with pytest.raises(ValueError, match="needs p >= 2"):
        ZBLRepulsion(ELEMENTS, p=1)
