"""Learning curve and energy/force (and stress) parity plots (PNG) for a run folder."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

__all__ = ["learning_curve", "parity_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve(history_csv: Path, out: Path, stage_two_after: int | None = None) -> None:
    """Training and validation loss and validation RMSEs against the epoch; a dashed line where stage two
    starts (after ``stage_two_after`` epochs), where the loss changes its weights."""
    rows = list(csv.DictReader(history_csv.open()))
    if not rows:
        return
    plt = _pyplot()
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].semilogy(epochs, [float(r["train_loss"]) for r in rows], label="train loss")
    axes[0].semilogy(epochs, [float(r["valid_loss"]) for r in rows], label="valid loss")
    axes[0].set_xlabel("epoch")
    axes[1].semilogy(epochs, [float(r["rmse_e_meV_per_atom"]) for r in rows], label="RMSE E (meV/atom)")
    axes[1].semilogy(epochs, [float(r["rmse_f_meV_per_A"]) for r in rows], label="RMSE F (meV/A)")
    if "rmse_stress_meV_per_A3" in rows[0]:  # trained with the stress loss
        axes[1].semilogy(epochs, [float(r["rmse_stress_meV_per_A3"]) for r in rows], label="RMSE stress (meV/A^3)")
    axes[1].set_xlabel("epoch")
    if stage_two_after is not None and stage_two_after < epochs[-1]:  # not for a run stopped before it
        for ax in axes:
            ax.axvline(stage_two_after + 0.5, color="grey", linestyle="--", linewidth=1, label="stage two")
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def parity_plots(model: torch.nn.Module, splits: dict[str, list], out: Path, batch_size: int = 16) -> None:
    """Predicted against reference energies per atom and force components, one colour per split; a third panel of
    stress components where the configurations have stress labels."""
    from gaunt_tp.data import collate
    from gaunt_tp.training.metrics import has_stress_labels

    plt = _pyplot()
    stress = has_stress_labels([g for graphs in splits.values() for g in graphs])
    titles = ["energy per atom (eV)", "force components (eV/A)"] + (["stress components (eV/A^3)"] if stress else [])
    fig, axes = plt.subplots(1, len(titles), figsize=(5 * len(titles), 4.5))
    for name, graphs in splits.items():
        ref, pred = [[] for _ in titles], [[] for _ in titles]
        for start in range(0, len(graphs), batch_size):  # bounded memory for large sets
            batch = collate(graphs[start : start + batch_size])
            with torch.enable_grad():
                predicted = model(batch, compute_forces=True, compute_stress=stress)
            atoms = (batch.ptr[1:] - batch.ptr[:-1]).to(batch.energy.dtype)
            pairs = [(batch.energy / atoms, predicted["energy"] / atoms), (batch.forces, predicted["forces"])]
            if stress:
                pairs.append((batch.stress, predicted["stress"]))
            for k, (r, p) in enumerate(pairs):
                ref[k].append(r.flatten().cpu())
                pred[k].append(p.detach().flatten().cpu())
        for k, ax in enumerate(axes):
            ax.scatter(torch.cat(ref[k]), torch.cat(pred[k]), s=6 if k == 0 else 2, label=name)  # NaN: not drawn
    for ax, title in zip(axes, titles):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {title}")
        ax.set_ylabel(f"predicted {title}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
