"""Fine-tuning (MACE's ``--foundation_model``): a run that starts from a trained gaunt-tp model's weights.

The trained model fixes the architecture, the elements it knows, the energy shift and scale and the average number
of neighbours; the new data may hold any of its elements (not others) and gives new E0s unless ``--E0s foundation``
keeps the model's. ``--E0s average`` fits them to what the trained model leaves unexplained
(:func:`unexplained_energy_e0s`), so that a shift of the reference energies (another level of theory) lands in the
E0s instead of in the weights. Use it to refine a model on more data (an active-learning round) or on another level
of theory.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from gaunt_tp.data import Configuration, KeySpec, e0s_average, resolve_e0s
from gaunt_tp.errors import InputError
from gaunt_tp.nn.model import GauntMACE, ModelConfig
from gaunt_tp.training.config import FOUNDATION_E0S, MODEL_OPTIONS, TrainConfig
from gaunt_tp.training.predict import predict

__all__ = ["adopt_architecture", "fine_tuning_e0s", "fine_tuning_model", "unexplained_energy_e0s"]

log = logging.getLogger("gaunt_tp.train")


def adopt_architecture(config: TrainConfig, foundation: ModelConfig) -> tuple[TrainConfig, list[str]]:
    """``config`` with the foundation model's values of the options that shape the model (``r_max``,
    ``num_channels``, ...), and a ``"name old -> new"`` line for each that changed."""
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name in MODEL_OPTIONS]  # in the flags' order
    changed = {n: getattr(foundation, n) for n in names if getattr(config, n) != getattr(foundation, n)}
    lines = [f"{n} {getattr(config, n)!r} -> {v!r}" for n, v in changed.items()]
    return dataclasses.replace(config, **changed), lines


def fine_tuning_model(foundation: GauntMACE, data_elements: list[int], e0s: Mapping[int, float] | None) -> GauntMACE:
    """A copy of ``foundation`` (its weights, in its dtype, on the CPU) whose E0s are ``e0s`` for the elements it names
    and the foundation's for the others (``None``: all the foundation's).

    Raises:
        InputError: ``data_elements`` holds an element the foundation model does not know.
    """
    _check_elements(foundation, data_elements)
    known = foundation.config.atomic_numbers
    merged = dict(zip(known, foundation.config.e0s)) | dict(e0s or {})
    config = dataclasses.replace(foundation.config, e0s=tuple(merged[z] for z in known))
    model = GauntMACE(config).to(next(foundation.parameters()).dtype)  # not the default dtype of the moment
    state = foundation.state_dict()
    state["e0s"] = model.e0s  # the new E0s; every other tensor the foundation's
    model.load_state_dict(state)
    return model


def fine_tuning_e0s(
    spec: str,
    foundation: GauntMACE,
    train: list[Configuration],
    atomic_numbers: list[int],
    keys: KeySpec,
    isolated: Sequence[Configuration] = (),
) -> dict[int, float] | None:
    """The E0s ``--E0s spec`` gives a fine-tuning run: None for ``"foundation"`` (the model's own),
    :func:`unexplained_energy_e0s` for ``"average"`` without isolated atoms in the training file, else what
    :func:`gaunt_tp.data.resolve_e0s` gives any run."""
    if spec == FOUNDATION_E0S:
        return None
    if spec == "average" and not isolated:
        e0s = unexplained_energy_e0s(foundation, train, atomic_numbers)
        log.info("E0s fitted to the energies the foundation model leaves unexplained: %s",
                 ", ".join(f"Z={z}: {e:.6g} eV" for z, e in e0s.items()))  # fmt: skip
        return e0s
    return resolve_e0s(spec, train, atomic_numbers, keys, isolated)


def unexplained_energy_e0s(
    foundation: GauntMACE, configs: list[Configuration], atomic_numbers: list[int]
) -> dict[int, float]:
    """Least-squares E0s (eV) of ``atomic_numbers`` for the energy that ``foundation`` does not explain: each
    reference energy less the model's interaction energy (its prediction less its own E0s), fitted as
    :func:`gaunt_tp.data.e0s_average` fits raw energies. A constant offset per element between the model's labels and
    the new ones goes into the E0s.
    """
    _check_elements(foundation, atomic_numbers)
    own = dict(zip(foundation.config.atomic_numbers, foundation.config.e0s))
    predictions, _ = predict(foundation, configs)
    residual = [
        dataclasses.replace(c, energy=c.energy - (p.energy - sum(own[int(z)] for z in c.atomic_numbers)))
        for c, p in zip(configs, predictions)
    ]
    return e0s_average(residual, atomic_numbers)


def _check_elements(foundation: GauntMACE, data_elements: list[int]) -> None:
    known = foundation.config.atomic_numbers
    if unknown := sorted(set(data_elements) - set(known)):
        raise InputError(
            f"elements Z={unknown} of the data are not among the foundation model's elements {list(known)}: "
            "a fine-tuned model keeps the elements it was trained with"
        )
