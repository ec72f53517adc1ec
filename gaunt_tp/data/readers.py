"""Reading configurations: extxyz (or anything ASE reads) and the rMD17 ``.npz`` files.

Every problem with the data is an InputError that names the file and the index of the
configuration: missing labels, non-finite coordinates or labels, arrays of the wrong
length, empty files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from gaunt_tp.data.configuration import KCAL_PER_MOL_IN_EV, MIN_CELL_VOLUME, Configuration, KeySpec
from gaunt_tp.errors import InputError, InputWarning

__all__ = ["read_any", "read_configurations", "read_rmd17"]


def _matrix_label(value, where: str, what: str, not_finite: str) -> np.ndarray:  # noqa: ANN001 (as ASE parsed it)
    """A 3x3 label (stress, virials) from 6 Voigt (xx, yy, zz, yz, xz, xy) or 9 components; an InputError naming
    ``where`` for another count, or (``not_finite``) for a NaN or inf."""
    flat = np.asarray(value, dtype=np.float64).reshape(-1)
    if flat.size == 9:
        matrix = flat.reshape(3, 3)
    elif flat.size == 6:
        xx, yy, zz, yz, xz, xy = flat
        matrix = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    else:
        raise InputError(f"{where}: {what} must have 6 (Voigt) or 9 components, got {flat.size}")
    if not np.isfinite(matrix).all():
        raise InputError(f"{where}: {not_finite}")
    return matrix


def _stress_from_virials(virials, cell: np.ndarray, where: str, key: str) -> np.ndarray:  # noqa: ANN001
    """``-virials / volume`` (eV/Angstrom^3) as a 3x3 matrix; an InputError where the cell spans no volume."""
    volume = abs(float(np.linalg.det(np.asarray(cell, dtype=np.float64))))
    if volume <= MIN_CELL_VOLUME:
        raise InputError(f"{where}: virials ({key!r}) need a cell that spans a volume to give a stress")
    return -_matrix_label(virials, where, "virials", f"virials ({key!r}) are not all finite") / volume


def _label(atoms, key: str, fallback: str, per_atom: bool):  # noqa: ANN001, ANN202 (ase.Atoms)
    """(value, whether it is the fallback's): ``key`` from the file's own columns, else from the calculator ASE
    attaches (where ASE puts the keys it knows, ``free_energy`` among them), else the calculator's ``fallback``
    result; (None, False) without any."""
    store = atoms.arrays if per_atom else atoms.info
    if key in store:
        return store[key], False
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    if key in results:
        return results[key], False
    return results.get(fallback), fallback in results and key != fallback


def _number(value, where: str, what: str) -> float:  # noqa: ANN001 (a value as ASE parsed it)
    """``value`` as a float; an InputError naming ``where`` for anything else, a boolean (ASE's ``T``/``F``) too."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{where}: {what} must be one number, got the boolean {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} must be one number, got {value!r}") from None


def _weight(value, where: str, key: str) -> float:  # noqa: ANN001 (a value as ASE parsed it)
    """A configuration's loss weight: a finite number, zero or more (zero leaves it out of the loss)."""
    weight = _number(value, where, repr(key))
    if not (np.isfinite(weight) and weight >= 0.0):
        raise InputError(f"{where}: {key!r} must be finite and zero or more, got {weight}")
    return weight


def _atomic_numbers(numbers, where: str) -> np.ndarray:  # noqa: ANN001 (array-like)
    """Atomic numbers as int64; an InputError for no atoms or a number that is no element (ASE reads ``X`` as 0)."""
    z = np.asarray(numbers, dtype=np.int64)
    if z.size == 0:
        raise InputError(f"{where}: holds no atoms")
    bad = z[(z < 1) | (z > 118)]
    if bad.size:
        raise InputError(f"{where}: atomic number {int(bad[0])} is no element (1 to 118)")
    return z


def read_configurations(
    path: str | Path,
    *,
    keys: KeySpec = KeySpec(),
    index: str = ":",
    require_energy: bool = True,
    require_forces: bool = True,
) -> list[Configuration]:
    """Read every configuration of an extxyz (or any ASE-readable) file.

    Args:
        path: the file.
        keys: where the labels live (MACE's ``REF_*`` names by default, falling back to
            ASE's calculator results ``energy``/``forces``/``stress``).
        index: ASE index string (``":"`` for all).
        require_energy, require_forces: a configuration without that label is an error (no forces are needed for
            MACE's isolated atoms: one atom with the config_type ``IsolatedAtom``).

    Returns:
        one :class:`Configuration` per structure, labels in eV and Angstrom.

    Example (with the shared datasets beside the project):
        ``read_configurations("../shared/data/3bpa/train_300K.xyz", index=":2")`` gives two
        27-atom configurations with energies and forces from the file's ``energy=``/``forces``.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: holds no configurations (empty file)")
    frames = []
    try:  # one at a time, so that an error names the configuration ASE stopped at
        frames.extend(ase.io.iread(str(path), index=index))
    except Exception as err:  # ASE raises many types for malformed files
        at = f"#{len(frames)}" if index == ":" else f" (configuration {len(frames)} of index {index!r})"
        raise InputError(f"{path}{at}: cannot be read by ASE ({type(err).__name__}: {err})") from err
    if not frames:
        raise InputError(f"{path}: holds no configurations")
    out = []
    fallbacks: dict[str, list[int]] = {"energy": [], "forces": [], "stress": []}  # ASE's label for a named key
    for i, atoms in enumerate(frames):
        where = f"{path}#{i}"
        atomic_numbers = _atomic_numbers(atoms.numbers, where)
        positions = np.asarray(atoms.positions, dtype=np.float64)
        if not np.isfinite(positions).all():
            raise InputError(f"{where}: positions are not all finite (NaN or inf)")
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        if not np.isfinite(cell).all():
            raise InputError(f"{where}: the cell (Lattice) is not all finite (NaN or inf)")
        energy, fell_back_e = _label(atoms, keys.energy_key, "energy", per_atom=False)
        forces, fell_back_f = _label(atoms, keys.forces_key, "forces", per_atom=True)
        stress, fell_back_s = _label(atoms, keys.stress_key, "stress", per_atom=False)
        if (stress is None or fell_back_s) and keys.virials_key in atoms.info:  # named virials before ASE's stress
            stress = _stress_from_virials(atoms.info[keys.virials_key], cell, where, keys.virials_key)
            fell_back_s = False
        for label, fell_back in (("energy", fell_back_e), ("forces", fell_back_f), ("stress", fell_back_s)):
            if fell_back:
                fallbacks[label].append(i)
        config_type = str(atoms.info.get(keys.config_type_key, "Default"))
        if energy is None and require_energy:
            raise InputError(
                f"{where}: no energy (looked for {keys.energy_key!r} in the comment line and ASE's calculator results, "
                "then the calculator's 'energy')"
            )
        if forces is not None:
            forces = np.asarray(forces, dtype=np.float64)
            if forces.shape != positions.shape:
                raise InputError(f"{where}: forces have shape {forces.shape}, positions {positions.shape}")
            if not np.isfinite(forces).all():
                raise InputError(f"{where}: forces are not all finite")
        if energy is not None:
            energy = _number(energy, where, f"the energy ({keys.energy_key!r} or 'energy')")
            if not np.isfinite(energy):
                raise InputError(f"{where}: energy is {energy}")
        if stress is not None:  # a missing label is left out; a non-finite one is an error, as for forces
            stress = _matrix_label(stress, where, "stress", "stress is not all finite")
        out.append(
            Configuration(
                atomic_numbers=atomic_numbers,
                positions=positions,
                cell=cell,
                pbc=tuple(bool(p) for p in atoms.pbc),
                energy=energy,
                forces=forces,
                stress=stress,
                config_type=config_type,
                weight=_weight(atoms.info.get(keys.weight_key, 1.0), where, keys.weight_key),
                source=where,
            )
        )
        if forces is None and require_forces and not out[-1].is_isolated_atom:  # MACE's isolated atoms need none
            raise InputError(
                f"{where}: no forces (looked for arrays[{keys.forces_key!r}] and the calculator's 'forces')"
            )
    default = KeySpec()
    for label, key, wanted in (("energy", keys.energy_key, default.energy_key),
                               ("forces", keys.forces_key, default.forces_key),
                               ("stress", keys.stress_key, default.stress_key)):  # fmt: skip
        missed = fallbacks[label]
        if key == wanted or not missed:  # the default keys fall back to ASE's labels without a word
            continue
        if len(missed) == len(frames):
            warnings.warn(
                f"{path}: {label} key {key!r} is in none of its {len(frames)} configurations; ASE's {label!r} "
                "was read instead (a misspelt key?)",
                InputWarning,
                stacklevel=2,
            )
        else:  # labels of two origins (perhaps two levels of theory) in one data set
            warnings.warn(
                f"{path}: {label} key {key!r} is missing from {len(missed)} of its {len(frames)} configurations "
                f"(the first: #{missed[0]}); ASE's {label!r} was read for those",
                InputWarning,
                stacklevel=2,
            )
    return out


def read_rmd17(path: str | Path, *, limit: int | None = None) -> list[Configuration]:
    """Read an rMD17 ``.npz`` file (keys ``nuclear_charges``, ``coords``, ``energies``, ``forces``).

    Energies and forces are converted from kcal/mol and kcal/mol/Angstrom to eV and
    eV/Angstrom. Molecules are not periodic.

    Args:
        path: the ``.npz`` file.
        limit: read only the first ``limit`` configurations.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be 1 or more, got {limit}")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with np.load(path) as data:
        missing = {"nuclear_charges", "coords", "energies", "forces"} - set(data.files)
        if missing:
            raise InputError(f"{path}: missing arrays {sorted(missing)} (has {data.files})")
        z = _atomic_numbers(np.asarray(data["nuclear_charges"]).reshape(-1), f"{path} (nuclear_charges)")
        coords, energies, forces = (np.asarray(data[k], dtype=np.float64) for k in ("coords", "energies", "forces"))
    energies = energies.reshape(-1) if energies.ndim == 2 and energies.shape[1] == 1 else energies  # (N, 1) too
    if (coords.ndim != 3 or coords.shape[1:] != (z.size, 3) or forces.shape != coords.shape
            or energies.shape != coords.shape[:1]):  # fmt: skip
        raise InputError(
            f"{path}: array lengths do not match: nuclear_charges {z.shape}, coords {coords.shape}, "
            f"energies {energies.shape}, forces {forces.shape}"
        )
    n = coords.shape[0] if limit is None else min(limit, coords.shape[0])
    if n == 0:
        raise InputError(f"{path}: holds no configurations")
    out = []
    for i in range(n):
        where = f"{path}#{i}"
        if not np.isfinite(coords[i]).all():
            raise InputError(f"{where}: coordinates are not all finite")
        if not (np.isfinite(energies[i]) and np.isfinite(forces[i]).all()):
            raise InputError(f"{where}: energy or forces are not finite")
        out.append(
            Configuration(
                atomic_numbers=z.copy(),
                positions=coords[i].copy(),
                energy=float(energies[i]) * KCAL_PER_MOL_IN_EV,
                forces=forces[i] * KCAL_PER_MOL_IN_EV,
                config_type=path.stem,
                source=where,
            )
        )
    return out


def read_any(path: str | Path, *, keys: KeySpec = KeySpec(), require_forces: bool = True) -> list[Configuration]:
    """rMD17 ``.npz`` files with :func:`read_rmd17`, everything else with :func:`read_configurations` (which
    ``require_forces`` is passed to)."""
    if Path(path).suffix == ".npz":
        return read_rmd17(path)
    return read_configurations(path, keys=keys, require_forces=require_forces)
