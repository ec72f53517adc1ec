"""The channel-wise Gaunt tensor product module (no learnable weights)."""

from __future__ import annotations

import warnings

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.ops.auto import BACKENDS, choose_backend
from gaunt_tp.ops.dense import DenseGaunt
from gaunt_tp.ops.descriptor import GauntDescriptor, as_irreps, path_kinds
from gaunt_tp.ops.fft import FourierGaunt
from gaunt_tp.ops.fused import FusedGridGaunt
from gaunt_tp.ops.grid import GridGaunt
from gaunt_tp.ops.native import native_error, native_library
from gaunt_tp.ops.odd import OddPathProduct

__all__ = ["GauntTensorProduct"]

_IMPLEMENTATIONS = {"dense": DenseGaunt, "fft": FourierGaunt, "grid": GridGaunt, "fused": FusedGridGaunt}


_WARNED: list[bool] = []


def _warn_without_fused(reason: str) -> None:
    """Say once per process that ``auto`` runs without the fused CPU kernel (unless switched off on purpose)."""
    if _WARNED or "GAUNT_TP_NATIVE=0" in reason:
        return
    _WARNED.append(True)
    warnings.warn(
        f"gaunt-tp's fused CPU kernel is unavailable, so backend='auto' picks among dense, fft and grid "
        f"(several times slower on CPUs): {reason}",
        RuntimeWarning,
        stacklevel=3,
    )


def _split_outputs(
    irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, irreps_out: o3.Irreps, odd_paths: bool
) -> tuple[list[int], list[int]]:
    """Indices of the output irreps reached by Gaunt (even) paths and, if asked, by odd paths."""
    if len(irreps_out) == 0:
        raise ValueError("irreps_out is empty; a Gaunt product needs at least one irrep")
    if not odd_paths:
        return list(range(len(irreps_out))), []  # the descriptor explains any unreachable output
    even_idx, odd_idx = [], []
    for i, (_, ir) in enumerate(irreps_out):
        even, odd = path_kinds(irreps_in1, irreps_in2, ir)
        if not even and not odd:
            raise ValueError(
                f"output irrep {ir} is not reached by any path from {irreps_in1} x {irreps_in2} "
                "(needs p1*p2 = p3 and |l1-l2| <= l3 <= l1+l2)"
            )
        if even:
            even_idx.append(i)
        if odd:
            odd_idx.append(i)
    return even_idx, odd_idx


