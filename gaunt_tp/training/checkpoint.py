"""Checkpoints written atomically: a crash while writing never loses the previous one."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from gaunt_tp.errors import InputError
from gaunt_tp.files import replace_durably

__all__ = ["latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_PATTERN = re.compile(r"epoch-(\d+)\.pt$")


def save_checkpoint(directory: Path, epoch: int, state: dict, keep: int | None = 2) -> Path:
    """Write ``directory/epoch-<epoch>.pt`` via a temporary file and a durable rename; keep the last ``keep``
    (all with None).

    Older checkpoints are deleted only after the new one is in place.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"epoch-{epoch:05d}.pt"
    tmp = directory / f".epoch-{epoch:05d}.pt.tmp"
    torch.save(state, tmp)
    replace_durably(tmp, path)
    for old in sorted(_checkpoints(directory))[:-keep] if keep is not None else []:
        old[1].unlink(missing_ok=True)
    return path


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    return [(int(m.group(1)), p) for p in directory.iterdir() if (m := _PATTERN.search(p.name))]


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint of the highest epoch in ``directory``, or None."""
    found = sorted(_checkpoints(directory))
    return found[-1][1] if found else None


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint; a truncated or corrupted file is an InputError naming it (and what to do)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(
            f"{path}: checkpoint is truncated or corrupted (torch.load raised {type(err).__name__}); "
            "delete it to resume from the previous one"
        ) from err
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise InputError(f"{path}: not a gaunt-tp training checkpoint")
    return state
