"""Autograd functions with hand-written backward passes for the grid backend's hot spots.

Both are closed under differentiation (the backward of each is made of the same
function), so gradients of any order work, as force training needs.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["gradient_needed", "mirror_product", "permute_features"]


def gradient_needed(t: torch.Tensor) -> bool:
    """Whether the running backward pass reaches ``t``'s gradient (not the weights' when only forces are
    asked for, not a parameter-only branch's): custom backward passes skip what no one will read. True
    where PyTorch cannot tell (outside a backward pass, or an older PyTorch)."""
    try:
        return bool(torch._C._will_engine_execute_node(torch.autograd.graph.get_gradient_edge(t).node))
    except (AttributeError, RuntimeError):
        return True


class _Permute(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, perm: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(perm, inverse)
        return x.index_select(-1, perm)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        perm, inverse = ctx.saved_tensors
        return _Permute.apply(grad, inverse, perm), None, None


def permute_features(x: torch.Tensor, perm: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``x[..., perm]`` for a permutation ``perm`` of the last dim; the backward is ``g[..., inverse]``.

    autograd's own backward of ``index_select`` scatters into zeros (``index_add``), which
    is several times slower than gathering with the inverse permutation.

    Shape:
        x ``[..., n]``, perm and inverse ``[n]`` (``perm[inverse] = arange(n)``); returns ``[..., n]``.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return _Permute.apply(x, perm, inverse)
    return x.index_select(-1, perm)  # no graph to build: skip the Function's overhead


def _mul_add(
    a: torch.Tensor | None, b: torch.Tensor | None, c: torch.Tensor | None, d: torch.Tensor | None
) -> torch.Tensor | None:
    """``a*b + c*d`` where a product with a missing factor is left out (None if both are)."""
    first = a * b if a is not None and b is not None else None
    if c is None or d is None:
        return first
    return c * d if first is None else torch.addcmul(first, c, d)


class _MirrorProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, fe: torch.Tensor, fo: torch.Tensor | None, ge: torch.Tensor, go: torch.Tensor | None):  # type: ignore[override]
        ctx.save_for_backward(fe, fo, ge, go)
        return _mul_add(fe, ge, fo, go), _mul_add(fe, go, fo, ge)

    @staticmethod
    def backward(ctx: Any, grad_e: torch.Tensor, grad_o: torch.Tensor | None):  # type: ignore[override]
        fe, fo, ge, go = ctx.saved_tensors
        if fo is None and go is None:
            grad_o = None
        dfe, dfo = _MirrorProduct.apply(grad_e, grad_o, ge, go)
        dge, dgo = _MirrorProduct.apply(grad_e, grad_o, fe, fo)
        dfo = dfo.sum_to_size(fo.shape) if fo is not None and dfo is not None else None
        dgo = dgo.sum_to_size(go.shape) if go is not None and dgo is not None else None
        return dfe.sum_to_size(fe.shape), dfo, dge.sum_to_size(ge.shape), dgo


def mirror_product(
    fe: torch.Tensor, fo: torch.Tensor | None, ge: torch.Tensor, go: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mirror-even and -odd parts of a product from the parts of its factors.

    With ``f = fe + fo`` on the upper hemisphere and ``f = fe - fo`` on the lower one
    (likewise g), the product's parts are ``(fe ge + fo go, fe go + fo ge)``. A missing
    (None) odd part counts as zero; the odd result is None when both odd parts are.

    Shape:
        all factors broadcast to a common ``[..., P]``; both results have that shape.
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (fe, fo, ge, go)):
        return _MirrorProduct.apply(fe, fo, ge, go)
    return _mul_add(fe, ge, fo, go), _mul_add(fe, go, fo, ge)
