"""Random train/validation split with a seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from gaunt_tp.errors import InputError

__all__ = ["train_valid_split"]

T = TypeVar("T")


def train_valid_split(items: Sequence[T], valid_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Shuffle with ``seed`` and hold out ``round(valid_fraction * len)`` items (at least one).

    Example:
        >>> train, valid = train_valid_split(list(range(10)), 0.2, seed=1)
        >>> len(train), len(valid), sorted(train + valid) == list(range(10))
        (8, 2, True)
    """
    if not 0.0 < valid_fraction < 1.0:
        raise InputError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if len(items) < 2:
        raise InputError(f"need at least 2 configurations to split, got {len(items)}")
    order = np.random.default_rng(seed).permutation(len(items))
    n_valid = min(len(items) - 1, max(1, round(valid_fraction * len(items))))
    return [items[i] for i in order[n_valid:]], [items[i] for i in order[:n_valid]]
