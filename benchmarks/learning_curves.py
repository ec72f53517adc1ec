"""Validation errors of training runs side by side, against the epoch: schedules and learning rates compared.

Each run is ``LABEL=PATH``, ``PATH`` a run folder's ``metrics.csv`` (``gaunt-tp train`` writes it). Writes
``NAME.json`` (for every run: validation force RMSE in meV/Å, energy RMSE per configuration in meV and the learning
rate at every ``--every``-th epoch and at its last epoch) and ``NAME.png`` (validation force and energy RMSE against
the epoch from ``--from_epoch`` on, to ``--to_epoch``, log scale, the learning rate in a third panel), and prints a
Markdown table of the force RMSE at the epochs every run reached::

    python benchmarks/learning_curves.py --name 3bpa_lr_schedules \\
        --run "lr 0.01 (stop 29)=benchmarks/results/3bpa_cpu_float32_metrics.csv" \\
        --run "ExponentialLR=benchmarks/results/3bpa_cpu_exp_metrics.csv"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402

from gaunt_tp.training.records import read_history  # noqa: E402

COLUMNS = {"rmse_f_meV_per_A": "valid RMSE F (meV/Å)", "rmse_e_meV": "valid RMSE E (meV)", "lr": "learning rate"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, metavar="LABEL=PATH", help="a run's metrics.csv")
    p.add_argument("--name", required=True, help="output name (NAME.json, NAME.png)")
    p.add_argument("--every", type=int, default=50, help="epochs between the rows of the JSON and the table")
    p.add_argument("--from_epoch", type=int, default=10, help="first epoch drawn (the first ones would set the scale)")
    p.add_argument("--to_epoch", type=int, default=None, help="last epoch drawn (default: every run's last)")
    p.add_argument("--out_dir", type=Path, default=Path(__file__).resolve().parent / "results")
    return p.parse_args(argv)


def read_runs_history(path: Path) -> dict[int, dict[str, float]]:
    """``{epoch: {column: value}}`` of the columns in ``COLUMNS`` that the file has; the force RMSE is required,
    the others are left out where a run's file predates them."""
    history = read_history(path)
    if "rmse_f_meV_per_A" not in history:
        raise SystemExit(f"{path}: not a gaunt-tp metrics.csv (no rmse_f_meV_per_A column)")
    present = [c for c in COLUMNS if c in history]
    return {epoch: {c: history[c][i] for c in present} for i, epoch in enumerate(history["epoch"])}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs = {}
    for text in args.run:
        label, sep, path = text.partition("=")
        if not sep:
            raise SystemExit(f"--run {text!r}: expected LABEL=PATH")
        runs[label] = read_runs_history(Path(path))
    report = {"every": args.every, "runs": {}}
    for label, history in runs.items():
        last = max(history)
        kept = sorted({e for e in history if e % args.every == 0} | {last})
        report["runs"][label] = {"last_epoch": last, "epochs": {str(e): history[e] for e in kept}}
    write_json(args.out_dir / f"{args.name}.json", report)

    shared = sorted(set.intersection(*(set(h) for h in runs.values())))
    print("| epoch | " + " | ".join(runs) + " |\n|---|" + "---|" * len(runs))
    for epoch in (e for e in shared if e % args.every == 0 or e == shared[-1]):
        print(f"| {epoch} | " + " | ".join(f"{h[epoch]['rmse_f_meV_per_A']:.2f}" for h in runs.values()) + " |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for k, (label, history) in enumerate(runs.items()):
        last = args.to_epoch if args.to_epoch is not None else max(history)
        epochs = [e for e in sorted(history) if args.from_epoch <= e <= last]
        for ax, column in zip(axes, COLUMNS):
            if column in history[epochs[0]]:  # one colour per run in every panel, drawn or not
                ax.semilogy(epochs, [history[e][column] for e in epochs], f"C{k}", label=label, linewidth=1)
    for ax, title in zip(axes, COLUMNS.values()):
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()  # the force panel: every run has that column
    fig.tight_layout()
    fig.savefig(args.out_dir / f"{args.name}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
