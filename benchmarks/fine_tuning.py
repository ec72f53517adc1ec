"""Fine-tuning a cheap-theory model on a few DFT configurations, against training the same model from scratch.

The foundation model is the README's default job trained longer: GFN2-xTB ethanol at 800 K (the embedded
``gaunt_tp/datasets/ethanol_xtb_*.xyz``; ``examples/default.yaml`` with ``--max_num_epochs``
``--foundation_epochs``), or any model given with ``--foundation``. The new data are ``n`` configurations of
rMD17 ethanol (PBE/def2-SVP; ``shared/data/ethanol/train.xyz``, drawn at random with each seed), and every model is
scored on the 1000 rMD17 test configurations (``test_MD.xyz``; MAE of the energy per molecule in meV and of the
force components in meV/A, rMD17's convention). For each ``n`` and seed, three models:

- ``zero-shot``: the foundation model as it is, its E0s fitted to the ``n`` DFT energies it leaves unexplained
  (what ``--E0s average`` does for a fine-tuning run before its first step, there on its training part alone): the
  gap between the two levels of theory that a constant per element cannot absorb;
- ``fine-tuned``: ``gaunt-tp train --foundation_model FOUNDATION --E0s average`` on the ``n`` configurations;
- ``scratch``: ``gaunt-tp train`` with the foundation's architecture, E0s of the DFT isolated atoms, fresh weights.

Both trainings use the same options (``--epochs``, learning rate, batch 5, validation fraction 0.1, stage two for the
last quarter, the seed): they differ in where the weights start (and in the E0s, each run's usual choice). Writes
``--out`` (JSON, after every size and seed; a later call with the same options measures only what is missing) and a
PNG of the test errors against ``n`` beside it. ``--jobs 2`` trains two sizes or seeds at once, each on
``--threads`` threads. ``--foundation_options`` gives the foundation (and so every run) another architecture:

    python benchmarks/fine_tuning.py --sizes 25 50 100 200 500 1000 --seeds 1 2 3 --jobs 2
    python benchmarks/fine_tuning.py --sizes 25 50 100 200 1000 --jobs 2 --default_dtype float32 \
        --foundation_options "--num_channels 64 --max_L 2 --max_ell 3 --r_max 5.0 --product_blocks symmetric" \
        --work_dir runs/fine_tuning_64 --out benchmarks/results/fine_tuning_64.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import shlex
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from ase.io import read, write

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402

from gaunt_tp.data import read_any  # noqa: E402
from gaunt_tp.nn import GauntMACE, load_model  # noqa: E402
from gaunt_tp.training import TrainConfig, config_from_args, run_training  # noqa: E402
from gaunt_tp.training.foundation import adopt_architecture, fine_tuning_model, unexplained_energy_e0s  # noqa: E402
from gaunt_tp.training.predict import predict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ethanol"
MACE_ETHANOL = {"mae_e_meV": 0.4, "mae_f_meV_per_A": 2.1}  # MACE on rMD17 ethanol, 1000 training configurations


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--foundation", type=Path, help="a trained .model file (default: train one, see above)")
    p.add_argument("--foundation_epochs", type=int, default=200)
    p.add_argument("--foundation_options", default="", help="more gaunt-tp train flags for the foundation model, "
                   "e.g. '--num_channels 64 --max_L 2' (its architecture is every run's)")  # fmt: skip
    p.add_argument("--default_dtype", default="float64", choices=["float32", "float64"], help="of every run")
    p.add_argument("--train_file", type=Path, default=DATA / "train.xyz")
    p.add_argument("--test_file", type=Path, default=DATA / "test_MD.xyz")
    p.add_argument("--isolated_atoms", type=Path, default=DATA / "isolated_atoms.xyz", help="E0s of scratch runs")
    p.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--jobs", type=int, default=1, help="sizes and seeds trained at once, in worker processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each worker")
    p.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "fine_tuning")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fine_tuning.json")
    return p.parse_args(argv)


def train_foundation(args: argparse.Namespace) -> Path:
    """The README's default job with ``--foundation_epochs`` epochs, reused if its model exists with the same options
    (``--foundation_options``, epochs, dtype); one trained with others stops the benchmark."""
    config = config_from_args(["--config", str(ROOT / "examples" / "default.yaml"), "--name", "foundation",
                               "--work_dir", str(args.work_dir), "--max_num_epochs", str(args.foundation_epochs),
                               "--plots", "false", "--default_dtype", args.default_dtype,
                               *shlex.split(args.foundation_options)])  # fmt: skip
    config = dataclasses.replace(config, train_file=str(ROOT / config.train_file),
                                 test_file=str(ROOT / config.test_file), E0s=str(ROOT / config.E0s))  # fmt: skip
    model = config.run_dir / "foundation.model"
    if model.is_file():
        saved, wanted = json.loads((config.run_dir / "config.json").read_text()), json.loads(config.to_json())
        if changed := sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k)):
            raise SystemExit(f"{model} was trained with other options ({', '.join(changed)}): remove "
                             f"{config.run_dir} or give another --work_dir")  # fmt: skip
        return model
    run_training(config)
    return model


def test_errors(tables: dict) -> dict[str, float]:
    """Energy (meV per molecule) and force (meV/A) MAE and RMSE on the test set of a final error table."""
    row = tables["all"]
    return {k: row[k] for k in ("mae_e_meV", "mae_f_meV_per_A", "rmse_e_meV", "rmse_f_meV_per_A")}


def zero_shot(model: GauntMACE, train_file: Path, test: list) -> dict[str, float]:
    """Test errors of ``model`` with its E0s fitted to the energies of ``train_file`` it leaves unexplained."""
    train = read_any(train_file)
    zs = sorted({int(z) for c in train for z in c.atomic_numbers})
    e0s = unexplained_energy_e0s(model, train, zs)
    _, table = predict(fine_tuning_model(model, zs, e0s), test, batch_size=50)
    return test_errors(table)


def train_one(config: TrainConfig) -> dict[str, float]:
    """Test errors and wall time of a fresh run of ``config`` (a folder left by an interrupted call is removed)."""
    shutil.rmtree(config.run_dir, ignore_errors=True)
    start = time.perf_counter()
    tables = run_training(config)
    return test_errors(tables["test"]) | {"seconds": time.perf_counter() - start}


def measure(n: int, seed: int, train_file: Path, foundation: Path, args: argparse.Namespace) -> dict:
    """The three models of one size and seed (in a worker process, on ``--threads`` threads)."""
    torch.set_num_threads(args.threads)
    common = {"train_file": str(train_file), "test_file": str(args.test_file), "work_dir": str(args.work_dir),
              "valid_fraction": 0.1, "batch_size": 5, "max_num_epochs": args.epochs, "lr": args.lr, "swa": True,
              "scheduler_patience": 5, "seed": seed, "plots": False, "default_dtype": args.default_dtype}  # fmt: skip
    fine = TrainConfig(**common, name=f"fine_n{n}_seed{seed}", foundation_model=str(foundation), E0s="average")
    scratch = TrainConfig(**common, name=f"scratch_n{n}_seed{seed}", E0s=str(args.isolated_atoms))
    model = load_model(foundation)
    scratch, _ = adopt_architecture(scratch, model.config)
    run = {"n": n, "seed": seed, "zero_shot": zero_shot(model, train_file, read_any(args.test_file))}
    return run | {"fine_tuned": train_one(fine), "scratch": train_one(scratch)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    foundation = args.foundation or train_foundation(args)
    frames = read(args.train_file, index=":")
    report = {"foundation": str(foundation), "train_file": str(args.train_file), "test_file": str(args.test_file),
              "foundation_options": args.foundation_options, "default_dtype": args.default_dtype, "epochs": args.epochs,
              "lr": args.lr, "mace_published_n1000": MACE_ETHANOL, "runs": []}  # fmt: skip
    if args.out.is_file():  # resume: keep what an earlier call measured with the same options
        old = json.loads(args.out.read_text())
        if all(old.get(k) == v for k, v in report.items() if k != "runs"):
            report["runs"] = old["runs"]
    done = {(r["n"], r["seed"]) for r in report["runs"]}
    tasks = []
    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(len(frames))
        for n in args.sizes:
            if (n, seed) not in done:
                train_file = args.work_dir / "data" / f"train_n{n}_seed{seed}.xyz"
                train_file.parent.mkdir(parents=True, exist_ok=True)
                write(train_file, [frames[i] for i in order[:n]], format="extxyz")
                tasks.append((n, seed, train_file))
    tasks.sort(key=lambda t: -t[0])  # the longest first: the workers finish together
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(measure, n, seed, train_file, foundation, args) for n, seed, train_file in tasks]
        for future in as_completed(futures):
            run = future.result()
            report["runs"] = sorted([*report["runs"], run], key=lambda r: (r["n"], r["seed"]))
            write_json(args.out, report)
            print(f"n={run['n']} seed={run['seed']}: " + "; ".join(
                f"{k} E {run[k]['mae_e_meV']:.2f} meV F {run[k]['mae_f_meV_per_A']:.1f} meV/A"
                for k in ("zero_shot", "fine_tuned", "scratch")), flush=True)  # fmt: skip
    plot(report, args.out.with_suffix(".png"))


def plot(report: dict, path: Path) -> None:
    """Test MAE (energy, forces) against the number of DFT configurations: mean over seeds, each seed a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in report["runs"]})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, unit in zip(axes, ("mae_e_meV", "mae_f_meV_per_A"), ("meV", "meV/Å")):
        for label, style in (("zero_shot", "o:"), ("fine_tuned", "o-"), ("scratch", "s-")):
            values = [[r[label][key] for r in report["runs"] if r["n"] == n] for n in sizes]
            line = ax.plot(sizes, [np.mean(v) for v in values], style, label=label.replace("_", "-"))[0]
            for n, v in zip(sizes, values):
                ax.plot([n] * len(v), v, ".", color=line.get_color(), alpha=0.4)
        ax.plot([1000], [report["mace_published_n1000"][key]], "k*", markersize=10, label="MACE, 1000 configs")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("DFT training configurations (rMD17 ethanol)")
        ax.set_ylabel(f"test MAE ({unit})")
        ax.set_title("energy per molecule" if key == "mae_e_meV" else "force components", fontsize="medium")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    seeds = len({r["seed"] for r in report["runs"]})
    model = report["foundation_options"] or "examples/default.yaml"
    fig.suptitle(f"GFN2-xTB ethanol model fine-tuned on DFT vs from scratch ({report['epochs']} epochs each, {seeds} "
                 f"seed{'s' * (seeds > 1)})\n{model}, {report['default_dtype']}", fontsize="medium")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
