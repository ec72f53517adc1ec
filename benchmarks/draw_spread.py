"""Validation errors over draws of the initial weights: how far one model's figures move on one split.

Each ``--run LABEL=FILE[:MODEL]`` is one training run written by ``compare_training.py`` (``MODEL``: the key
under ``models``, needed only when the file holds more than one); runs with the same label are that model's
draws (``--init_seed``) on the same split and batch order. For each label the validation RMSE of the last epoch
(or ``--epoch``) is read per draw; the summary gives each draw's E (meV/atom) and F (meV/A), their mean, range
and spread ``max / min - 1``, and the ratio of each label's mean to the first label's. Draws are not
paired across labels (draw 101 of one model has nothing to do with draw 101 of another), so no per-draw ratios.
Writes ``NAME.json`` and ``NAME.png`` (every draw as a point, the means as bars) and prints a Markdown table:

    python benchmarks/draw_spread.py --name draw_spread_maxL2_stage2_split1 \\
        --run mace-torch=benchmarks/results/compare_training_maxL2_stage2_mace_seed1.json \\
        --run mace-torch=benchmarks/results/compare_training_maxL2_stage2_mace_init101_seed1.json \\
        --run "symmetric + CG convolution=benchmarks/results/compare_training_maxL2_stage2_symcg_seed1.json" \\
        --run "symmetric + CG convolution=benchmarks/results/compare_training_maxL2_stage2_init101_seed1.json:gaunt-sym-cg"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402
from seed_summary import final_errors, split_model  # noqa: E402


def parse_run(text: str) -> tuple[str, Path, str | None]:
    """``LABEL=FILE[:MODEL]`` -> ``(label, file, model or None)``."""
    label, sep, rest = text.partition("=")
    if not sep or not label or not rest:
        raise SystemExit(f"--run wants LABEL=FILE[:MODEL], got {text!r}")
    path, model = split_model(rest)
    return label, Path(path), model


def summarise(runs: list[tuple[str, Path, str | None]], epoch: int | None) -> dict:
    """Per label: each draw's errors and file, their mean, range and relative spread, the ratio of the means."""
    groups: dict[str, list[tuple[str, float, float, int]]] = {}
    for label, path, model in runs:
        e, f, last = final_errors(path, model, epoch)
        groups.setdefault(label, []).append((str(path) + (f":{model}" if model else ""), e, f, last))
    reference = None
    summary = {}
    for label, draws in groups.items():
        errors = np.array([[e, f] for _, e, f, _ in draws])  # [draws, (E, F)]
        mean = errors.mean(axis=0)
        reference = mean if reference is None else reference
        summary[label] = {
            "files": [name for name, *_ in draws],
            "epochs": [last for *_, last in draws],
            "rmse_e_meV_per_atom": errors[:, 0].tolist(),
            "rmse_f_meV_per_A": errors[:, 1].tolist(),
            "mean_e": float(mean[0]),
            "mean_f": float(mean[1]),
            "range_e": [float(errors[:, 0].min()), float(errors[:, 0].max())],
            "range_f": [float(errors[:, 1].min()), float(errors[:, 1].max())],
            "spread_e": float(errors[:, 0].max() / errors[:, 0].min() - 1),
            "spread_f": float(errors[:, 1].max() / errors[:, 1].min() - 1),
            "ratio_of_means_e": float(mean[0] / reference[0]),
            "ratio_of_means_f": float(mean[1] / reference[1]),
        }
    return summary


def markdown(summary: dict) -> str:
    """One row per label: draws, E and F per draw, mean, range, spread and the ratio of the means."""
    lines = [
        "| run | draws | E per draw (meV/atom) | F per draw (meV/A) | mean E / F | spread E / F | ratio of means E / F |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in summary.items():
        lines.append(
            f"| {label} | {len(r['files'])} | {', '.join(f'{e:.2f}' for e in r['rmse_e_meV_per_atom'])} | "
            f"{', '.join(f'{f:.1f}' for f in r['rmse_f_meV_per_A'])} | {r['mean_e']:.2f} / {r['mean_f']:.1f} | "
            f"{100 * r['spread_e']:.0f}% / {100 * r['spread_f']:.0f}% | "
            f"{r['ratio_of_means_e']:.2f} / {r['ratio_of_means_f']:.2f} |"
        )
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    """Energies and forces side by side: each draw a point, each label's mean a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, mean, title in zip(
        axes, ("rmse_e_meV_per_atom", "rmse_f_meV_per_A"), ("mean_e", "mean_f"), ("energy RMSE (meV/atom)",
                                                                                  "force RMSE (meV/A)")
    ):  # fmt: skip
        x = np.arange(len(labels))
        ax.bar(x, [summary[label][mean] for label in labels], 0.6, color="lightgray", label="mean over draws")
        for k, label in enumerate(labels):
            values = summary[label][key]
            ax.plot(np.full(len(values), k) + np.linspace(-0.15, 0.15, len(values)), values, "o", color="C0")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.suptitle("validation error per draw of the initial weights (same split and batch order)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        help="LABEL=FILE[:MODEL], one per draw; the first label is the reference",
    )
    parser.add_argument("--epoch", type=int, default=None, help="epoch to compare (default: each run's last)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="draw_spread")
    args = parser.parse_args(argv)
    summary = summarise([parse_run(text) for text in args.run], args.epoch)
    write_json(args.out / f"{args.name}.json", {"epoch": args.epoch, "runs": summary})
    plot(summary, args.out / f"{args.name}.png")
    print(markdown(summary))


if __name__ == "__main__":
    main()
