import pytest
import torch
from e3nn import o3

from gaunt_tp import GauntTensorProduct
from gaunt_tp.testing import E3nnGauntReference, assert_equivariant, random_rotation, wigner_matrix


def test_wigner_matrix_of_vectors_is_the_rotation_and_matches_e3nn():
    rot = random_rotation()
    torch.testing.assert_close(wigner_matrix("1x1o", rot), rot, rtol=0, atol=1e-14)
    torch.testing.assert_close(wigner_matrix("1x1o", rot, inversion=True), -rot, rtol=0, atol=1e-14)
    torch.testing.assert_close(wigner_matrix("1x1e", rot, inversion=True), rot, rtol=0, atol=1e-14)
    irreps = o3.Irreps("2x0e + 1x2e + 1x3o")
    angles = [torch.tensor(v, dtype=torch.float64) for v in (0.3, 1.1, -0.7)]
    rot = o3.angles_to_matrix(*angles)
    with torch.autograd.no_grad():
        prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            ref = irreps.D_from_angles(*angles)
        finally:
            torch.set_default_dtype(prev)
    torch.testing.assert_close(wigner_matrix(irreps, rot), ref, rtol=0, atol=1e-12)


def test_assert_equivariant_catches_a_broken_function():
    def broken(x):
        return x * torch.arange(x.shape[-1], dtype=x.dtype)  # scales components unequally

    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(broken, ["1x1o"], "1x1o")

    def wrong_parity(x):
        return x  # claims 1e output for a 1o input

    with pytest.raises(AssertionError, match="roto-inversion"):
        assert_equivariant(wrong_parity, ["1x1o"], "1x1e")


def test_e3nn_reference_matches_dense_backend():
    irreps = "2x0e + 2x1o + 2x2e"
    ref = E3nnGauntReference(irreps, irreps, irreps)
    tp = GauntTensorProduct(irreps, irreps, irreps, backend="dense")
    x1, x2 = torch.randn(2, 5, 18, dtype=torch.float64)
    torch.testing.assert_close(ref(x1, x2), tp(x1, x2), rtol=0, atol=1e-13)


def test_host_read_backs_finds_a_read_back_and_refuses_an_empty_profile():
    from gaunt_tp.testing import host_read_backs

    x = torch.arange(6.0)
    assert "aten::_local_scalar_dense" in host_read_backs(lambda: x.sum().item())
    assert "aten::nonzero" in host_read_backs(lambda: x[x > 2.0])
    assert host_read_backs(lambda: x * 2.0 + 1.0) == set()
    with pytest.raises(ValueError, match="nothing ran"):
        host_read_backs(lambda: None)
