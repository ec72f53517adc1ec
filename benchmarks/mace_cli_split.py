"""mace-torch's own training command on gaunt-tp's split: the files it needs, and its log as a metrics.csv.

``export`` writes a gaunt-tp run's training and validation configurations (``train_valid_split`` of its
``--train_file`` with its ``--valid_fraction`` and ``--seed``) and its test set as extxyz with ``REF_energy`` and
``REF_forces`` (eV, eV/Å), for ``mace_run_train --train_file ... --valid_file ...``: both programs then train on
the same 950 configurations and validate on the same 50. ``metrics`` reads mace_run_train's log and writes its
validation errors per epoch in the columns of gaunt-tp's ``metrics.csv`` (mace-torch counts epochs from 0, gaunt-tp
from 1: its epoch 0 is epoch 1 here), for ``benchmarks/learning_curves.py``::

    python benchmarks/mace_cli_split.py export --config benchmarks/results/ethanol_cpu_ddp2_b5_config.json --out DIR
    mace_run_train --train_file DIR/train.xyz --valid_file DIR/valid.xyz --test_file DIR/test.xyz ...
    python benchmarks/mace_cli_split.py metrics --log LOG --out benchmarks/results/NAME_metrics.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import ase.io

from gaunt_tp.data import read_any
from gaunt_tp.data.split import train_valid_split

# mace_run_train's line per evaluation with --error_table PerAtomRMSE
LINE = re.compile(r"Epoch (\d+): head: \S+, loss=\S+, RMSE_E_per_atom=\s*([-\d.]+) meV, RMSE_F=\s*([-\d.]+) meV / A")


def export(config_path: Path, out: Path) -> None:
    config = json.loads(config_path.read_text())
    train, valid = train_valid_split(read_any(config["train_file"]), config["valid_fraction"], config["seed"])
    sets = {"train": train, "valid": valid, "test": read_any(config["test_file"]) if config.get("test_file") else []}
    out.mkdir(parents=True, exist_ok=True)
    for name, configs in sets.items():
        frames = [c.to_atoms() for c in configs]
        if frames:
            ase.io.write(out / f"{name}.xyz", frames, format="extxyz")
        print(f"{out / f'{name}.xyz'}: {len(frames)} configurations")


def metrics(log: Path, atoms: int, out: Path) -> None:
    rows = [
        {"epoch": int(m.group(1)) + 1, "rmse_e_meV_per_atom": float(m.group(2)),
         "rmse_e_meV": float(m.group(2)) * atoms, "rmse_f_meV_per_A": float(m.group(3))}
        for m in map(LINE.search, log.read_text().splitlines()) if m
    ]  # fmt: skip
    if not rows:
        raise SystemExit(f"{log}: no evaluation lines of mace_run_train (--error_table PerAtomRMSE)")
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{out}: {len(rows)} epochs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="a gaunt-tp run's split as extxyz files")
    e.add_argument("--config", type=Path, required=True, help="the run's config.json")
    e.add_argument("--out", type=Path, required=True, help="folder for train.xyz, valid.xyz, test.xyz")
    m = sub.add_parser("metrics", help="mace_run_train's log as a metrics.csv")
    m.add_argument("--log", type=Path, required=True)
    m.add_argument("--atoms", type=int, default=9, help="atoms per configuration (per-atom to per-configuration E)")
    m.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "export":
        export(args.config, args.out)
    else:
        metrics(args.log, args.atoms, args.out)


if __name__ == "__main__":
    main()
