"""MACE's distance transforms against their formulas written out here."""

import math

import numpy as np
import pytest
import torch
from ase.data import covalent_radii

from gaunt_tp.nn.distance_transform import AgnesiTransform, SoftTransform

ELEMENTS = (1, 6, 8, 14)


def agnesi(r: float, z1: int, z2: int) -> float:
    y = r / ((covalent_radii[z1] + covalent_radii[z2]) / 2)
    return 1 / (1 + 1.0805 * y**0.9183 / (1 + y ** (0.9183 - 4.5791)))


def soft(r: float, z1: int, z2: int) -> float:
    r0 = covalent_radii[z1] + covalent_radii[z2]
    p0, p1 = 0.75 * r0, 4 / 3 * r0
    return p0 + (r - p0) * 0.5 * (1 + math.tanh(4.0 / (p1 - p0) * (r - (p0 + p1) / 2)))


@pytest.mark.parametrize("transform, formula", [(AgnesiTransform, agnesi), (SoftTransform, soft)])
def test_transforms_are_their_formulas_for_each_pair_of_elements(transform, formula):
    module = transform(ELEMENTS)
    rng = np.random.default_rng(0)
    r = rng.uniform(0.05, 6.0, 40)
    first, second = rng.integers(0, len(ELEMENTS), 40), rng.integers(0, len(ELEMENTS), 40)
    got = module(torch.tensor(r), torch.tensor(first), torch.tensor(second))
    want = [formula(x, ELEMENTS[i], ELEMENTS[j]) for x, i, j in zip(r, first, second)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-14, atol=1e-14)
    swapped = module(torch.tensor(r), torch.tensor(second), torch.tensor(first))  # symmetric in the two atoms
    torch.testing.assert_close(swapped, got, rtol=0, atol=0)
    assert float(module.float()(torch.tensor(r).float(), torch.tensor(first), torch.tensor(second)).sub(
        got.float()).abs().max()) < 1e-5  # fmt: skip


def test_agnesi_falls_from_one_and_soft_floors_short_bonds_and_keeps_long_ones():
    r = torch.linspace(0.01, 6.0, 600, dtype=torch.float64)
    carbon = torch.full_like(r, 1, dtype=torch.long)
    a = AgnesiTransform(ELEMENTS)(r, carbon, carbon)
    assert float(a[0]) > 0.99 and bool((a[1:] < a[:-1]).all()) and float(a[-1]) > 0
    s = SoftTransform(ELEMENTS)(r, carbon, carbon)
    r0 = 2 * covalent_radii[6]
    assert float(s[0]) == pytest.approx(0.75 * r0, rel=1e-3)  # a floor at 3/4 of the bond
    assert float(s[-1]) == pytest.approx(6.0, rel=1e-9)  # long edges as they are


@pytest.mark.parametrize("transform", [AgnesiTransform, SoftTransform])
def test_twice_differentiable_and_bad_elements_refused(transform):
    module = transform(ELEMENTS)
    lengths = torch.tensor([0.4, 1.1, 2.0, 4.5], dtype=torch.float64, requires_grad=True)
    first, second = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 1, 3, 0])
    assert torch.autograd.gradcheck(lambda r: module(r, first, second), (lengths,))
    assert torch.autograd.gradgradcheck(lambda r: module(r, first, second), (lengths,))
    with pytest.raises(ValueError, match="atomic numbers must be in 1..118, got \\[1, 300\\]"):
        transform((1, 300))
