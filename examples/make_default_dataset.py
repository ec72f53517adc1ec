"""Make the embedded default dataset: ethanol configurations from a short GFN2-xTB molecular dynamics.

Reference method: GFN2-xTB through the ``tblite`` package (runs offline). Geometries: Langevin MD at
800 K from ASE's ethanol, 0.5 fs steps, one configuration every 10 steps after 200 steps of
equilibration; energies and forces of each sampled geometry come from the same xTB calculation.
Also writes the isolated-atom energies for E0s.

    pip install tblite && python examples/make_default_dataset.py   # about a minute

Writes ``gaunt_tp/datasets/ethanol_xtb_train.xyz`` (the first 250 configurations) and
``ethanol_xtb_test.xyz`` (the last 50), with REF_energy, REF_forces and config_type, and
``gaunt_tp/datasets/ethanol_xtb_isolated.xyz``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms, units
from ase.build import molecule
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta


def xtb():
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0)


def labelled(atoms: Atoms, config_type: str) -> Atoms:
    """A copy of ``atoms`` with its xTB energy and forces stored under MACE's REF_ keys."""
    copy = Atoms(atoms.numbers, positions=atoms.positions)  # geometry only (no momenta)
    copy.calc = xtb()
    energy, forces = copy.get_potential_energy(), copy.get_forces()
    copy.calc = None
    copy.info = {"REF_energy": float(energy), "config_type": config_type}
    copy.arrays["REF_forces"] = np.asarray(forces)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=800.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "gaunt_tp" / "datasets")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    atoms = molecule("CH3CH2OH")
    atoms.calc = xtb()
    thermalize_momenta(atoms, temperature_K=args.temperature, rng=rng)
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=args.temperature, friction=0.02, rng=rng, fixcm=False)
    dyn.run(200)
    frames = []
    for _ in range(args.configs):
        dyn.run(10)
        frames.append(labelled(atoms, "md_800K"))
    args.out.mkdir(parents=True, exist_ok=True)
    n_test = args.configs // 6  # the last part of the trajectory is the test set
    ase.io.write(args.out / "ethanol_xtb_train.xyz", frames[:-n_test], format="extxyz")
    ase.io.write(args.out / "ethanol_xtb_test.xyz", frames[-n_test:], format="extxyz")
    isolated = []
    for symbol, multiplicity in (("H", 2), ("C", 3), ("O", 3)):
        atom = Atoms(symbol, positions=[[0.0, 0.0, 0.0]])
        calc = xtb()
        calc.set(multiplicity=multiplicity)
        atom.calc = calc
        energy = atom.get_potential_energy()
        atom.calc = None
        atom.info = {"REF_energy": float(energy), "config_type": "isolated_atom"}
        isolated.append(atom)
    ase.io.write(args.out / "ethanol_xtb_isolated.xyz", isolated, format="extxyz")
    print(f"wrote {len(frames)} configurations and {len(isolated)} isolated atoms to {args.out}")


if __name__ == "__main__":
    main()