def _feature_index(irreps: o3.Irreps, idx: list[int]) -> torch.Tensor:
    """Positions in ``irreps``' layout of the features of the irreps ``idx``, in that order."""
    slices = irreps.slices()
    return torch.tensor([j for i in idx for j in range(slices[i].start, slices[i].stop)], dtype=torch.long)


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
            1o x 1o, the cross product, is a ValueError unless ``odd_paths=True``).
        backend: ``"dense"`` (Gaunt tensor, the reference), ``"fft"`` (2D Fourier, the
            paper's method), ``"grid"`` (sphere quadrature), ``"fused"`` (the grid's product
            in one C kernel compiled on first use; CPU, float32/float64; see
            :mod:`gaunt_tp.ops.native`) or ``"auto"`` (a cost model picks per batch size,
            dtype and device, among the backends that run there; :attr:`backend` tells the
            last pick).
        odd_paths: also compute the paths with l1+l2+l3 odd (the cross product
            1o x 1o -> 1e, for example), which Gaunt coefficients miss, with
            :class:`gaunt_tp.ops.odd.OddPathProduct` (its fused C kernel with ``backend="auto"`` on a
            CPU or ``"fused"``, else its PyTorch grid): each such path is
            ``odd_product_coefficients(l1, l2, l3)``, a constant times e3nn's 3j symbol.
            Output irreps may then be reached by either kind of path.

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
        odd_paths: bool = False,
    ) -> None:
        super().__init__()
        if backend not in (*BACKENDS, "auto"):
            raise ValueError(f"backend must be one of {(*BACKENDS, 'auto')}, got {backend!r}")
        self.irreps_in1 = as_irreps(irreps_in1, "irreps_in1")
        self.irreps_in2 = as_irreps(irreps_in2, "irreps_in2")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        even_idx, odd_idx = _split_outputs(self.irreps_in1, self.irreps_in2, self.irreps_out, odd_paths)
        sub = lambda idx: o3.Irreps([self.irreps_out[i] for i in idx])  # noqa: E731
        self.descriptor = GauntDescriptor(self.irreps_in1, self.irreps_in2, sub(even_idx)) if even_idx else None
        odd_backend = backend if backend in ("auto", "fused") else "grid"
        self.odd = (
            OddPathProduct(GauntDescriptor(self.irreps_in1, self.irreps_in2, sub(odd_idx), odd=True), odd_backend)
            if odd_idx
            else None
        )
        self._shape_check = self.descriptor or self.odd.desc  # type: ignore[union-attr]
        self.register_buffer("_even_index", _feature_index(self.irreps_out, even_idx), persistent=False)
        self.register_buffer("_odd_index", _feature_index(self.irreps_out, odd_idx), persistent=False)
        self._even_is_all = even_idx == list(range(len(self.irreps_out)))
        self._dim_out = self.irreps_out.dim  # a plain int for forward (torch.compile cannot guard on Irreps)
        self.requested_backend = backend
        if backend == "fused":
            native_library()  # raises NativeUnavailable with the reason (no compiler, disabled, ...)
        names = BACKENDS if backend == "auto" else (backend,)
        unavailable = native_error() if backend == "auto" else None
        if unavailable is not None:
            names = tuple(name for name in names if name != "fused")
            _warn_without_fused(unavailable)
        if self.descriptor is None:
            names = ()
        self.impls = nn.ModuleDict({name: _IMPLEMENTATIONS[name](self.descriptor) for name in names})
        self._choices: dict[tuple[int, str, torch.dtype], str] = {}
        self._last_backend = self._choose(1024, "cpu", torch.float32)

    def _choose(self, products: int, device_type: str, dtype: torch.dtype) -> str:
        if not self.impls:
            return "odd"  # only parity-odd outputs: OddPathProduct (its own grid or fused kernel) does it all
        if self.requested_backend != "auto":
            return self.requested_backend
        bucket = 1 << max(0, products.bit_length() - 1)  # one pick per power of two of the batch
        key = (bucket, device_type, dtype)
        if key not in self._choices:
            self._choices[key] = choose_backend(
                dict(self.impls.items()), products=bucket, device_type=device_type, dtype=dtype
            )
        return self._choices[key]

    @property
    def backend(self) -> str:
        """The backend of the Gaunt (even) paths that ran last (for ``"auto"`` before any call: its pick for 1024
        float32 products on a CPU); ``"odd"`` when every output is reached by parity-odd paths only."""
        return self._last_backend

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        check = self._shape_check
        batch = check.batch_shape(x1, x2)
        if self.requested_backend == "auto":
            name = self._choose(batch.numel() * check.mul, x1.device.type, x1.dtype)
            if name != self._last_backend:
                self._last_backend = name
        else:
            name = self._last_backend
        if batch.numel() == 0:  # nothing to compute; still part of the inputs' graph (zero gradients)
            return x1.new_zeros(*batch, self._dim_out) + 0 * (x1.sum() + x2.sum())
        x1, x2 = _flatten_pair(x1, x2, batch)
        even = self.impls[name](x1, x2) if self.impls else None
        if self.odd is None and self._even_is_all:
            return even.reshape(*batch, self._dim_out)  # type: ignore[union-attr]
        out = x1.new_zeros(max(x1.shape[0], x2.shape[0]), self._dim_out)
        if even is not None:
            out = out.index_add(1, self._even_index, even)
        if self.odd is not None:
            out = out.index_add(1, self._odd_index, self.odd(x1, x2))
        return out.reshape(*batch, self._dim_out)

    def extra_repr(self) -> str:
        return f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, backend={self.requested_backend!r}"
