"""Loss and error metrics (energies per atom in meV, forces in meV/Angstrom, stress in meV/Angstrom^3, like MACE's
logs)."""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import NamedTuple

import numpy as np
import torch

from gaunt_tp.data.graph import GraphBatch, cell_volumes

__all__ = [
    "ErrorAccumulator",
    "LabelCounts",
    "LossWeights",
    "force_delta_factors",
    "has_stress_labels",
    "label_counts",
    "weighted_loss",
]


class LossWeights(NamedTuple):
    """The weights of :func:`weighted_loss`'s terms, Huber's delta and the ``universal`` switch, in its argument order
    (``weighted_loss(batch, out, *weights)``); 0 leaves a term out (``huber_delta`` 0: squared errors)."""

    energy: float
    forces: float
    stress: float = 0.0
    virials: float = 0.0
    huber_delta: float = 0.0
    universal: bool = False

    @property
    def needs_stress(self) -> bool:
        """Whether the loss has a stress or virials term, so that the model must predict the stress."""
        return bool(self.stress or self.virials)


class LabelCounts(NamedTuple):
    """The sizes of :func:`weighted_loss`'s means: configurations with an energy label, atoms with a force label and
    configurations with a stress label."""

    energies: int
    forces: int
    stresses: int


def label_counts(graph: GraphBatch) -> LabelCounts:
    """The labels ``graph`` holds (missing labels are NaN), as :func:`weighted_loss` counts them."""
    return LabelCounts(
        int((~torch.isnan(graph.energy)).sum()),
        int((~torch.isnan(graph.forces).any(dim=1)).sum()),
        int((~torch.isnan(graph.stress).flatten(1).any(dim=1)).sum()),
    )


def has_stress_labels(graphs: list[GraphBatch]) -> bool:
    """Whether any of ``graphs`` carries a stress label (missing ones are NaN)."""
    return any(bool(torch.isfinite(g.stress).all()) for g in graphs)


def weighted_loss(
    batch: GraphBatch,
    out: dict[str, torch.Tensor],
    energy_weight: float,
    forces_weight: float,
    stress_weight: float = 0.0,
    virials_weight: float = 0.0,
    huber_delta: float = 0.0,
    universal: bool = False,
    *,
    counts: LabelCounts | None = None,
) -> torch.Tensor:
    """``w_E mean((dE / n_atoms)^2) + w_F mean(|dF|^2) [+ w_S mean(|dS|^2)] [+ w_V mean(|dS V / n_atoms|^2)]``
    with per-configuration weights.

    Units eV, eV/Angstrom, eV/Angstrom^3, eV (MACE's ``weighted``, ``stress`` and ``virials`` losses; the virials
    are ``-stress * V``, V the cell's volume). The stress and virials terms, taken when their weight is not 0, need
    ``out["stress"] [B, 3, 3]``; their means run over the 9 components of the configurations with a stress label.
    Labels that are NaN (missing) are left out of their mean. ``huber_delta > 0``: Huber's function of each error
    component in place of its square, ``x^2 / 2`` up to ``|x| = delta`` and linear beyond (MACE's ``huber`` loss).
    ``universal`` (with ``huber_delta > 0``; MACE's ``universal`` loss): each atom's force components have the delta
    ``huber_delta * f(|F_ref|)`` instead, :func:`force_delta_factors` ``f`` shrinking it for large reference forces.

    ``counts`` (:class:`LabelCounts`), when given, replace the numbers of labels in ``batch`` as the denominators of
    the means. Data-parallel training passes the global batch's, so that the processes' losses add up to that
    batch's loss (each process holds a part of its sums, not a mean of its own).
    """
    n_e, n_f, n_s = counts if counts is not None else (None, None, None)
    atoms = (batch.ptr[1:] - batch.ptr[:-1]).to(out["energy"].dtype)
    has_e = ~torch.isnan(batch.energy)
    de = torch.where(has_e, (out["energy"] - torch.nan_to_num(batch.energy)) / atoms, 0.0)
    penalty = functools.partial(_huber, delta=huber_delta) if huber_delta else torch.square
    loss_e = (batch.weight * penalty(de)).sum() / _count(has_e, n_e)
    has_f = ~torch.isnan(batch.forces).any(dim=1)
    df = torch.where(has_f[:, None], out["forces"] - torch.nan_to_num(batch.forces), 0.0)
    if universal and huber_delta:
        sizes = torch.linalg.vector_norm(torch.nan_to_num(batch.forces), dim=1)
        penalty_f = _huber(df, huber_delta * force_delta_factors(sizes)[:, None])
    else:
        penalty_f = penalty(df)
    loss_f = (batch.weight[batch.batch][:, None] * penalty_f).sum() / (3 * _count(has_f, n_f))
    loss = energy_weight * loss_e + forces_weight * loss_f
    if stress_weight or virials_weight:
        has_s = ~torch.isnan(batch.stress).flatten(1).any(dim=1)
        ds = torch.where(has_s[:, None, None], out["stress"] - torch.nan_to_num(batch.stress), 0.0)
        labelled = 9 * _count(has_s, n_s)
        if stress_weight:
            loss = loss + stress_weight * (batch.weight * penalty(ds).flatten(1).sum(1)).sum() / labelled
        if virials_weight:
            dv = ds * (cell_volumes(batch.cell) / atoms)[:, None, None]  # the virials' error per atom (-V dS)
            loss = loss + virials_weight * (batch.weight * penalty(dv).flatten(1).sum(1)).sum() / labelled
    return loss


