"""Input checks shared by the operations and modules."""

from __future__ import annotations

import torch

__all__ = ["capturing", "index_range"]


def capturing(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is on a CUDA device whose current stream is capturing a CUDA graph."""
    return tensor.is_cuda and torch.cuda.is_current_stream_capturing()


def index_range(index: torch.Tensor) -> tuple[int, int] | None:
    """The smallest and largest entry of a non-empty integer tensor: one operation, read back once (the
    range checks run on every call of a model's layers, where each small operation costs microseconds).

    ``None`` while a CUDA graph is being captured on the current stream, where reading a value back to the host
    is not allowed: the caller's range check is skipped there (the eager warm-up runs before a capture have it).
    """
    if capturing(index):
        return None
    low, high = torch.aminmax(index)
    return int(low.tolist()), int(high.tolist())
