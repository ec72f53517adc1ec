"""The floating-point precisions a model runs in, by the names used on the command line and in YAML configs."""

from __future__ import annotations

import torch

from gaunt_tp.errors import InputError

__all__ = ["DTYPES", "torch_dtype"]

DTYPES = ("float32", "float64")


def torch_dtype(name: str) -> torch.dtype:
    """``torch.float32`` or ``torch.float64`` for ``"float32"`` or ``"float64"``; any other name is an
    :class:`~gaunt_tp.errors.InputError` that lists the choices."""
    if name not in DTYPES:
        raise InputError(f"default_dtype must be {' or '.join(map(repr, DTYPES))}, got {name!r}")
    return getattr(torch, name)
