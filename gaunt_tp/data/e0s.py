"""Isolated-atom reference energies E0 (eV), subtracted so that the model learns interaction energies."""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gaunt_tp.data.configuration import Configuration, KeySpec
from gaunt_tp.errors import InputError, InputWarning

__all__ = [
    "SCALINGS", "e0s_average", "e0s_from_isolated_atoms", "e0s_from_text", "e0s_mapping", "is_e0s_file",
    "resolve_e0s", "shift_and_scale", "split_isolated_atoms",
]  # fmt: skip


def e0s_from_isolated_atoms(configs: Sequence[Configuration]) -> dict[int, float]:
    """``{Z: energy}`` from single-atom configurations (an element twice only with the same energy, to 1e-6 eV:
    two MACE files joined, each with its isolated atoms)."""
    out: dict[int, float] = {}
    for c in configs:
        if c.num_atoms != 1 or c.energy is None:
            raise InputError(f"{c.source}: an isolated-atom configuration needs exactly one atom and an energy")
        z = int(c.atomic_numbers[0])
        if z in out and abs(out[z] - c.energy) > 1e-6:
            raise InputError(
                f"{c.source}: element Z={z} appears twice among the isolated atoms, with {out[z]} and {c.energy} eV"
            )
        out[z] = c.energy
    return out


def split_isolated_atoms(configs: Sequence[Configuration]) -> tuple[list[Configuration], list[Configuration]]:
    """(MACE's isolated atoms, the rest; :attr:`Configuration.is_isolated_atom`): a training file may carry the E0s
    as one-atom configurations with the config_type ``IsolatedAtom``; they are references, not training data."""
    return [c for c in configs if c.is_isolated_atom], [c for c in configs if not c.is_isolated_atom]


def e0s_average(configs: Sequence[Configuration], atomic_numbers: Sequence[int]) -> dict[int, float]:
    """Least-squares E0s: ``energy ~ sum_Z count_Z(config) * E0_Z`` over the configurations.

    With a single composition (one molecule, as in rMD17) the system is underdetermined:
    the minimum-norm solution spreads the mean energy over the elements.
    """
    zs = list(atomic_numbers)
    counts = np.array([[np.count_nonzero(c.atomic_numbers == z) for z in zs] for c in configs], dtype=np.float64)
    absent = [z for z, column in zip(zs, counts.T) if not column.any()]
    if absent:  # lstsq would give them 0 eV without a word
        raise InputError(
            f"E0s 'average': elements Z={absent} appear in no training configuration, so their E0s cannot be "
            "fitted; give E0s for every element (a file of isolated atoms or a dict like '{1: -13.6, 8: -2041.9}')"
        )
    energies = np.array([c.energy for c in configs], dtype=np.float64)
    solution, _, rank, _ = np.linalg.lstsq(counts, energies, rcond=None)
    if rank < len(zs):
        warnings.warn(
            f"E0s 'average': the element counts of the {len(configs)} configurations fix only {rank} combination(s) "
            f"of the {len(zs)} E0s (one composition, as in rMD17 or 3BPA), so the least-squares E0s "
            f"({', '.join(f'Z={z}: {e:.6g} eV' for z, e in zip(zs, solution))}) hold for such compositions alone, not "
            "for isolated atoms or other molecules; give E0s (a file of isolated atoms or a dict, or 'foundation' "
            "when fine-tuning) for a model to be used on other compositions",
            InputWarning,
            stacklevel=2,
        )
    return {z: float(e) for z, e in zip(zs, solution)}


