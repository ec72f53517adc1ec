"""The channel-wise Gaunt tensor product module (no learnable weights)."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.ops.auto import BACKENDS, choose_backend
from gaunt_tp.ops.dense import DenseGaunt
from gaunt_tp.ops.descriptor import GauntDescriptor
from gaunt_tp.ops.fft import FourierGaunt
from gaunt_tp.ops.grid import GridGaunt

__all__ = ["GauntTensorProduct"]

_IMPLEMENTATIONS = {"dense": DenseGaunt, "fft": FourierGaunt, "grid": GridGaunt}


def _flatten_pair(x1: torch.Tensor, x2: torch.Tensor, batch: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as ``[N_i, dim]`` with N_i equal to ``batch.numel()`` or 1 (broadcast by the backends)."""
    flat = []
    for x in (x1, x2):
        if x.shape[:-1] == batch or x.shape[:-1].numel() == 1:
            flat.append(x.reshape(-1, x.shape[-1]))
        else:
            flat.append(x.expand(*batch, x.shape[-1]).reshape(-1, x.shape[-1]))
    return flat[0], flat[1]


class GauntTensorProduct(nn.Module):
    r"""Channel-wise product of two spherical functions, in e3nn's real basis.

    For channel u, with ``f_u = sum x1_u^{lm} Y_lm`` and ``g_u = sum x2_u^{lm} Y_lm``
    (orthonormal real harmonics, see :mod:`gaunt_tp.math.conventions`), returns
    ``z_u^{l3 m3} = sum G(l1 m1, l2 m2, l3 m3) x1_u^{l1 m1} x2_u^{l2 m2}`` where G is
    :func:`gaunt_tp.math.gaunt`, summed over the paths (l1, p1) x (l2, p2) -> (l3, p3)
    with p1 p2 = p3, |l1-l2| <= l3 <= l1+l2 and l1+l2+l3 even. For natural-parity
    inputs (0e, 1o, 2e, ...) this is the product ``f_u g_u`` truncated to the output
    degrees. It equals e3nn's ``TensorProduct`` in mode ``'uuu'`` with path weight
    ``G / wigner_3j`` on each path.

    Args:
        irreps_in1, irreps_in2: e3nn ``Irreps`` or strings. All irreps of one input share
            one multiplicity; the two multiplicities are equal, or one is 1 and is broadcast.
        irreps_out: the output irreps, each with the common multiplicity C and each reached
            by a Gaunt path (an output reached only through l1+l2+l3 odd, such as 1e from
            1o x 1o, the cross product, is a ValueError).
        backend: ``"dense"`` (Gaunt tensor, the reference), ``"fft"`` (2D Fourier, the
            paper's method), ``"grid"`` (sphere quadrature) or ``"auto"`` (a cost model
            picks per batch size, dtype and device; :attr:`backend` tells the last pick).

    Shape:
        x1 ``[..., irreps_in1.dim]``, x2 ``[..., irreps_in2.dim]`` with broadcastable batch
        dims; returns ``[..., irreps_out.dim]``. Layout is e3nn's: irrep i is a block
        ``[mul, 2l+1]`` flattened, m = -l..l.

    Example:
        >>> import torch
        >>> tp = GauntTensorProduct("4x0e + 4x1o", "4x0e + 4x1o", "4x0e + 4x1o + 4x2e", backend="grid")
        >>> tp(torch.randn(10, 16), torch.randn(10, 16)).shape
        torch.Size([10, 36])
    """

    def __init__(
        self,
        irreps_in1: o3.Irreps | str,
        irreps_in2: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if backend not in (*BACKENDS, "auto"):
            raise ValueError(f"backend must be one of {(*BACKENDS, 'auto')}, got {backend!r}")
        self.descriptor = GauntDescriptor(irreps_in1, irreps_in2, irreps_out)
        self.irreps_in1 = self.descriptor.irreps_in1
        self.irreps_in2 = self.descriptor.irreps_in2
        self.irreps_out = self.descriptor.irreps_out
        self.requested_backend = backend
        names = BACKENDS if backend == "auto" else (backend,)
        self.impls = nn.ModuleDict({name: _IMPLEMENTATIONS[name](self.descriptor) for name in names})
        self._choices: dict[tuple[int, str], str] = {}
        self._last_backend = self._choose(1024, "cpu")

    def _choose(self, products: int, device_type: str) -> str:
        if self.requested_backend != "auto":
            return self.requested_backend
        bucket = 1 << max(0, products.bit_length() - 1)  # one pick per power of two of the batch
        key = (bucket, device_type)
        if key not in self._choices:
            self._choices[key] = choose_backend(dict(self.impls.items()), products=bucket, device_type=device_type)
        return self._choices[key]

    @property
    def backend(self) -> str:
        """The backend that ran last (for ``"auto"`` before any call: its pick for 1024 products on a CPU)."""
        return self._last_backend

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        desc = self.descriptor
        batch = desc.batch_shape(x1, x2)
        name = self._choose(batch.numel() * desc.mul, x1.device.type)
        self._last_backend = name
        x1, x2 = _flatten_pair(x1, x2, batch)
        return self.impls[name](x1, x2).reshape(*batch, desc.dim_out)

    def extra_repr(self) -> str:
        return f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, backend={self.requested_backend!r}"
