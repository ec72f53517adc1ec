"""Geometry optimisation, harmonic frequencies and a short NVE molecular dynamics of a 3BPA configuration with the ASE
calculator.

    python examples/md_3bpa.py --model runs/3bpa/3bpa.model --data ../shared/data/3bpa/train_300K.xyz
    python examples/md_3bpa.py --model runs/3bpa/3bpa.model --device cuda --cuda_graph   # on a GPU

Prints the relaxation (BFGS to fmax), the harmonic frequencies there (from the model's exact Hessian, through
ase.vibrations; imaginary ones mean the relaxation stopped short of a minimum) and, every 20 steps, the potential,
kinetic and total energy of a velocity-Verlet run (0.5 fs steps, velocities drawn at --temperature); the drift of the
total energy per atom is printed at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io
import numpy as np
from ase import units
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS
from ase.vibrations import VibrationsData

from gaunt_tp.calculator import GauntCalculator


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    default_data = Path(__file__).resolve().parents[2] / "shared/data/3bpa/train_300K.xyz"  # ../shared beside the repo
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--fmax", type=float, default=0.05)
    parser.add_argument("--relax_steps", type=int, default=100)
    parser.add_argument("--md_steps", type=int, default=400)
    parser.add_argument("--timestep_fs", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--cuda_graph", action="store_true", help="on a GPU, replay each call from a CUDA graph")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")
    atoms = ase.io.read(args.data, index=args.index)
    atoms.calc = GauntCalculator(args.model, device=args.device, cuda_graph=args.cuda_graph)  # float64 by default
    relax = BFGS(atoms, logfile=None)
    converged = relax.run(fmax=args.fmax, steps=args.relax_steps)
    fmax = np.linalg.norm(atoms.get_forces(), axis=1).max()  # the largest force on an atom, as BFGS's fmax
    print(f"relaxed: E = {atoms.get_potential_energy():.6f} eV, max |F| = {fmax:.4f} eV/A "
          f"after {relax.nsteps} steps (converged: {converged})")  # fmt: skip
    vibrations = VibrationsData.from_2d(atoms, atoms.calc.get_hessian(atoms))
    frequencies = vibrations.get_frequencies()  # cm^-1, complex: imaginary ones where the curvature is negative
    # the six smallest taken for translations (exact zeros) and rotations (zero at a minimum; away from one, up to
    # tens of cm^-1 and mixed with the softest torsions: relax with a small --fmax to separate them)
    modes = frequencies[np.argsort(np.abs(frequencies))[6:]]
    imaginary = np.abs(modes.imag) > np.abs(modes.real)
    real = modes.real[~imaginary]
    span = f"{real.min():.0f} to {real.max():.0f} cm^-1" if real.size else "none real"
    zero_point = 0.5 * real.sum() * units.invcm  # eV, over the real vibrations
    print(f"harmonic frequencies: {len(modes)} vibrations, {span}, {imaginary.sum()} imaginary; "
          f"zero-point energy {zero_point:.4f} eV")  # fmt: skip
    thermalize_momenta(atoms, temperature_K=args.temperature, rng=np.random.default_rng(args.seed))
    Stationary(atoms)
    ZeroRotation(atoms)
    totals = []

    def report() -> None:
        e_pot, e_kin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        totals.append(e_pot + e_kin)
        if len(totals) % 20 == 1:
            print(f"step {len(totals) - 1:5d}: E_pot {e_pot:.6f}  E_kin {e_kin:.6f}  E_tot {e_pot + e_kin:.6f} eV")

    dyn = VelocityVerlet(atoms, args.timestep_fs * units.fs)
    dyn.attach(report, interval=1)
    dyn.run(args.md_steps)
    drift = (totals[-1] - totals[0]) / len(atoms)
    print(f"NVE drift over {args.md_steps * args.timestep_fs:.0f} fs: {drift * 1e3:.4f} meV/atom")
    return {"converged": converged, "drift_eV_per_atom": drift, "totals": totals, "frequencies_cm1": frequencies}


if __name__ == "__main__":
    main()
