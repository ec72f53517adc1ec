"""The Fourier backend's own machinery: torus sizes, the PyTorch path (batch chunks, broadcasting
through chunks, exactness and derivatives; the test suite's backend-wide tests run the fused kernel
on CPUs), and the torus samples the kernel uses."""

import pytest
import torch

from gaunt_tp import GauntTensorProduct
from gaunt_tp.ops.fft import torus_size
from gaunt_tp.testing import assert_equivariant, natural_irreps


def test_torus_size_is_the_smallest_even_unaliased_grid():
    for l1, l2, lo in [(0, 0, 0), (1, 2, 3), (3, 3, 1), (8, 8, 8)]:
        m_theta, m_phi = torus_size(l1, l2, lo)
        assert m_theta % 2 == 0 and m_phi % 2 == 0
        assert m_theta - 2 < 2 * (l1 + l2) + 1 <= m_theta
        assert m_phi - 2 < l1 + l2 + lo + 1 <= m_phi


@pytest.mark.parametrize(
    "shapes",
    [((23,), (23,)), ((1,), (23,)), ((23,), (1,))],
    ids=["equal", "broadcast-first", "broadcast-second"],
)
@pytest.mark.parametrize("mul2", [3, 1], ids=["same-mul", "broadcast-mul"])
def test_batch_chunks_give_the_unchunked_result(shapes, mul2):
    irreps1, irreps2, irreps_out = natural_irreps(3, 3), natural_irreps(2, mul2), natural_irreps(4, 3)
    tp = GauntTensorProduct(irreps1, irreps2, irreps_out, backend="fft")
    oracle = GauntTensorProduct(irreps1, irreps2, irreps_out, backend="dense")
    impl = tp.impls["fft"]
    impl.use_kernel = False  # the PyTorch path
    per_node = impl.rows * impl.m_phi * 3 * 8
    impl.chunk_bytes = 4 * per_node + 1  # 4 nodes per chunk: 23 nodes give 6 chunks, the last one short
    x1 = torch.randn(*shapes[0], tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.randn(*shapes[1], tp.irreps_in2.dim, dtype=torch.float64)
    out = tp(x1, x2)
    assert out.shape == (23, tp.irreps_out.dim)
    torch.testing.assert_close(out, oracle(x1, x2), rtol=0, atol=1e-12)


def test_gradients_through_batch_chunks():
    irreps = natural_irreps(2, 2)
    tp = GauntTensorProduct(irreps, irreps, irreps, backend="fft")
    impl = tp.impls["fft"]
    impl.use_kernel = False  # the PyTorch path
    impl.chunk_bytes = 2 * impl.rows * impl.m_phi * 2 * 8  # 2 nodes per chunk
    x1 = torch.randn(5, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(5, tp.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x1, x2))
    assert torch.autograd.gradgradcheck(tp, (x1, x2))


CASES = [
    (natural_irreps(2, 3), natural_irreps(2, 3), natural_irreps(4, 3)),
    ("2x0e + 2x1e + 2x2o", "2x1o + 2x0o", "2x1o + 2x0o + 2x2e + 2x3e + 2x1e + 2x2o"),
    ("2x3o + 2x1o", "2x2e", "2x5o + 2x1o + 2x3o"),
]


@pytest.mark.parametrize("fused", [False, True], ids=["pytorch", "kernel"])
@pytest.mark.parametrize("case", CASES, ids=["natural", "pseudo", "gaps"])
def test_both_paths_equal_the_dense_oracle(case, fused):
    from gaunt_tp.ops.fft import FourierGaunt
    from gaunt_tp.ops.native import native_error

    if fused and native_error() is not None:
        pytest.skip("no C compiler here")
    tp = GauntTensorProduct(*case, backend="fft")
    tp.impls["fft"] = FourierGaunt(tp.descriptor, fused=fused)
    oracle = GauntTensorProduct(*case, backend="dense")
    x1 = torch.randn(6, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(6, tp.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(tp(x1, x2), oracle(x1, x2), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(tp, (x1, x2))
    assert torch.autograd.gradgradcheck(tp, (x1, x2))
    err = assert_equivariant(tp, [tp.irreps_in1, tp.irreps_in2], tp.irreps_out, dtype=torch.float32)
    assert err < 1e-6


def test_torus_samples_project_exactly():
    from e3nn import o3

    from gaunt_tp.ops.fft import torus_samples

    samples = torus_samples(2, 3, 4)  # products of degree <= 5, projected onto degrees <= 4
    y = o3.spherical_harmonics(list(range(6)), samples.points, normalize=False, normalization="integral")
    # the projection of Y_a Y_b is the Gaunt coefficient <Y_a Y_b Y_c> for c <= 4
    from gaunt_tp.math import gaunt

    for l1, l2 in [(1, 2), (2, 3), (0, 2)]:
        for l3 in range(abs(l1 - l2), min(l1 + l2, 4) + 1):
            h = y[:, l1 * l1 : (l1 + 1) ** 2, None] * y[:, None, l2 * l2 : (l2 + 1) ** 2]  # [P, 2l1+1, 2l2+1]
            projected = torch.einsum("pab,pc->abc", h, samples.projection[:, l3 * l3 : (l3 + 1) ** 2])
            torch.testing.assert_close(projected, gaunt(l1, l2, l3), rtol=0, atol=1e-12)
    for axis, perm in samples.mirrors.items():  # permutations that mirror the points
        flip = torch.ones(3, dtype=torch.float64)
        flip[axis] = -1.0
        torch.testing.assert_close(samples.points[perm], samples.points * flip, rtol=0, atol=1e-12)
