"""The device a model runs on, by the names used on the command line, in YAML configs and by the calculator."""

from __future__ import annotations

import torch

from gaunt_tp.errors import InputError

__all__ = ["torch_device"]


def torch_device(name: str | torch.device) -> torch.device:
    """``torch.device(name)`` once it is known to be usable here: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    A name torch does not parse, a CUDA device on a build or machine without one, or a CUDA index beyond the
    devices present is an :class:`~gaunt_tp.errors.InputError` saying which.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            cpu_only = torch.version.cuda is None and getattr(torch.version, "hip", None) is None  # ROCm: 'cuda' too
            raise InputError(
                f"device {str(device)!r}: torch {torch.__version__} sees no CUDA GPU here "
                f"({'a CPU-only build' if cpu_only else 'no device or driver'})"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device
