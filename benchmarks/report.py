"""Writing benchmark results: JSON replaced atomically, so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: Path, report: dict) -> None:
    """Write ``report`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, path)


def bar_plot(groups: dict[str, dict[str, float]], path: Path, title: str, baseline: str | None = None) -> None:
    """Grouped bars of median times (``groups[group][contender]`` in seconds), log scale, to ``path`` (PNG).

    With ``baseline`` (a contender's name), every other bar is labelled with the baseline's time over its own
    (how many times faster than the baseline it is); groups without the baseline carry no labels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contenders = list(dict.fromkeys(name for times in groups.values() for name in times))
    width = 0.8 / len(contenders)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * len(contenders) ** 0.5 + 2), 4.5))
    for k, name in enumerate(contenders):
        xs = [i + (k - (len(contenders) - 1) / 2) * width for i, times in enumerate(groups.values()) if name in times]
        ms = [times[name] * 1e3 for times in groups.values() if name in times]
        bars = ax.bar(xs, ms, width, label=name)
        if baseline is not None and name != baseline:
            ratios = [times[baseline] / times[name] if baseline in times else None
                      for times in groups.values() if name in times]  # fmt: skip
            labels = [f"{r:.1f}x" if r is not None else "" for r in ratios]
            ax.bar_label(bars, labels=labels, fontsize="x-small", padding=2)
    ax.set_yscale("log")
    ax.set_xticks(
        range(len(groups)),
        list(groups),
        rotation=20 if len(groups) > 4 else 0,
        ha="right" if len(groups) > 4 else "center",
    )
    ax.set_ylabel("time (ms, median)")
    ax.set_title(title + (f"\n(labels: {baseline}'s time / this one's)" if baseline else ""), fontsize="medium")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
