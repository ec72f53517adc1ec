"""``gaunt-tp``: the command line (the only reader of argv).

gaunt-tp train --train_file data.xyz --E0s average --max_num_epochs 50 --name run1
gaunt-tp train --config run.yaml --lr 0.005          # flags override the YAML file
gaunt-tp eval --configs test.xyz --model run1/run1.model --output predicted.xyz
gaunt-tp --version                                     # with the versions of torch and e3nn, for bug reports
"""

from __future__ import annotations

import argparse
import logging
import sys

from gaunt_tp.errors import InputError

__all__ = ["main"]


def _train(argv: list[str]) -> int:
    from gaunt_tp.training.config import config_from_args
    from gaunt_tp.training.loop import run_training

    run_training(config_from_args(argv))
    return 0


def _eval(argv: list[str]) -> int:
    from types import SimpleNamespace

    import ase.io
    import numpy as np
    import torch
    from ase.stress import voigt_6_to_full_3x3_stress

    from gaunt_tp.calculator import GauntCalculator
    from gaunt_tp.data import KeySpec, read_configurations
    from gaunt_tp.training.config import DTYPES
    from gaunt_tp.training.loop import format_tables
    from gaunt_tp.training.metrics import ErrorAccumulator

    parser = argparse.ArgumentParser(
        prog="gaunt-tp eval", description="Predict energies, forces and (periodic cells) stress into extxyz."
    )
    parser.add_argument("--configs", required=True, help="structures to evaluate (extxyz or any ASE format)")
    parser.add_argument("--model", required=True, help="a .model file written by gaunt-tp train")
    parser.add_argument(
        "--output", required=True, help="extxyz to write, with the predictions as <prefix>energy/forces/stress"
    )
    parser.add_argument("--prefix", default="gaunt_", help="prefix of the predicted keys (default gaunt_)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--default_dtype", default="float64", metavar="{" + ",".join(DTYPES) + "}", help="precision (default float64)"
    )
    for label, key in (("energy", "REF_energy"), ("forces", "REF_forces"), ("stress", "REF_stress")):
        parser.add_argument(
            f"--{label}_key", default=key, help=f"key of the reference {label}, for the error table (default {key})"
        )
    args = parser.parse_args(argv)
    calc = GauntCalculator(args.model, device=args.device, default_dtype=args.default_dtype)
    refs = read_configurations(  # first: it checks the file and names what is wrong with it
        args.configs,
        keys=KeySpec(energy_key=args.energy_key, forces_key=args.forces_key, stress_key=args.stress_key),
        require_energy=False,
        require_forces=False,
    )
    frames = ase.io.read(args.configs, index=":")
    acc = ErrorAccumulator()
    for atoms, ref in zip(frames, refs):
        atoms.calc = calc
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        predicted = {"energy": torch.tensor([energy]), "forces": torch.tensor(forces)}
        if atoms.pbc.all():  # the calculator gives a stress for periodic cells: written as a 3x3 matrix
            stress = voigt_6_to_full_3x3_stress(atoms.get_stress())
            atoms.info[f"{args.prefix}stress"] = stress
            predicted["stress"] = torch.tensor(stress)[None]
        atoms.calc = None
        atoms.info[f"{args.prefix}energy"] = energy
        atoms.arrays[f"{args.prefix}forces"] = forces
        if ref.energy is not None or ref.forces is not None or ref.stress is not None:
            n = ref.num_atoms
            batch = SimpleNamespace(
                ptr=torch.tensor([0, n]),
                energy=torch.tensor([ref.energy if ref.energy is not None else np.nan]),
                forces=torch.tensor(ref.forces if ref.forces is not None else np.full((n, 3), np.nan)),
                stress=torch.tensor(ref.stress if ref.stress is not None else np.full((3, 3), np.nan))[None],
                config_type=[ref.config_type],
            )
            acc.add(batch, predicted)
    ase.io.write(args.output, frames, format="extxyz")
    table = acc.table()
    if table.get("all", {}).get("n"):
        print(format_tables({"eval": table}))
    print(f"wrote {len(frames)} configurations to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv[0] == "--version":
        import e3nn
        import torch

        from gaunt_tp import __version__

        print(f"gaunt-tp {__version__} (torch {torch.__version__}, e3nn {e3nn.__version__})")
        return 0
    command, rest = argv[0], argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if command not in ("train", "eval"):
        print(f"gaunt-tp: unknown command {command!r} (expected train or eval)", file=sys.stderr)
        return 2
    try:
        return _train(rest) if command == "train" else _eval(rest)
    except InputError as err:  # bad files or options: the message says which and why; no traceback
        print(f"gaunt-tp {command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
