"""The Fourier backend's own machinery: torus sizes, batch chunks, broadcasting through chunks."""

import pytest
import torch

from gaunt_tp import GauntTensorProduct
from gaunt_tp.ops.fft import torus_size
from gaunt_tp.testing import natural_irreps


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
    impl.chunk_bytes = 2 * impl.rows * impl.m_phi * 2 * 8  # 2 nodes per chunk
    x1 = torch.randn(5, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(5, tp.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x1, x2))
    assert torch.autograd.gradgradcheck(tp, (x1, x2))
