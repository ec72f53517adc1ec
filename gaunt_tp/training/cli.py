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
    import ase.io
    import torch

    from gaunt_tp.data import KeySpec, read_configurations
    from gaunt_tp.nn.serialization import load_model
    from gaunt_tp.training.config import DTYPES
    from gaunt_tp.training.loop import format_tables
    from gaunt_tp.training.predict import predict

    parser = argparse.ArgumentParser(
        prog="gaunt-tp eval",
        description="Predict energies, forces and (periodic cells) stress into extxyz, with an error table where the "
        "configurations carry reference labels.",
    )
    parser.add_argument("--configs", required=True, help="structures to evaluate (extxyz or any ASE format)")
    parser.add_argument("--model", required=True, help="a .model file written by gaunt-tp train")
    parser.add_argument(
        "--output", required=True, help="extxyz to write: the input with <prefix>energy, <prefix>forces, "
        "<prefix>energies (per atom) and, for periodic cells, <prefix>stress (3x3) added",
    )  # fmt: skip
    parser.add_argument("--prefix", default="gaunt_", help="prefix of the predicted keys (default gaunt_)")
    parser.add_argument("--batch_size", type=int, default=16, help="configurations per model call (default 16)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--default_dtype", default="float64", metavar="{" + ",".join(DTYPES) + "}", help="precision (default float64)"
    )
    for label, key in (("energy", "REF_energy"), ("forces", "REF_forces"), ("stress", "REF_stress")):
        parser.add_argument(
            f"--{label}_key", default=key, help=f"key of the reference {label}, for the error table (default {key})"
        )
    args = parser.parse_args(argv)
    if args.default_dtype not in DTYPES:
        raise InputError(f"default_dtype must be {' or '.join(map(repr, DTYPES))}, got {args.default_dtype!r}")
    model = load_model(args.model).to(device=args.device, dtype=getattr(torch, args.default_dtype)).eval()
    model.requires_grad_(False)
    configs = read_configurations(  # first: it checks the file and names what is wrong with it
        args.configs,
        keys=KeySpec(energy_key=args.energy_key, forces_key=args.forces_key, stress_key=args.stress_key),
        require_energy=False,
        require_forces=False,
    )
    predictions, table = predict(model, configs, batch_size=args.batch_size, progress=True)
    frames = ase.io.read(args.configs, index=":")  # written back with the input's own keys and labels
    for atoms, p in zip(frames, predictions):
        atoms.info[f"{args.prefix}energy"] = p.energy
        atoms.arrays[f"{args.prefix}forces"] = p.forces
        atoms.arrays[f"{args.prefix}energies"] = p.energies
        if p.stress is not None:
            atoms.info[f"{args.prefix}stress"] = p.stress
    ase.io.write(args.output, frames, format="extxyz")
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
