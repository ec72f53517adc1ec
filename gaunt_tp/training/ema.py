"""The exponential moving average of the weights that training validates and exports, as MACE keeps it."""

from __future__ import annotations

import copy

import torch

__all__ = ["MovingAverage", "warmed_up_decay"]


def warmed_up_decay(decay: float, update: int) -> float:
    """The decay used at the ``update``-th update (1, 2, ...): ``min(decay, (1 + update) / (10 + update))``.

    This is the warm-up of torch_ema's ``ExponentialMovingAverage`` (with ``use_num_updates``, its default), which
    MACE's ``--ema`` uses: early on the average follows the weights closely, and the full ``decay`` (0.99 after 890
    updates, 0.999 after 8990) holds only once the weights have moved away from their initial values.

    >>> warmed_up_decay(0.99, 1), warmed_up_decay(0.99, 2), warmed_up_decay(0.99, 1000)
    (0.18181818181818182, 0.25, 0.99)
    """
    return min(decay, (1 + update) / (10 + update))


class MovingAverage(torch.nn.Module):
    """MACE's moving average of a model's parameters, held in a copy of the model (``.module``).

    Call :meth:`update_parameters` after every optimiser step: the first update copies the parameters, the n-th
    (n >= 2) sets ``average += (1 - d_n) * (parameters - average)`` with ``d_n = warmed_up_decay(decay, n)``. Buffers
    stay those of the copy. The number of updates is a Python integer, kept in the state dict, so an update reads
    nothing back from the device (no host synchronisation per training step on a GPU) and a run restarted from a
    checkpoint continues the same sequence of decays. State dicts of :class:`torch.optim.swa_utils.AveragedModel`
    (earlier checkpoints: ``module.*`` and ``n_averaged``) load too.

    Args:
        model: the model whose parameters are averaged; copied (deep) once, here.
        decay: the decay once warmed up, in [0, 1).
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        super().__init__()
        self.module = copy.deepcopy(model)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        """Fold ``model``'s current parameters (the same architecture as ``.module``) into the average."""
        self.updates += 1
        averaged, current = list(self.module.parameters()), [p.detach() for p in model.parameters()]
        if self.updates == 1:
            torch._foreach_copy_(averaged, current)
        else:
            torch._foreach_lerp_(averaged, current, 1.0 - warmed_up_decay(self.decay, self.updates))

    def get_extra_state(self) -> dict:
        return {"updates": self.updates}

    def set_extra_state(self, state: dict) -> None:
        self.updates = int(state["updates"])

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        averaged_model = state_dict.pop(prefix + "n_averaged", None)  # an AveragedModel's count
        if averaged_model is not None and prefix + "_extra_state" not in state_dict:
            state_dict[prefix + "_extra_state"] = {"updates": int(averaged_model)}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
