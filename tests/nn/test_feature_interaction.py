import pytest
import torch

from gaunt_tp import GauntTensorProduct
from gaunt_tp.nn import GauntFeatureInteraction, output_variance
from gaunt_tp.testing import assert_equivariant

IRREPS = ("4x0e + 4x1o + 4x2e", "4x0e + 4x1o", "4x0e + 4x1o + 4x2e + 4x3o")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("odd_paths", [False, True])
def test_equivariant(dtype, odd_paths):
    out = IRREPS[2] + (" + 4x1e + 4x2o" if odd_paths else "")
    layer = GauntFeatureInteraction(IRREPS[0], IRREPS[1], out, odd_paths=odd_paths).to(dtype)
    with torch.no_grad():  # non-trivial weights
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    err = assert_equivariant(layer, [layer.irreps_in1, layer.irreps_in2], layer.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-6)


def test_unit_second_moment_at_initialisation():
    layer = GauntFeatureInteraction(
        "16x0e + 16x1o + 16x2e + 16x3o",
        "16x0e + 16x1o + 16x2e + 16x3o",
        "16x0e + 16x1o + 16x2e + 16x3o + 16x1e + 16x2o",
        odd_paths=True,
    )
    x1, x2 = torch.randn(2, 4000, layer.irreps_in1.dim)
    with torch.no_grad():
        z = layer(x1, x2)
    for (mul, ir), sl in zip(layer.irreps_out, layer.irreps_out.slices()):
        second_moment = float(z[:, sl].square().mean())
        assert 0.8 < second_moment < 1.25, (ir, second_moment)


def test_weights_act_per_degree_and_channel():
    layer = GauntFeatureInteraction(*IRREPS, mix_inputs=False, mix_output=False).double()
    plain = GauntTensorProduct(*IRREPS)
    x1 = torch.randn(5, layer.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.randn(5, layer.irreps_in2.dim, dtype=torch.float64)
    norm = output_variance(layer.irreps_in1, layer.irreps_in2, layer.irreps_out, False).rsqrt()
    scale = torch.cat([norm[i].repeat(mul * ir.dim) for i, (mul, ir) in enumerate(layer.irreps_out)])
    torch.testing.assert_close(layer(x1, x2), plain(x1, x2) * scale, rtol=0, atol=1e-12)
    with torch.no_grad():
        layer.weight1[1, 2] = 3.0  # irrep 1 (1o), channel 2 of input 1
        layer.weight_out[3, 0] = -2.0  # irrep 3 (3o), channel 0 of the output
    x1_scaled = x1.clone()
    x1_scaled[:, 4 + 2 * 3 : 4 + 3 * 3] *= 3.0
    expected = plain(x1_scaled, x2) * scale
    sl = layer.irreps_out.slices()[3]
    expected[:, sl.start : sl.start + 7] *= -2.0
    torch.testing.assert_close(layer(x1, x2), expected, rtol=0, atol=1e-12)


def test_gradcheck_and_gradgradcheck():
    layer = GauntFeatureInteraction("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o + 2x2e").double()
    x1 = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x1, x2))
    assert torch.autograd.gradgradcheck(layer, (x1, x2))
    z = layer(x1, x2).square().sum()
    grads = torch.autograd.grad(z, list(layer.parameters()))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_bad_irreps():
    with pytest.raises(ValueError, match="odd_paths=True"):
        GauntFeatureInteraction("2x1o", "2x1o", "2x1e")
