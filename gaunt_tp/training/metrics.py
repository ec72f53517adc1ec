"""Loss and error metrics (energies per atom in meV, forces in meV/Angstrom, like MACE's logs)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from gaunt_tp.data.graph import GraphBatch

__all__ = ["ErrorAccumulator", "weighted_loss"]


def weighted_loss(
    batch: GraphBatch, out: dict[str, torch.Tensor], energy_weight: float, forces_weight: float
) -> torch.Tensor:
    """``w_E mean((dE / n_atoms)^2) + w_F mean(|dF|^2)`` with per-configuration weights.

    Labels that are NaN (missing) are left out of their mean.
    """
    atoms = (batch.ptr[1:] - batch.ptr[:-1]).to(out["energy"].dtype)
    has_e = ~torch.isnan(batch.energy)
    de = torch.where(has_e, (out["energy"] - torch.nan_to_num(batch.energy)) / atoms, 0.0)
    loss_e = (batch.weight * de.square()).sum() / has_e.sum().clamp_min(1)
    has_f = ~torch.isnan(batch.forces).any(dim=1)
    df = torch.where(has_f[:, None], out["forces"] - torch.nan_to_num(batch.forces), 0.0)
    loss_f = (batch.weight[batch.batch][:, None] * df.square()).sum() / (3 * has_f.sum().clamp_min(1))
    return energy_weight * loss_e + forces_weight * loss_f


class ErrorAccumulator:
    """Collects per-configuration errors and reports RMSE/MAE overall and per ``config_type``."""

    def __init__(self) -> None:
        self.e: dict[str, list[float]] = defaultdict(list)
        self.f: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, batch: GraphBatch, out: dict[str, torch.Tensor]) -> None:
        atoms = (batch.ptr[1:] - batch.ptr[:-1]).cpu().numpy()
        de = ((out["energy"] - batch.energy).detach().cpu().numpy()) / atoms
        df = (out["forces"] - batch.forces).detach().cpu().numpy()
        for g, kind in enumerate(batch.config_type):
            if np.isfinite(de[g]):
                self.e[kind].append(float(de[g]))
            block = df[int(batch.ptr[g]) : int(batch.ptr[g + 1])]
            if np.isfinite(block).all():
                self.f[kind].append(block.reshape(-1))

    def table(self) -> dict[str, dict[str, float]]:
        """Per ``config_type`` and ``"all"``: n, RMSE and MAE of E (meV/atom) and of F (meV/Angstrom)."""
        kinds = sorted(set(self.e) | set(self.f))
        out = {}
        for kind in [*kinds, "all"]:
            e = np.array(self.e[kind] if kind != "all" else [x for k in kinds for x in self.e[k]])
            fs = self.f[kind] if kind != "all" else [x for k in kinds for x in self.f[k]]
            f = np.concatenate(fs) if fs else np.zeros(0)
            out[kind] = {
                "n": int(max(len(e), len(fs))),
                "rmse_e_meV_per_atom": float(np.sqrt(np.mean(e**2)) * 1e3) if e.size else float("nan"),
                "mae_e_meV_per_atom": float(np.mean(np.abs(e)) * 1e3) if e.size else float("nan"),
                "rmse_f_meV_per_A": float(np.sqrt(np.mean(f**2)) * 1e3) if f.size else float("nan"),
                "mae_f_meV_per_A": float(np.mean(np.abs(f)) * 1e3) if f.size else float("nan"),
            }
        return out
