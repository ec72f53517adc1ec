"""Training on stress: GauntMACE on EMT copper, with MACE's ``weighted`` loss and with its ``stress`` loss.

Makes strained, rattled fcc copper cells (8 and 16 atoms) labelled by ASE's EMT (energy, forces, stress; offline),
trains the same model twice with ``gaunt-tp train``'s loop, once without and once with the stress term, and
writes the final error tables (stress errors for both; test set included) to ``stress_training.json`` and a bar
chart of the test errors to ``stress_training.png``:

    OMP_NUM_THREADS=1 python benchmarks/stress_training.py --epochs 30
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

import ase.io

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402

from gaunt_tp.testing import emt_copper  # noqa: E402
from gaunt_tp.training.config import TrainConfig  # noqa: E402
from gaunt_tp.training.loop import run_training  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=200, help="training + validation configurations")
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--stress_weight", type=float, default=100.0)
    parser.add_argument("--work_dir", type=Path, default=Path("runs/stress_training"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")  # epoch lines
    args.work_dir.mkdir(parents=True, exist_ok=True)
    train_file, test_file = args.work_dir / "cu_train.xyz", args.work_dir / "cu_test.xyz"
    shapes = ((2, 1, 1), (2, 2, 1))  # 8 and 16 atoms
    ase.io.write(train_file, emt_copper(args.train, seed=1, shapes=shapes))
    ase.io.write(test_file, emt_copper(args.test, seed=2, shapes=shapes))
    report = {"data": f"EMT copper, {args.train} train+valid / {args.test} test", "runs": {}}
    for loss in ("weighted", "stress"):
        config = TrainConfig(
            train_file=str(train_file), test_file=str(test_file), name=f"cu_{loss}", work_dir=str(args.work_dir),
            E0s="average", r_max=4.5, num_channels=32, max_L=1, max_num_epochs=args.epochs, batch_size=5,
            loss=loss, stress_weight=args.stress_weight, default_dtype="float64", seed=1, plots=False,
        )  # fmt: skip
        shutil.rmtree(config.run_dir, ignore_errors=True)  # this script's own runs, made afresh each time
        started = time.perf_counter()
        tables = run_training(config)
        report["runs"][loss] = {"seconds": time.perf_counter() - started, "tables": tables, "config": config.to_json()}
        write_json(args.out / "stress_training.json", report)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("rmse_e_meV_per_atom", "energy (meV/atom)"), ("rmse_f_meV_per_A", "forces (meV/A)"),
              ("rmse_stress_meV_per_A3", "stress (meV/A^3)")]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, (key, title) in zip(axes, panels):
        ax.bar(list(report["runs"]), [report["runs"][k]["tables"]["test"]["all"][key] for k in report["runs"]])
        ax.set(title=f"test RMSE, {title}", xlabel="loss")
    fig.tight_layout()
    fig.savefig(args.out / "stress_training.png", dpi=120)


if __name__ == "__main__":
    main()
