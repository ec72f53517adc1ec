"""The exponential moving average of the weights that training validates and exports, as MACE keeps it."""

from __future__ import annotations

import functools

import torch
from torch.optim.swa_utils import AveragedModel

__all__ = ["moving_average", "warmed_up_decay"]


def warmed_up_decay(decay: float, update: int) -> float:
    """The decay used at the ``update``-th update (1, 2, ...): ``min(decay, (1 + update) / (10 + update))``.

    This is the warm-up of torch_ema's ``ExponentialMovingAverage`` (with ``use_num_updates``, its default), which
    MACE's ``--ema`` uses: early on the average follows the weights closely, and the full ``decay`` (0.99 after 890
    updates, 0.999 after 8990) holds only once the weights have moved away from their initial values.

    >>> warmed_up_decay(0.99, 1), warmed_up_decay(0.99, 2), warmed_up_decay(0.99, 1000)
    (0.18181818181818182, 0.25, 0.99)
    """
    return min(decay, (1 + update) / (10 + update))


@torch.no_grad()
def _update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor, *, decay: float):
    # AveragedModel copies the weights at its first update and calls this from the second on, with the number of
    # updates before this one: this update is the (num_averaged + 1)-th
    weight = 1.0 - warmed_up_decay(decay, int(num_averaged) + 1)
    torch._foreach_lerp_(averaged, current, weight)


def moving_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An :class:`~torch.optim.swa_utils.AveragedModel` of ``model`` holding MACE's moving average of its weights.

    Call ``update_parameters(model)`` after every optimiser step: the first call copies the weights, the n-th
    (n >= 2) sets ``average += (1 - d_n) * (weights - average)`` with ``d_n = warmed_up_decay(decay, n)``. The
    number of updates is the state dict's ``n_averaged``, so a run restarted from a checkpoint continues the same
    sequence of decays.
    """
    return AveragedModel(model, multi_avg_fn=functools.partial(_update, decay=decay))
