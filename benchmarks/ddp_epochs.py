"""Data-parallel training speed: seconds per epoch of ``gaunt-tp train`` on one process and under torchrun.

Runs the same short 3BPA training (the float32 command of docs/benchmarks.md: 64 channels, max_L 2, symmetric
products; 10% held out) once per ``--runs`` entry ``PROCESSES:BATCH:THREADS`` (threads per process), one after
another, and reads each epoch's time from ``metrics.csv``'s ``time_s`` (training and validation). The first epoch
is left out (warm-up). Writes ``<name>.json`` (per run: median seconds per epoch, per training configuration, and
the validation errors after the last epoch) and ``<name>.png`` (milliseconds per training configuration, with the
first run's time over each other's):

    python benchmarks/ddp_epochs.py --epochs 8 --runs 1:5:1 1:5:2 2:4:1 2:5:1
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import bar_plot, write_json  # noqa: E402

from gaunt_tp.training.records import read_history  # noqa: E402

MODEL = ["--default_dtype", "float32", "--num_channels", "64", "--max_L", "2", "--correlation", "3", "--max_ell", "3",
         "--r_max", "5.0", "--product_blocks", "symmetric", "--seed", "1", "--clip_grad", "0", "--lr", "0.02",
         "--valid_fraction", "0.1", "--plots", "false"]  # fmt: skip


def run_once(spec: str, args: argparse.Namespace) -> dict:
    """Train ``args.epochs`` epochs under ``spec`` (``PROCESSES:BATCH:THREADS``); its timings and last errors."""
    processes, batch, threads = (int(x) for x in spec.split(":"))
    name = f"p{processes}_b{batch}_t{threads}"
    shutil.rmtree(args.work_dir / name, ignore_errors=True)
    train = ["-m", "gaunt_tp.training.cli", "train", "--name", name, "--work_dir", str(args.work_dir),
             "--train_file", str(args.train_file), "--E0s", str(args.E0s), "--batch_size", str(batch),
             "--max_num_epochs", str(args.epochs), *MODEL]  # fmt: skip
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print(f"{name}: {' '.join(launcher[1:] + train)}", flush=True)
    subprocess.run([*launcher, *train], env=env, check=True, stdout=subprocess.DEVNULL)
    history = read_history(args.work_dir / name / "metrics.csv")
    times = history["time_s"]
    epochs = [b - a for a, b in zip(times, times[1:])]  # from the second epoch on
    log = (args.work_dir / name / "train.log").read_text()
    configs = int(re.search(r"configurations: (\d+) train", log).group(1))
    seconds = statistics.median(epochs)
    return {"processes": processes, "batch_size": batch, "threads_per_process": threads,
            "seconds_per_epoch": seconds, "epoch_seconds": epochs, "ms_per_training_configuration":
            1e3 * seconds / configs, "valid_rmse_f_meV_per_A": history["rmse_f_meV_per_A"][-1],
            "valid_rmse_e_meV": history["rmse_e_meV"][-1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_file", type=Path, default=Path("../shared/data/3bpa/train_300K.xyz"))
    parser.add_argument("--E0s", type=Path, default=Path("../shared/data/3bpa/iso_atoms.xyz"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--runs", nargs="+", default=["1:5:1", "1:5:2", "2:4:1", "2:5:1"],
                        help="PROCESSES:BATCH:THREADS per run; the first is the plot's baseline")  # fmt: skip
    parser.add_argument("--work_dir", type=Path, default=Path("runs/ddp_epochs"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="ddp_epochs")
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error("--epochs must be at least 3 (the first is left out of the timings)")
    results = {spec: run_once(spec, args) for spec in args.runs}
    for spec, r in results.items():
        print(f"{spec}: {r['seconds_per_epoch']:.2f} s per epoch, {r['ms_per_training_configuration']:.1f} ms per "
              f"configuration; validation F {r['valid_rmse_f_meV_per_A']:.1f} meV/A")  # fmt: skip
    write_json(args.out / f"{args.name}.json", {"epochs": args.epochs, "train_file": str(args.train_file),
                                                 "model": MODEL, "runs": results})  # fmt: skip
    labels = {spec: f"{r['processes']} proc. x {r['threads_per_process']} thr., batch {r['batch_size']}"
              for spec, r in results.items()}  # fmt: skip
    groups = {"per training configuration": {labels[s]: r["ms_per_training_configuration"] / 1e3
                                             for s, r in results.items()}}  # fmt: skip
    bar_plot(groups, args.out / f"{args.name}.png", f"gaunt-tp train, 3BPA, {args.epochs} epochs (median of epochs "
             "2 on)", baseline=labels[args.runs[0]])  # fmt: skip


if __name__ == "__main__":
    main()
