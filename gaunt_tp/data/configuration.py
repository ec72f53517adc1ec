"""One atomic configuration with its reference labels, and the names and units of its fields.

Units everywhere: energies in eV, lengths in Angstrom, forces in eV/Angstrom, stress in
eV/Angstrom^3 (Voigt order xx, yy, zz, yz, xz, xy when given as 6 numbers), as in ASE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Configuration", "ISOLATED_ATOM", "KeySpec", "KCAL_PER_MOL_IN_EV", "MIN_CELL_VOLUME"]

# 1 kcal/mol in eV (ase.units.kcal / ase.units.mol); rMD17 is stored in kcal/mol.
KCAL_PER_MOL_IN_EV = 0.04336410390059322

# MACE's config_type for the one-atom configurations of a training file that give the E0s, not training data.
ISOLATED_ATOM = "IsolatedAtom"

# A cell spans a volume (and a structure has a stress, whatever its periodicity) above this many Angstrom^3.
MIN_CELL_VOLUME = 1e-12


@dataclass(frozen=True)
class KeySpec:
    """Where reference labels live in an extxyz/ASE file (MACE's defaults).

    A key absent from ``atoms.info``/``atoms.arrays`` falls back to the results of the
    calculator ASE attaches when it reads ``energy=``, ``forces``, ``stress`` (ASE >= 3.23),
    so files written by ASE load with the defaults. Virials (``virials_key``, eV, 6 Voigt or 9 components, MACE's
    ``REF_virials``) are read where a configuration has no stress label, as the stress ``-virials / volume``.
    """

    energy_key: str = "REF_energy"
    forces_key: str = "REF_forces"
    stress_key: str = "REF_stress"
    virials_key: str = "REF_virials"
    config_type_key: str = "config_type"
    weight_key: str = "config_weight"


@dataclass(frozen=True, eq=False)
class Configuration:
    """A structure and its labels, as plain float64 numpy arrays.

    Attributes:
        atomic_numbers: ``[n]`` int.
        positions: ``[n, 3]`` Angstrom.
        cell: ``[3, 3]`` Angstrom, rows are lattice vectors (zeros where there is none; a vector along a non-periodic
            direction sets the volume for the stress alone).
        pbc: periodicity along each lattice vector.
        energy: total energy in eV, or None.
        forces: ``[n, 3]`` eV/Angstrom, or None.
        stress: ``[3, 3]`` eV/Angstrom^3, or None.
        config_type: a label for error tables (``config_type`` in extxyz).
        weight: weight of this configuration in the loss.
        source: ``"file#index"``, for error messages.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    pbc: tuple[bool, bool, bool] = (False, False, False)
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    config_type: str = "Default"
    weight: float = 1.0
    source: str = "?"

    @classmethod
    def from_atoms(cls, atoms: object, source: str = "ase.Atoms") -> Configuration:
        """The structure of an ``ase.Atoms`` (numbers, positions, cell, pbc), without labels: what a model
        predicts on. Reading labels is :func:`gaunt_tp.data.read_configurations`'s job."""
        return cls(
            atomic_numbers=np.asarray(atoms.numbers, dtype=np.int64),
            positions=np.asarray(atoms.positions, dtype=np.float64),
            cell=np.asarray(atoms.cell.array, dtype=np.float64),
            pbc=tuple(bool(p) for p in atoms.pbc),
            source=source,
        )

    def to_atoms(self, energy_key: str = "REF_energy", forces_key: str = "REF_forces") -> object:
        """An ``ase.Atoms`` of this structure with its energy and forces labels (eV, eV/Angstrom) under the given
        extxyz keys (those it has) and its ``config_type``: what :func:`gaunt_tp.data.read_configurations` reads
        back."""
        from ase import Atoms

        atoms = Atoms(numbers=self.atomic_numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        if self.energy is not None:
            atoms.info[energy_key] = self.energy
        if self.forces is not None:
            atoms.arrays[forces_key] = self.forces
        atoms.info["config_type"] = self.config_type
        return atoms

    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    @property
    def is_isolated_atom(self) -> bool:
        """MACE's isolated atom: one atom with the config_type ``IsolatedAtom``, a reference for its E0."""
        return self.num_atoms == 1 and self.config_type == ISOLATED_ATOM

    @property
    def has_stress(self) -> bool:
        """Whether the structure has a stress, ``(1/V) dE/d(strain)``: where its cell spans a volume, periodic
        or not (ASE's convention, as its EMT calculator and MACE's): bulk, a slab or a molecule in a box, but not
        a structure whose cell has zero vectors (ASE's default for molecules, sheets and wires)."""
        return abs(float(np.linalg.det(self.cell))) > MIN_CELL_VOLUME

    @property
    def trainable_stress(self) -> np.ndarray | None:
        """The stress label where the model has a stress to compare it with (:attr:`has_stress`); None for a
        missing label and for cells without volume."""
        return self.stress if self.has_stress else None
