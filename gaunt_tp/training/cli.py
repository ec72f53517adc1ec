"""``gaunt-tp``: the command line (the only reader of argv).

gaunt-tp train --train_file data.xyz --E0s average --max_num_epochs 50 --name run1
gaunt-tp train --config run.yaml --lr 0.005          # flags override the YAML file
gaunt-tp eval --configs test.xyz --model run1/run1.model --output predicted.xyz
gaunt-tp import-mace --model MACE.model --output gaunt.model   # where mace-torch is installed: its model, converted
gaunt-tp --version                                     # with the versions of torch and e3nn, for bug reports
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gaunt_tp.errors import InputError

if TYPE_CHECKING:
    from ase import Atoms


__all__ = ["main"]


def _train(argv: list[str]) -> int:
    from gaunt_tp.training.config import config_from_args
    from gaunt_tp.training.distributed import first_process_speaks, launch_rank
    from gaunt_tp.training.loop import run_training

    # under torchrun, the other processes' warnings of the options would repeat the first one's (run_training quiets
    # those of the data and the run itself)
    with first_process_speaks(launch_rank(os.environ) or 0, logging.getLogger("gaunt_tp.train")):
        config = config_from_args(argv)
    run_training(config)
    return 0


def _import_mace(argv: list[str]) -> int:
    from gaunt_tp.interop.mace import model_from_mace, read_mace_model
    from gaunt_tp.nn.serialization import save_model
    from gaunt_tp.training.config import OptionParser

    parser = OptionParser(
        prog="gaunt-tp import-mace",
        description="Convert a trained mace-torch model (MACE or ScaleShiftMACE) into a gaunt-tp model computing the "
        "same energies and forces with MACE's blocks in gaunt-tp's kernels. Run it where mace-torch is installed: "
        "reading its model file unpickles mace-torch's classes (only trusted files).",
    )
    parser.add_argument("--model", required=True, help="mace-torch model file, as mace_run_train writes it")
    parser.add_argument("--output", required=True, help="gaunt-tp model file to write (.model, with a .json beside)")
    parser.add_argument("--head", default=None, help="the head to convert, of a model of several (by its name)")
    args = parser.parse_args(argv)
    model = model_from_mace(*read_mace_model(args.model), head=args.head)
    save_model(model, args.output)
    c = model.config
    logging.getLogger("gaunt_tp.import").info(
        "%s: %d parameters; elements Z=%s, %d channels, max_L %d, max_ell %d, correlation %d, %d interactions, "
        "r_max %g A%s%s", args.output, sum(p.numel() for p in model.parameters()), list(c.atomic_numbers),
        c.num_channels, c.max_L, c.max_ell, c.correlation, c.num_interactions, c.r_max,
        "".join(f", {part}" for part in c.optional_parts()), f"; head {args.head!r}" if args.head else "",
    )  # fmt: skip
    return 0


_CALCULATOR_KEYS = ("energy", "free_energy", "forces", "stress", "energies")  # ASE reads these back as labels
_PREDICTED = ("energy", "forces", "energies", "stress", "descriptors")  # written under --prefix


def _check_output(output: Path) -> None:
    """Refuse, before any work, an output ``gaunt-tp eval`` could not write: a name other than extxyz's (the
    predictions are per-atom arrays that only extxyz holds; ASE compresses ``.gz``, ``.bz2``, ``.xz``) or in a
    missing folder."""
    name = output.name.lower()
    for compressed in (".gz", ".bz2", ".xz"):
        name = name.removesuffix(compressed)
    if not name.endswith((".xyz", ".extxyz")):
        raise InputError(f"--output {output}: written as extxyz, so it must end in .xyz or .extxyz (or those .gz)")
    if not output.parent.is_dir():
        raise InputError(f"--output {output}: no such folder {output.parent}")


def _check_prefix(prefix: str, frames: list[Atoms]) -> None:
    """Refuse a ``--prefix`` that is no extxyz key (a space, ``:`` or ``=`` would garble the file ASE writes), or
    whose keys the input already holds (its labels would be overwritten) or ASE reads back as reference labels
    (``energy``, ``forces``, ...)."""
    if not re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)?", prefix):
        raise InputError(f"--prefix {prefix!r}: letters, digits and underscores only, not first a digit (extxyz keys)")
    present = set(_CALCULATOR_KEYS).union(*(set(a.info) | set(a.arrays) for a in frames))
    taken = sorted({prefix + name for name in _PREDICTED} & present)
    if taken:
        raise InputError(f"--prefix {prefix!r} would write over the keys {taken} of the input; choose another")


def _eval(argv: list[str]) -> int:
    import ase.io

    from gaunt_tp.data import KeySpec, read_configurations, read_rmd17
    from gaunt_tp.devices import torch_device
    from gaunt_tp.dtypes import DTYPES, torch_dtype
    from gaunt_tp.nn.serialization import load_model
    from gaunt_tp.training.config import OptionParser
    from gaunt_tp.training.predict import predict
    from gaunt_tp.training.records import format_tables

    parser = OptionParser(
        prog="gaunt-tp eval",
        description="Predict energies, forces and (cells with a volume) stress into extxyz, with an error table where "
        "the configurations carry reference labels.",
    )
    parser.add_argument(
        "--configs", required=True, help="structures to evaluate: extxyz (or any ASE format) or an rMD17 .npz"
    )
    parser.add_argument("--model", required=True, help="a .model file written by gaunt-tp train")
    parser.add_argument(
        "--output", required=True, help="extxyz to write: the input with <prefix>energy, <prefix>forces, "
        "<prefix>energies (per atom) and, where the cell spans a volume, <prefix>stress (3x3) added",
    )  # fmt: skip
    parser.add_argument(
        "--prefix", "--info_prefix", default="gaunt_", help="prefix of the predicted keys (default gaunt_; "
        "--info_prefix is MACE's name)"
    )  # fmt: skip
    parser.add_argument("--batch_size", type=int, default=16, help="configurations per model call (default 16)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--default_dtype", default="float64", metavar="{" + ",".join(DTYPES) + "}", help="precision (default float64)"
    )
    parser.add_argument(
        "--descriptors", action="store_true", help="also write each atom's invariant descriptors as "
        "<prefix>descriptors (num_interactions x num_channels per atom: each layer's 0e features, layer by layer)",
    )  # fmt: skip
    for label, key in (("energy", "REF_energy"), ("forces", "REF_forces"), ("stress", "REF_stress"),
                       ("virials", "REF_virials")):  # fmt: skip
        parser.add_argument(
            f"--{label}_key",
            default=key,
            help=f"key of the reference {label}, for the error table (default {key}"
            + ("; read as the stress -virials/volume where there is no stress)" if label == "virials" else ")"),
        )
    args = parser.parse_args(argv)
    dtype, device = torch_dtype(args.default_dtype), torch_device(args.device)  # options before files
    _check_output(Path(args.output))
    model = load_model(args.model).to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    if Path(args.configs).suffix == ".npz":  # rMD17: written out as extxyz with the labels in eV
        configs = read_rmd17(args.configs)
        frames = [c.to_atoms(args.energy_key, args.forces_key) for c in configs]
    else:
        configs = read_configurations(  # first: it checks the file and names what is wrong with it
            args.configs,
            keys=KeySpec(
                energy_key=args.energy_key,
                forces_key=args.forces_key,
                stress_key=args.stress_key,
                virials_key=args.virials_key,
            ),
            require_energy=False,
            require_forces=False,
        )
        frames = ase.io.read(args.configs, index=":")  # written back with the input's own keys and labels
    _check_prefix(args.prefix, frames)
    predictions, table = predict(
        model, configs, batch_size=args.batch_size, progress=True, descriptors=args.descriptors
    )
    for atoms, p in zip(frames, predictions):
        atoms.info[f"{args.prefix}energy"] = p.energy
        atoms.arrays[f"{args.prefix}forces"] = p.forces
        atoms.arrays[f"{args.prefix}energies"] = p.energies
        if p.descriptors is not None:
            atoms.arrays[f"{args.prefix}descriptors"] = p.descriptors
        if p.stress is not None:
            atoms.info[f"{args.prefix}stress"] = p.stress
    ase.io.write(args.output, frames, format="extxyz")
    if table:  # the configurations carry labels
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
    commands = {"train": _train, "eval": _eval, "import-mace": _import_mace}
    if command not in commands:
        print(f"gaunt-tp: unknown command {command!r} (expected {', '.join(commands)})", file=sys.stderr)
        return 2
    try:
        return commands[command](rest)
    except InputError as err:  # bad files or options: the message says which and why; no traceback
        from gaunt_tp.training.distributed import launch_rank

        rank = launch_rank(os.environ)  # under torchrun every process prints its error: which one is this
        print(f"gaunt-tp {command}{f' (rank {rank})' if rank is not None else ''}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
