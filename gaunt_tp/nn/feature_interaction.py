"""Learnable feature interaction: a weighted Gaunt product of two node features."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.gaunt import gaunt
from gaunt_tp.math.gradients import odd_product_coefficients
from gaunt_tp.nn.linear import EquivariantLinear
from gaunt_tp.ops.tensor_product import GauntTensorProduct

__all__ = ["GauntFeatureInteraction"]


def _degree_channel_index(irreps: o3.Irreps) -> torch.Tensor:
    """For each feature of ``irreps`` (e3nn layout), the index ``i * mul + c`` of its (irrep i, channel c)."""
    index = []
    for i, (mul, ir) in enumerate(irreps):
        for c in range(mul):
            index += [i * mul + c] * ir.dim
    return torch.tensor(index, dtype=torch.long)


def output_variance(
    irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, irreps_out: o3.Irreps, odd_paths: bool
) -> torch.Tensor:
    """Second moment of each output irrep's components for independent unit-variance inputs.

    ``E[z_{l3 m3}^2] = sum_paths ||C(l1, l2, l3)||_F^2 / (2 l3 + 1)`` with C the Gaunt (and, with
    ``odd_paths``, the parity-odd) coefficients. Shape ``[len(irreps_out)]``, float64.
    """
    out = torch.zeros(len(irreps_out), dtype=torch.float64)
    for io, (_, ir3) in enumerate(irreps_out):
        for _, ir1 in irreps_in1:
            for _, ir2 in irreps_in2:
                if ir1.p * ir2.p != ir3.p:
                    continue
                out[io] += gaunt(ir1.l, ir2.l, ir3.l).square().sum()
                if odd_paths:
                    out[io] += odd_product_coefficients(ir1.l, ir2.l, ir3.l).square().sum()
        out[io] /= ir3.dim
    return out


class GauntFeatureInteraction(nn.Module):
    r"""``z = W_out( w3 * N * ((w1 * W_1 x1) (*) (w2 * W_2 x2)) )``: a learnable Gaunt feature interaction.

    The paper's parametrisation of a feature interaction: learnable weights per input
    degree and channel (``w1[l1, c]``, ``w2[l2, c]``) and per output degree and channel
    (``w3[l3, c]``) around the channel-wise Gaunt product (*) of
    :class:`gaunt_tp.GauntTensorProduct`; optionally per-degree channel mixing
    (``W_1``, ``W_2``, ``W_out``: :class:`gaunt_tp.nn.EquivariantLinear`, e3nn's ``o3.Linear``)
    before and after. ``N`` is a fixed
    constant per output irrep that makes the output's second moment 1 at
    initialisation for inputs with unit second moment (see :func:`output_variance`).

    Args:
        irreps_in1, irreps_in2, irreps_out: as for :class:`gaunt_tp.GauntTensorProduct`
            (one multiplicity C per input, or 1 for a broadcast input; C for the output).
        mix_inputs: channel mixing before the product.
        mix_output: channel mixing after it.
        backend, odd_paths: passed to :class:`gaunt_tp.GauntTensorProduct`.

    Shape:
        ``[..., irreps_in1.dim]``, ``[..., irreps_in2.dim]`` -> ``[..., irreps_out.dim]``, e3nn layout.

    Example:
        >>> import torch
        >>> layer = GauntFeatureInteraction("8x0e + 8x1o", "8x0e + 8x1o", "8x0e + 8x1o + 8x2e")
        >>> layer(torch.randn(10, 32), torch.randn(10, 32)).shape
        torch.Size([10, 72])
    """

    def __init__(
        self,
        irreps_in1: o3.Irreps | str,
        irreps_in2: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        mix_inputs: bool = True,
        mix_output: bool = True,
        backend: str = "auto",
        odd_paths: bool = False,
    ) -> None:
        super().__init__()
        self.product = GauntTensorProduct(irreps_in1, irreps_in2, irreps_out, backend=backend, odd_paths=odd_paths)
        irreps_in1, irreps_in2, irreps_out = self.product.irreps_in1, self.product.irreps_in2, self.product.irreps_out
        self.irreps_in1, self.irreps_in2, self.irreps_out = irreps_in1, irreps_in2, irreps_out
        self.mix1 = EquivariantLinear(irreps_in1, irreps_in1) if mix_inputs else None
        self.mix2 = EquivariantLinear(irreps_in2, irreps_in2) if mix_inputs else None
        self.mix_out = EquivariantLinear(irreps_out, irreps_out) if mix_output else None
        self.weight1 = nn.Parameter(torch.ones(len(irreps_in1), irreps_in1[0].mul))
        self.weight2 = nn.Parameter(torch.ones(len(irreps_in2), irreps_in2[0].mul))
        self.weight_out = nn.Parameter(torch.ones(len(irreps_out), irreps_out[0].mul))
        norm = output_variance(irreps_in1, irreps_in2, irreps_out, odd_paths).rsqrt()
        scale = torch.cat([norm[i].repeat(mul * ir.dim) for i, (mul, ir) in enumerate(irreps_out)])
        self.register_buffer("out_scale", scale, persistent=False)  # float64: cast to the features' dtype
        self.register_buffer("index1", _degree_channel_index(irreps_in1), persistent=False)
        self.register_buffer("index2", _degree_channel_index(irreps_in2), persistent=False)
        self.register_buffer("index_out", _degree_channel_index(irreps_out), persistent=False)

    def extra_repr(self) -> str:
        return f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}"

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        if self.mix1 is not None and self.mix2 is not None:
            x1, x2 = self.mix1(x1), self.mix2(x2)
        x1 = x1 * self.weight1.flatten().index_select(0, self.index1)
        x2 = x2 * self.weight2.flatten().index_select(0, self.index2)
        z = self.product(x1, x2)
        z = z * (self.weight_out.flatten().index_select(0, self.index_out) * self.out_scale.to(z.dtype))
        return self.mix_out(z) if self.mix_out is not None else z