def _count(mask: torch.Tensor, given: int | None) -> torch.Tensor | int:
    """A mean's denominator: ``given`` when not None, else the ``True`` entries of ``mask``; at least 1. (A tensor
    in the second case: read back to Python, it would stall a GPU and break CUDA graph capture.)"""
    return mask.sum().clamp_min(1) if given is None else max(given, 1)


def force_delta_factors(sizes: torch.Tensor) -> torch.Tensor:
    """The factors of Huber's delta per atom in MACE's ``universal`` loss, from the sizes ``[n]`` (eV/Angstrom) of
    the reference forces: 1 below 100 eV/Angstrom, 0.7 below 200, 0.4 below 300 and 0.1 from 300 on (the errors of
    atoms under very large forces count linearly sooner). Shape ``[n]``, the dtype of ``sizes``."""
    # from Python numbers alone: no tensor copied to the device, which a CUDA graph capture would forbid
    factor = torch.full_like(sizes, 0.1)
    for edge, value in ((300.0, 0.4), (200.0, 0.7), (100.0, 1.0)):
        factor = torch.where(sizes < edge, value, factor)
    return factor


def _huber(x: torch.Tensor, delta: float | torch.Tensor) -> torch.Tensor:
    """Huber's function, elementwise: ``x^2 / 2`` where ``|x| <= delta``, ``delta (|x| - delta / 2)`` beyond (``delta``
    a number or a tensor that broadcasts against ``x``)."""
    size = x.abs()
    return torch.where(size <= delta, 0.5 * x.square(), delta * (size - 0.5 * delta))


