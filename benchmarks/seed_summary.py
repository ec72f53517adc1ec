"""Validation errors over seeds: runs of ``compare_training.py`` side by side, as ratios to a reference model.

Each run is ``LABEL=PATTERN`` or ``LABEL=PATTERN:MODEL``: ``PATTERN`` is a JSON file written by
``compare_training.py`` with ``{seed}`` where the seed goes, ``MODEL`` the key under ``models`` (needed only when
the file holds more than one). The first run is the reference. For every seed the validation RMSE of the last
epoch (or ``--epoch``) is read; the summary gives each run's E (meV/atom) and F (meV/A), their ratios to the
reference on the same seed, the mean of those ratios, the ratio of the means, and on how many seeds a ratio is
within ``--tolerance``. Writes ``NAME.json`` and ``NAME.png`` (ratios per seed) and prints a Markdown table:

    python benchmarks/seed_summary.py --seeds 1 2 3 4 --name seed_summary_maxL2_stage2 \\
        --run mace-torch=benchmarks/results/compare_training_maxL2_stage2_mace_seed{seed}.json \\
        --run "symmetric + CG convolution=benchmarks/results/compare_training_maxL2_stage2_symcg_seed{seed}.json" \\
        --run "separate_paths=benchmarks/results/compare_training_maxL2_stage2_symcgp_seed{seed}.json"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402


def parse_run(text: str) -> tuple[str, str, str | None]:
    """``LABEL=PATTERN[:MODEL]`` -> ``(label, pattern, model or None)``."""
    label, sep, rest = text.partition("=")
    if not sep or not label or "{seed}" not in rest:
        raise SystemExit(f"--run wants LABEL=PATTERN[:MODEL] with {{seed}} in PATTERN, got {text!r}")
    return (label, *split_model(rest))


def split_model(text: str) -> tuple[str, str | None]:
    """``FILE.json[:MODEL]`` -> ``(file, model or None)`` (a colon elsewhere in the path stays in it)."""
    head, colon, model = text.rpartition(":")
    if colon and head.endswith(".json") and model:
        return head, model
    return text, None


def final_errors(path: Path, model: str | None, epoch: int | None) -> tuple[float, float, int]:
    """``(E meV/atom, F meV/A, epoch)`` of one model in one ``compare_training.py`` file."""
    if not path.is_file():
        raise SystemExit(f"no such file: {path}")
    models = json.loads(path.read_text())["models"]
    if model is None:
        if len(models) != 1:
            raise SystemExit(f"{path} holds models {sorted(models)}: name one as PATTERN:MODEL")
        model = next(iter(models))
    if model not in models:
        raise SystemExit(f"{path} has no model {model!r} (it has {sorted(models)})")
    epochs = models[model]["epochs"]
    rows = [e for e in epochs if e["epoch"] == epoch] if epoch is not None else epochs[-1:]
    if not rows:
        raise SystemExit(f"{path}: model {model!r} has no epoch {epoch} (it reached {epochs[-1]['epoch']})")
    row = rows[0]
    return row["rmse_e_meV_per_atom"], row["rmse_f_meV_per_A"], row["epoch"]


def summarise(runs: list[tuple[str, str, str | None]], seeds: list[int], epoch: int | None, tolerance: float) -> dict:
    """Errors per run and seed, ratios to the first run, and their summaries."""
    table = {
        label: [final_errors(Path(pattern.format(seed=s)), model, epoch) for s in seeds]
        for label, pattern, model in runs
    }
    reference = np.array([row[:2] for row in table[runs[0][0]]])  # [seeds, (E, F)]
    summary = {}
    for label, _, _ in runs:
        errors = np.array([row[:2] for row in table[label]])
        ratios = errors / reference
        summary[label] = {
            "epochs": [row[2] for row in table[label]],
            "rmse_e_meV_per_atom": errors[:, 0].tolist(),
            "rmse_f_meV_per_A": errors[:, 1].tolist(),
            "ratio_e": ratios[:, 0].tolist(),
            "ratio_f": ratios[:, 1].tolist(),
            "mean_ratio_e": float(ratios[:, 0].mean()),
            "mean_ratio_f": float(ratios[:, 1].mean()),
            "ratio_of_means_e": float(errors[:, 0].mean() / reference[:, 0].mean()),
            "ratio_of_means_f": float(errors[:, 1].mean() / reference[:, 1].mean()),
            "seeds_within_e": int((ratios[:, 0] <= 1 + tolerance).sum()),
            "seeds_within_f": int((ratios[:, 1] <= 1 + tolerance).sum()),
        }
    return summary


def markdown(summary: dict, seeds: list[int]) -> str:
    """One row per run: E / F per seed (ratios in brackets), then the means."""
    head = (
        "| run | " + " | ".join(f"seed {s} E / F" for s in seeds) + " | mean of ratios E / F | ratio of means E / F |"
    )
    lines = [head, "|" + "---|" * (len(seeds) + 3)]
    for label, r in summary.items():
        cells = [
            f"{e:.2f} / {f:.1f} ({re:.2f} / {rf:.2f})"
            for e, f, re, rf in zip(r["rmse_e_meV_per_atom"], r["rmse_f_meV_per_A"], r["ratio_e"], r["ratio_f"])
        ]
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {r['mean_ratio_e']:.2f} / {r['mean_ratio_f']:.2f} | "
            f"{r['ratio_of_means_e']:.2f} / {r['ratio_of_means_f']:.2f} |"
        )
    return "\n".join(lines)


def plot(summary: dict, seeds: list[int], tolerance: float, path: Path) -> None:
    """Ratios to the reference per seed, energies and forces side by side, the tolerance as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(summary)[1:]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    width = 0.8 / max(len(labels), 1)
    for ax, key, title in zip(axes, ("ratio_e", "ratio_f"), ("energy RMSE", "force RMSE")):
        for k, label in enumerate(labels):
            x = np.arange(len(seeds)) + (k - (len(labels) - 1) / 2) * width
            ax.bar(x, summary[label][key], width, label=label)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(1.0 + tolerance, color="black", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(seeds)), [f"seed {s}" for s in seeds])
        ax.set_title(f"{title} / {list(summary)[0]}'s")
    axes[0].set_ylabel("ratio to the reference (same seed)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--run", action="append", required=True, help="LABEL=PATTERN[:MODEL]; the first is the reference"
    )
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--epoch", type=int, default=None, help="epoch to compare (default: each run's last)")
    parser.add_argument("--tolerance", type=float, default=0.1, help="'within' means ratio <= 1 + tolerance")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="seed_summary")
    args = parser.parse_args(argv)
    runs = [parse_run(text) for text in args.run]
    if len(runs) < 2:
        raise SystemExit("give a reference run and at least one more")
    summary = summarise(runs, args.seeds, args.epoch, args.tolerance)
    write_json(args.out / f"{args.name}.json", {"reference": runs[0][0], "seeds": args.seeds,
                                                 "tolerance": args.tolerance, "runs": summary,
                                                 "files": {label: pattern for label, pattern, _ in runs}})  # fmt: skip
    plot(summary, args.seeds, args.tolerance, args.out / f"{args.name}.png")
    print(markdown(summary, args.seeds))


if __name__ == "__main__":
    main()
