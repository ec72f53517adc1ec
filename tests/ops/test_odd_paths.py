import math

import pytest
import torch

from gaunt_tp import GauntTensorProduct
from gaunt_tp.ops import BACKENDS
from gaunt_tp.testing import E3nnGauntReference, assert_equivariant

CASES = [
    ("2x1o", "2x1o", "2x1e"),  # the cross product alone
    ("2x0e + 2x1o + 2x2e", "2x0e + 2x1o + 2x2e", "2x0e + 2x1e + 2x1o + 2x2e + 2x2o + 2x3o"),  # both kinds
    ("2x1o + 2x1e", "2x2e", "2x2o + 2x1e + 2x2e + 2x3o"),  # pseudo inputs too
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_equals_e3nn_with_odd_paths(backend, case):
    tp = GauntTensorProduct(*case, backend=backend, odd_paths=True)
    ref = E3nnGauntReference(*case, odd_paths=True)
    x1 = torch.randn(5, tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.randn(5, tp.irreps_in2.dim, dtype=torch.float64)
    torch.testing.assert_close(tp(x1, x2), ref(x1, x2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["grid", "fused"])
def test_cross_product_of_vectors(backend):
    tp = GauntTensorProduct("1x1o", "1x1o", "1x1e", odd_paths=True, backend=backend)
    a, b = torch.randn(2, 7, 3, dtype=torch.float64)
    torch.testing.assert_close(tp(a, b), math.sqrt(3 / (4 * math.pi)) * torch.linalg.cross(a, b), rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", ["grid", "fused"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equivariant_with_parity(dtype, backend):
    tp = GauntTensorProduct(*CASES[1], odd_paths=True, backend=backend)
    err = assert_equivariant(tp, [tp.irreps_in1, tp.irreps_in2], tp.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-6)


@pytest.mark.parametrize("backend", ["grid", "fused"])
def test_gradcheck_and_gradgradcheck(backend):
    irreps = ("1x0e + 1x1o + 1x2e", "1x1o + 1x2e", "1x1e + 1x2o + 1x1o")
    tp = GauntTensorProduct(*irreps, odd_paths=True, backend=backend)
    x1 = torch.randn(3, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(3, tp.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x1, x2))
    assert torch.autograd.gradgradcheck(tp, (x1, x2))


def test_without_the_option_the_error_points_to_it():
    with pytest.raises(ValueError, match="odd_paths=True"):
        GauntTensorProduct("1x1o", "1x1o", "1x1e")
    with pytest.raises(ValueError, match="not reached by any path"):
        GauntTensorProduct("1x1o", "1x1o", "1x3e", odd_paths=True)


@pytest.mark.parametrize("backend", ["grid", "fused"])
def test_odd_paths_vanish_for_equal_inputs(backend):
    tp = GauntTensorProduct("3x1o + 3x2e", "3x1o + 3x2e", "3x1e + 3x2o", odd_paths=True, backend=backend)
    x = torch.randn(4, tp.irreps_in1.dim, dtype=torch.float64)
    assert tp(x, x).abs().max() < 1e-13  # grad f x grad f = 0


def test_tangent_frames_are_right_handed_and_orthonormal():
    from gaunt_tp.math.quadrature import smallest_grid
    from gaunt_tp.ops.odd import tangent_frames

    poles = torch.eye(3, dtype=torch.float64)
    points = torch.cat(
        [
            poles,
            -poles,
            smallest_grid(9).points,
            torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1),
        ]
    )
    f = tangent_frames(points)
    t1, t2 = f[:, 0], f[:, 1]
    ones, zeros = torch.ones(len(points), dtype=torch.float64), torch.zeros(len(points), dtype=torch.float64)
    torch.testing.assert_close((t1 * t1).sum(-1), ones, rtol=0, atol=1e-14)
    torch.testing.assert_close((t2 * t2).sum(-1), ones, rtol=0, atol=1e-14)
    torch.testing.assert_close((t1 * t2).sum(-1), zeros, rtol=0, atol=1e-14)
    torch.testing.assert_close((t1 * points).sum(-1), zeros, rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.linalg.cross(t1, t2, dim=-1), points, rtol=0, atol=1e-14)
