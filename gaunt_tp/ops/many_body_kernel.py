"""The many-body blocks in one C kernel call per pass (CPU, float32/float64).

:class:`gaunt_tp.nn.GauntManyBody` computes, per node and channel, K products of nu functions on a
sphere grid and projects every running product. In PyTorch that is some 25 small operations forward
and twice as many backward per call, which is most of its time on molecules of tens of atoms. The
kernels in ``csrc/many_body.c`` do the forward pass in one call, the first derivatives (with respect
to the node features, the factor weights and the product weights) in another, and the second
derivatives (forces differentiated again in force training) in a third, which carries the first
derivative's recursion in dual numbers. :class:`gaunt_tp.nn.SymmetricContraction` (sparse polynomials
over monomials) has kernels of the same three kinds, behind the same autograd functions.

Only the gradients the running backward pass reaches are computed (forces alone skip the weights').
Third and higher derivatives differentiate the module's PyTorch form, recorded, so every order works
and agrees with the PyTorch path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gaunt_tp.ops.functions import gradient_needed
from gaunt_tp.ops.native import native_library

__all__ = ["ManyBodyLayout", "many_body_products", "symmetric_products"]

Reference = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ManyBodyLayout:
    """What the kernels need to know of a :class:`gaunt_tp.nn.GauntManyBody` besides its tensors.

    ``layout`` (int64) holds, for the input's class entries i, their offset in an e3nn row (channel 0),
    the stride between channels (2l+1) and their degree index, then the same for the output entries;
    ``num_products`` K and ``correlation`` nu, ``in_degrees``/``out_degrees`` the numbers of irreps.
    """

    layout: torch.Tensor
    entries_in: int
    entries_out: int
    in_degrees: int
    out_degrees: int
    in_dim: int
    out_dim: int
    channels: int
    num_products: int
    correlation: int

    def dims(self, nodes: int, points: int) -> torch.Tensor:
        return _int64_row(
            (nodes, self.channels, self.entries_in, self.entries_out, self.in_degrees, self.out_degrees, points,
             self.num_products, self.correlation, self.in_dim, self.out_dim)
        )  # fmt: skip


@functools.lru_cache(maxsize=256)
def _int64_row(values: tuple[int, ...]) -> torch.Tensor:
    """The sizes a kernel call reads, as an int64 tensor made once per distinct tuple (the kernels only read it)."""
    return torch.tensor(values, dtype=torch.int64)


@dataclass(frozen=True)
class _Setting:
    """What the passes of one call share: the kernel family (``many_body`` or ``symmetric``), the arguments
    after the tensors (tables of a's dtype, then the int64 sizes and layout), the output width and the
    block's PyTorch form."""

    kernel: str
    args: tuple[torch.Tensor, ...]
    out_dim: int
    reference: Reference

    @torch.compiler.disable  # the C call, also where torch.compile traces a derivative of the blocks
    def run(self, name: str, a: torch.Tensor, *tensors: torch.Tensor | None) -> None:
        """Calls ``<kernel>_<name>`` with ``tensors`` (None: a null pointer), then the arguments."""
        fn = getattr(native_library(), f"{self.kernel}_{name}_{'f32' if a.dtype == torch.float32 else 'f64'}")
        fn(*(v.data_ptr() if v is not None else 0 for v in (*tensors, *self.args)), torch.get_num_threads())

    def gradients(self, a, u, w, g, tangents=(None, None, None), wanted=(True, True, True, False)) -> list:
        """``<kernel>_backward``: first derivatives (no tangents) or second (along the tangents)."""
        grads = [torch.empty_like(t) if want else None for t, want in zip((a, u, w, g), wanted)]
        self.run("backward", a, *grads, g, a, u, w, *tangents)
        return grads


class _Products(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a, u, w, setting: _Setting):  # type: ignore[override]
        ctx.save_for_backward(a, u, w)
        ctx.setting = setting
        out = a.new_empty(a.shape[0], setting.out_dim)
        setting.run("forward", a, out, a, u, w)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        a, u, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        wanted = tuple(t is not None and need and gradient_needed(t) for t, need in zip((a, u, w), needs))
        if not any(wanted):
            return None, None, None, None
        grads = iter(_Gradients.apply(a, u, w, grad.contiguous(), wanted, ctx.setting))
        return (*(next(grads) if want else None for want in wanted), None)


class _Gradients(torch.autograd.Function):
    """The gradients of ``<g, out>`` with respect to a, u, w (those in ``wanted``), and their derivatives."""

    @staticmethod
    def forward(ctx: Any, a, u, w, g, wanted: tuple[bool, bool, bool], setting: _Setting):  # type: ignore[override]
        ctx.save_for_backward(a, u, w, g)
        ctx.wanted, ctx.setting = wanted, setting
        return tuple(t for t in setting.gradients(a, u, w, g, wanted=(*wanted, False)) if t is not None)

    @staticmethod
    def backward(ctx: Any, *cotangents: torch.Tensor | None):  # type: ignore[override]
        a, u, w, g = ctx.saved_tensors
        given = iter(cotangents)
        tangents = [next(given) if want else None for want in ctx.wanted]  # along a, u, w
        wanted = [t is not None and need and gradient_needed(t) for t, need in zip((a, u, w, g), ctx.needs_input_grad)]
        if all(t is None for t in tangents) or not any(wanted):
            return (None,) * 6
        if not torch.is_grad_enabled():
            tangents = [t.contiguous() if t is not None else None for t in tangents]
            return (*ctx.setting.gradients(a, u, w, g, tangents, wanted), None, None)
        # a third derivative will follow: differentiate the PyTorch form, recorded, through fresh aliases
        # (so that a path from g back to a, as g = 2 out, is not taken twice)
        a, u, w, g = (t.view_as(t) if t is not None else None for t in (a, u, w, g))
        first_index = [i for i, want in enumerate(ctx.wanted) if want]
        out = ctx.setting.reference(a, u, w)
        first = torch.autograd.grad(out, [(a, u, w)[i] for i in first_index], g, create_graph=True)
        pairs = [(d, tangents[i]) for i, d in zip(first_index, first) if tangents[i] is not None]
        inputs = [t for t, want in zip((a, u, w, g), wanted) if want]
        found = iter(
            torch.autograd.grad(
                [d for d, _ in pairs], inputs, [t for _, t in pairs], create_graph=True, allow_unused=True
            )
        )
        return (*(next(found) if want else None for want in wanted), None, None)


@torch.compiler.disable  # an opaque C call: torch.compile runs it eagerly, between graphs
def many_body_products(
    a: torch.Tensor,
    u: torch.Tensor | None,
    w: torch.Tensor,
    spec: ManyBodyLayout,
    tables: dict[str, torch.Tensor],
    reference: Reference,
) -> torch.Tensor:
    """GauntManyBody's output for per-node weights, in the C kernels; differentiable to any order.

    Shape:
        a ``[N, in_dim]`` (e3nn layout), u ``[N, K nu, in_degrees, C]`` or None (every factor is a),
        w ``[N, K nu, out_degrees, C]``; tables: ``synth [entries_in, P]``, ``proj [P, entries_out]``,
        ``norm [nu, out_degrees]``, all of a's dtype (float32 or float64, CPU). Returns
        ``[N, out_dim]``. ``reference(a, u, w)`` computes the same in PyTorch (differentiated for
        derivatives of third and higher order).
    """
    u = u.contiguous() if u is not None else None
    dims = spec.dims(a.shape[0], tables["synth"].shape[1])
    setting = _Setting("many_body", (tables["norm"], tables["synth"], tables["proj"], dims, spec.layout), spec.out_dim,
                       reference)  # fmt: skip
    return _Products.apply(a.contiguous(), u, w.contiguous(), setting)


@torch.compiler.disable
def symmetric_products(
    a: torch.Tensor,
    w: torch.Tensor,
    layout: torch.Tensor,
    sizes: tuple[int, ...],
    coefficients: torch.Tensor,
    reference: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """SymmetricContraction's output for per-node weights, in the C kernels; differentiable to any order.

    Shape:
        a ``[N, in_dim]`` (e3nn layout), w ``[N, num_paths, C]``, ``coefficients [nnz]`` of a's dtype
        (float32 or float64, CPU); ``layout`` (int64) and ``sizes`` ``(C, nI, nE, Q, nnz, nS, nP, in_dim,
        out_dim)`` as ``symmetric_*`` in ``csrc/many_body.c`` describes. Returns ``[N, out_dim]``.
        ``reference(a, w)`` computes the same in PyTorch (differentiated for third and higher orders).
    """
    dims = _int64_row((a.shape[0], *sizes))
    setting = _Setting("symmetric", (coefficients, dims, layout), sizes[-1], lambda a, u, w: reference(a, w))
    return _Products.apply(a.contiguous(), None, w.contiguous(), setting)
