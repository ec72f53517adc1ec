"""Learning curve and energy/force (and stress) parity plots (PNG) for a run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gaunt_tp.training.records import read_history

__all__ = ["learning_curve", "parity_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve(history_csv: Path, out: Path, stage_two_after: int | None = None) -> None:
    """Training and validation loss (with the learning rate on a second axis) and validation RMSEs against the
    epoch; a dashed line where stage two starts (after ``stage_two_after`` epochs), where the loss changes its
    weights."""
    history = read_history(history_csv)
    if not history:
        return
    plt = _pyplot()
    column = history.__getitem__
    epochs = history["epoch"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].semilogy(epochs, column("train_loss"), label="train loss")
    axes[0].semilogy(epochs, column("valid_loss"), label="valid loss")
    axes[0].set_xlabel("epoch")
    axes[1].semilogy(epochs, column("rmse_e_meV_per_atom"), label="RMSE E (meV/atom)")
    axes[1].semilogy(epochs, column("rmse_f_meV_per_A"), label="RMSE F (meV/A)")
    if "rmse_stress_meV_per_A3" in history:  # trained with the stress loss
        axes[1].semilogy(epochs, column("rmse_stress_meV_per_A3"), label="RMSE stress (meV/A^3)")
    axes[1].set_xlabel("epoch")
    if stage_two_after is not None and stage_two_after < epochs[-1]:  # not for a run stopped before it
        for ax in axes:
            ax.axvline(stage_two_after + 0.5, color="grey", linestyle="--", linewidth=1, label="stage two")
    handles = axes[0].get_legend_handles_labels()
    if "lr" in history:  # histories of every run since the first version have it
        rate = axes[0].twinx()
        rate.semilogy(epochs, column("lr"), color="grey", linestyle=":", label="learning rate")
        rate.set_ylabel("learning rate")
        handles = [a + b for a, b in zip(handles, rate.get_legend_handles_labels())]
    axes[0].legend(*handles)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


_PARITY_TITLES = {
    "energy": "energy per atom (eV)",
    "forces": "force components (eV/A)",
    "stress": "stress components (eV/A^3)",
}


def parity_plots(values: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], out: Path) -> None:
    """Predicted against reference values, one panel per quantity (energy per atom, force components, and stress
    components where any split has them), one colour per split. ``values[split]`` is
    :meth:`gaunt_tp.training.metrics.ErrorAccumulator.values` of that split."""
    quantities = [q for q in _PARITY_TITLES if any(q in v and v[q][0].size for v in values.values())]
    if not quantities:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(quantities), figsize=(5 * len(quantities), 4.5), squeeze=False)
    for ax, quantity in zip(axes[0], quantities):
        for split, kept in values.items():
            if quantity in kept and kept[quantity][0].size:
                ref, pred = kept[quantity]
                ax.scatter(ref, pred, s=6 if quantity == "energy" else 2, label=split)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        lo, hi = min(x0, y0), max(x1, y1)  # the same range on both axes, so the diagonal is y = x in view
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"reference {_PARITY_TITLES[quantity]}")
        ax.set_ylabel(f"predicted {_PARITY_TITLES[quantity]}")
        ax.tick_params(axis="x", labelrotation=30)  # long labels (total energies per atom) would overlap
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