def resolve_e0s(
    spec: str | dict[int, float],
    train: Sequence[Configuration],
    atomic_numbers: Sequence[int],
    keys: KeySpec | None = None,
    isolated: Sequence[Configuration] = (),
) -> dict[int, float]:
    """E0s from ``"average"``, a file of isolated atoms (its energies read with ``keys``, the training data's
    keys), a ``{Z: E0}`` dict or its string form.

    ``isolated``, the training file's own isolated atoms (:func:`split_isolated_atoms`), replace ``"average"``
    where there are any, as in MACE; an explicit file or mapping wins over them.

    Raises an InputError naming the missing elements if the result does not cover ``atomic_numbers``.
    """
    if isinstance(spec, dict):
        e0s = e0s_mapping(spec, "E0s")
    elif spec == "average":
        e0s = e0s_from_isolated_atoms(isolated) if isolated else e0s_average(train, atomic_numbers)
    elif not is_e0s_file(spec):
        e0s = e0s_from_text(spec)
    elif Path(spec).suffix.lower() == ".json":  # MACE's E0s file: {"1": -13.6, ...}
        try:
            parsed = json.loads(Path(spec).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{spec}: not a JSON mapping of elements to E0s ({err})") from None
        e0s = _checked_mapping(parsed, spec, f'{spec}: must hold a JSON mapping like {{"1": -13.6, "8": -2041.9}}')
    else:
        from gaunt_tp.data.readers import read_configurations

        e0s = e0s_from_isolated_atoms(read_configurations(spec, keys=keys or KeySpec(), require_forces=False))
    missing = sorted(set(int(z) for z in atomic_numbers) - set(e0s))
    if missing:
        origin = " (from the training file's IsolatedAtom configurations)" if spec == "average" else ""
        raise InputError(f"E0s{origin} have no value for elements Z={missing}")
    return e0s


def e0s_from_text(spec: str) -> dict[int, float]:
    """``{Z: E0}`` from a mapping in Python or YAML text: ``"{1: -13.6, 8: -2041.9}"``, ``"{'H': -13.6}"`` or
    ``"{H: -13.6}"``."""
    try:
        parsed = ast.literal_eval(spec)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        import yaml

        try:  # YAML's flow mapping: element symbols without quotes, as in a YAML config file
            parsed = yaml.safe_load(spec) if spec.lstrip().startswith("{") else None
        except yaml.YAMLError:
            parsed = None
        if not isinstance(parsed, dict):
            looks_like_file = "{" not in spec and ("/" in spec or Path(spec).suffix != "")
            raise InputError(
                f"E0s {spec!r}: no such file" if looks_like_file else
                f"E0s {spec!r} is neither 'average', a file, nor a dict like '{{1: -13.6, 8: -2041.9}}'"
            ) from None  # fmt: skip
    return _checked_mapping(parsed, "E0s", f"E0s {spec!r} must be a dict like '{{1: -13.6, 8: -2041.9}}'")


def _checked_mapping(parsed: object, where: str, not_a_dict: str) -> dict[int, float]:
    if not isinstance(parsed, dict):
        raise InputError(not_a_dict)
    return e0s_mapping(parsed, where)


def is_e0s_file(spec: str) -> bool:
    """Whether ``spec`` names an existing file (False for text too long to be a file name)."""
    try:
        return Path(spec).is_file()
    except OSError:  # a long dict in its string form is no file name (ENAMETOOLONG)
        return False


def e0s_mapping(raw: dict, where: str) -> dict[int, float]:
    """``{Z: E0}`` from keys that are atomic numbers (ints or their text) or element symbols, values numbers."""
    from ase.data import atomic_numbers

    out: dict[int, float] = {}
    for key, value in raw.items():
        text = str(key).strip()
        z = int(text) if text.isdigit() else atomic_numbers.get(text)
        if z is None or not 0 < z < len(atomic_numbers):
            raise InputError(f"{where}: {key!r} is neither an atomic number nor an element symbol")
        try:
            if isinstance(value, bool):
                raise TypeError
            out[z] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{where}: the E0 of {key!r} must be a number, got {value!r}") from None
        if not np.isfinite(out[z]):
            raise InputError(f"{where}: the E0 of {key!r} is {value!r}")
    return out


# MACE's scalings of the network's output (shift_and_scale)
SCALINGS = ("rms_forces_scaling", "std_scaling", "no_scaling")


def shift_and_scale(
    configs: Sequence[Configuration], e0s: dict[int, float], scaling: str = "rms_forces_scaling"
) -> tuple[float, float]:
    """MACE's ScaleShiftMACE statistics: (mean interaction energy per atom in eV, scale).

    The scale is MACE's ``scaling``: ``"rms_forces_scaling"`` the RMS force component (eV/A), ``"std_scaling"``
    the standard deviation of the interaction energies per atom (eV, over the configurations, with Bessel's
    correction as MACE's), ``"no_scaling"`` 1. Configurations without an energy (or forces) are left out of that
    statistic; with none at all (or a deviation of 0) the shift is 0 and the scale 1.

    Example:
        >>> c = Configuration(atomic_numbers=np.array([1, 1]), positions=np.zeros((2, 3)), energy=-27.0,
        ...                   forces=np.full((2, 3), -2.0))
        >>> shift_and_scale([c], {1: -13.0})
        (-0.5, 2.0)
    """
    per_atom = [
        (c.energy - sum(e0s[int(z)] for z in c.atomic_numbers)) / c.num_atoms for c in configs if c.energy is not None
    ]
    shift = float(np.mean(per_atom)) if per_atom else 0.0
    if scaling == "no_scaling":
        return shift, 1.0
    if scaling == "std_scaling":
        spread = float(np.std(per_atom, ddof=1)) if len(per_atom) > 1 else 0.0
        return shift, spread or 1.0
    if scaling != "rms_forces_scaling":
        raise InputError(f"scaling must be {' or '.join(map(repr, SCALINGS))}, got {scaling!r}")
    forces = np.concatenate([c.forces.reshape(-1) for c in configs if c.forces is not None] or [np.ones(1)])
    return shift, float(np.sqrt(np.mean(forces**2))) or 1.0