class ErrorAccumulator:
    """Collects per-configuration errors and reports RMSE/MAE overall and per ``config_type``.

    Stress errors are collected when the outputs hold ``stress`` and the configuration a stress label. With
    ``keep_values`` it also keeps the labelled reference and predicted values themselves, for parity plots
    (:meth:`values`).
    """

    def __init__(self, keep_values: bool = False) -> None:
        self.e: dict[str, list[float]] = defaultdict(list)  # per atom
        self.e_total: dict[str, list[float]] = defaultdict(list)  # per configuration
        self.f: dict[str, list[np.ndarray]] = defaultdict(list)
        self.s: dict[str, list[np.ndarray]] = defaultdict(list)
        self.n: dict[str, int] = defaultdict(int)  # configurations with any label
        self._values: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] | None = {} if keep_values else None

    @classmethod
    def merged(cls, parts: list[ErrorAccumulator]) -> ErrorAccumulator:
        """One accumulator with the errors of ``parts``, in their order, and their kept values where every part
        kept them."""
        out = cls(keep_values=all(part._values is not None for part in parts))
        for part in parts:
            for name in ("e", "e_total", "f", "s"):
                for kind, errors in getattr(part, name).items():
                    getattr(out, name)[kind].extend(errors)
            for kind, count in part.n.items():
                out.n[kind] += count
            if out._values is not None:
                for name, (refs, preds) in part._values.items():
                    mine = out._values.setdefault(name, ([], []))
                    mine[0].extend(refs)
                    mine[1].extend(preds)
        return out

    def add(self, batch: GraphBatch, out: dict[str, torch.Tensor]) -> None:
        atoms = (batch.ptr[1:] - batch.ptr[:-1]).cpu().numpy()
        if self._values is not None:
            self._keep(batch, out, atoms)
        # a label is there where the reference is finite (missing ones are NaN); a NaN or inf prediction for it is
        # kept, so that the table shows it rather than leaving that configuration out
        has_e = torch.isfinite(batch.energy).cpu().numpy()
        de = (out["energy"] - batch.energy).detach().cpu().numpy()
        has_f = torch.isfinite(batch.forces).cpu().numpy()
        df = (out["forces"] - batch.forces).detach().cpu().numpy()
        stress = "stress" in out
        has_s = torch.isfinite(batch.stress).cpu().numpy().reshape(-1, 9) if stress else None
        ds = (out["stress"] - batch.stress).detach().cpu().numpy().reshape(-1, 9) if stress else None
        for g, kind in enumerate(batch.config_type):
            labelled = False
            if has_e[g]:
                self.e_total[kind].append(float(de[g]))
                self.e[kind].append(float(de[g] / atoms[g]))
                labelled = True
            nodes = slice(int(batch.ptr[g]), int(batch.ptr[g + 1]))
            if has_f[nodes].all():
                self.f[kind].append(df[nodes].reshape(-1))
                labelled = True
            if ds is not None and has_s[g].all():
                self.s[kind].append(ds[g])
                labelled = True
            self.n[kind] += labelled

    def _keep(self, batch: GraphBatch, out: dict[str, torch.Tensor], atoms: np.ndarray) -> None:
        pairs = {"energy": (batch.energy, out["energy"]), "forces": (batch.forces, out["forces"])}
        if "stress" in out:
            pairs["stress"] = (batch.stress, out["stress"])
        for name, (ref, pred) in pairs.items():
            ref = ref.detach().cpu().to(torch.float64).numpy()
            pred = pred.detach().cpu().to(torch.float64).numpy()
            if name == "energy":
                ref, pred = ref / atoms, pred / atoms
            labelled = np.isfinite(ref)
            refs, preds = self._values.setdefault(name, ([], []))
            refs.append(ref[labelled])
            preds.append(pred[labelled])

    def values(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The kept (reference, predicted) values, float64, flat, labelled entries only: ``"energy"`` per atom
        (eV), ``"forces"`` components (eV/Angstrom) and, where the outputs held it, ``"stress"`` components
        (eV/Angstrom^3). Needs ``keep_values=True``."""
        if self._values is None:
            raise RuntimeError("values() needs ErrorAccumulator(keep_values=True)")
        return {k: (np.concatenate(r), np.concatenate(p)) for k, (r, p) in self._values.items()}

    def table(self) -> dict[str, dict[str, float]]:
        """Per ``config_type`` and ``"all"``: n, RMSE and MAE of E per atom (meV/atom) and per configuration (meV,
        the total energy: what rMD17 and 3BPA papers quote), and of F (meV/Angstrom); with stress errors collected,
        also of the stress (meV/Angstrom^3, over its 9 components)."""
        kinds = sorted(set(self.e) | set(self.f) | set(self.s))
        rms = lambda x: float(np.sqrt(np.mean(x**2)) * 1e3) if x.size else float("nan")  # noqa: E731
        mae = lambda x: float(np.mean(np.abs(x)) * 1e3) if x.size else float("nan")  # noqa: E731
        out = {}
        for kind in [*kinds, "all"]:
            e = np.array(self.e[kind] if kind != "all" else [x for k in kinds for x in self.e[k]])
            e_total = np.array(self.e_total[kind] if kind != "all" else [x for k in kinds for x in self.e_total[k]])
            fs = self.f[kind] if kind != "all" else [x for k in kinds for x in self.f[k]]
            ss = self.s[kind] if kind != "all" else [x for k in kinds for x in self.s[k]]
            f = np.concatenate(fs) if fs else np.zeros(0)
            out[kind] = {
                "n": int(self.n[kind] if kind != "all" else sum(self.n[k] for k in kinds)),
                "rmse_e_meV_per_atom": rms(e),
                "mae_e_meV_per_atom": mae(e),
                "rmse_e_meV": rms(e_total),
                "mae_e_meV": mae(e_total),
                "rmse_f_meV_per_A": rms(f),
                "mae_f_meV_per_A": mae(f),
            }
            if any(self.s.values()):
                stress = np.concatenate(ss) if ss else np.zeros(0)
                out[kind].update(rmse_stress_meV_per_A3=rms(stress), mae_stress_meV_per_A3=mae(stress))
        return out
