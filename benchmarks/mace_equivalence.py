"""mace-torch models read into gaunt-tp (``gaunt_tp.interop.mace``): the same energies and forces?

mace-torch 0.3.16 ScaleShiftMACE models with random weights (perturbed from their initialisation) are written to a
file, read back with :func:`gaunt_tp.interop.mace.read_mace_model`, converted with ``model_from_mace`` and compared
with mace-torch on five ethanol configurations in float64. Sizes: a small one (4 channels, max_L 1, max_ell 2,
correlation 3, radial MLP [8, 8]), MACE's usual shape (16 channels, max_L 2, max_ell 3, correlation 3, radial MLP
[64, 64, 64]), three layers, correlation 2 and scalar hidden features (8 channels), each with the first block
``RealAgnosticInteractionBlock`` (mace-torch's ``--model MACE``) and ``RealAgnosticResidualInteractionBlock``. Also
reported: the same conversion with gaunt-tp's exact SiLU normalisation instead of the model's (e3nn's Monte Carlo
estimate of it, 0.16% larger), to show what that constant is worth. And energy, forces and stress of a periodic,
sheared cell (the small size).

Then the time of energy and forces, mace-torch against the converted model, side by side (interleaved, medians), in
float64 on ``--threads`` threads, at the size of docs/benchmarks.md's whole-model comparisons (64 channels, max_L 1,
max_ell 3, H C N O, first block ``RealAgnosticInteractionBlock``): one 3BPA molecule (an MD step) and five at once.

Writes ``mace_equivalence.json`` and ``mace_equivalence.png`` (the times). mace-torch pins e3nn 0.4.4: run it in
mace-torch's environment with gaunt-tp installed beside it (``pip install --no-deps -e . vesin``):

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 ../mace-venv/bin/python benchmarks/mace_equivalence.py
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import bar_plot, write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

from gaunt_tp.data import Configuration, ElementTable, collate, read_configurations, to_graph  # noqa: E402
from gaunt_tp.interop.mace import model_from_mace, read_mace_model  # noqa: E402
from gaunt_tp.nn.activation import silu_factor  # noqa: E402

ZS, E0S = [1, 6, 8], [-13.6, -1030.0, -2040.0]
E0S_BY_Z = {1: -13.6, 6: -1030.0, 7: -1485.0, 8: -2040.0}
SIZES = {
    "small": {"channels": 4, "max_L": 1, "max_ell": 2, "radial_mlp": [8, 8], "r_max": 4.0, "num_bessel": 4},
    "mace": {"channels": 16, "max_L": 2, "max_ell": 3, "radial_mlp": [64, 64, 64], "r_max": 5.0, "num_bessel": 8},
    "three layers": {
        "channels": 8,
        "max_L": 1,
        "max_ell": 2,
        "radial_mlp": [16],
        "r_max": 4.5,
        "num_bessel": 6,
        "layers": 3,
    },
    "correlation 2": {
        "channels": 8,
        "max_L": 2,
        "max_ell": 3,
        "radial_mlp": [16],
        "r_max": 4.5,
        "num_bessel": 6,
        "correlation": 2,
    },
    "scalars": {"channels": 8, "max_L": 0, "max_ell": 3, "radial_mlp": [16], "r_max": 4.5, "num_bessel": 6},
}
# the size of the whole-model comparisons in docs/benchmarks.md, for the timing
TIMED = {"channels": 64, "max_L": 1, "max_ell": 3, "radial_mlp": [64, 64, 64], "r_max": 5.0, "num_bessel": 8}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ethanol" / "train.xyz"
DATA_3BPA = Path(__file__).resolve().parents[2] / "shared" / "data" / "3bpa" / "train_300K.xyz"


def mace_batch(
    configs: list[Configuration], zs: list[int], cutoff: float, head: str | None = None, heads: list[str] | None = None
) -> dict:
    """mace-torch's input batch (its ``AtomicData`` collated, as a dict) of ``configs`` with elements ``zs`` (``head``
    of ``heads`` for a multi-head model; mace-torch's modules are imported here, in its environment)."""
    from mace import data, tools
    from mace.tools.torch_geometric.batch import Batch

    table = tools.AtomicNumberTable(zs)
    items = [data.AtomicData.from_config(
        data.Configuration(atomic_numbers=c.atomic_numbers, positions=c.positions, cell=c.cell, pbc=tuple(c.pbc),
                           properties={}, property_weights={}, head=head or "Default"),
        z_table=table, cutoff=cutoff, heads=heads) for c in configs]  # fmt: skip
    return Batch.from_data_list(items).to_dict()


def mace_model(
    size: dict,
    first: str,
    seed: int,
    zs: list[int] = ZS,
    pair_repulsion: bool = False,
    heads: int = 1,
    distance_transform: str = "None",
    interaction: str = "RealAgnosticResidualInteractionBlock",
) -> torch.nn.Module:
    """mace-torch's ScaleShiftMACE of ``size`` with random weights (``heads`` > 1: heads 'h0', 'h1', ... with E0s,
    scales and shifts of their own)."""
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    hidden = o3.Irreps([(size["channels"], (l, (-1) ** l)) for l in range(size["max_L"] + 1)])
    e0s = np.array([[E0S_BY_Z[z] + 0.3 * h for z in zs] for h in range(heads)])
    per_head = {"atomic_energies": e0s[0], "atomic_inter_scale": 1.7, "atomic_inter_shift": -0.3}  # one head
    if heads > 1:
        per_head = {"atomic_energies": e0s, "atomic_inter_scale": [1.7 - 0.4 * h for h in range(heads)],
                    "atomic_inter_shift": [-0.3 + 0.2 * h for h in range(heads)],
                    "heads": [f"h{h}" for h in range(heads)]}  # fmt: skip
    model = modules.ScaleShiftMACE(
        r_max=size["r_max"], num_bessel=size["num_bessel"], num_polynomial_cutoff=5, max_ell=size["max_ell"],
        interaction_cls=modules.interaction_classes[interaction],
        interaction_cls_first=modules.interaction_classes[first], num_interactions=size.get("layers", 2),
        num_elements=len(zs), hidden_irreps=hidden, MLP_irreps=o3.Irreps("16x0e"), avg_num_neighbors=5.0,
        atomic_numbers=zs, correlation=size.get("correlation", 3), gate=torch.nn.functional.silu,
        radial_MLP=size["radial_mlp"], pair_repulsion=pair_repulsion, distance_transform=distance_transform,
        **per_head,
    ).to(torch.float64)  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of timing per case")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    torch.set_default_dtype(torch.float64)  # mace-torch's data and models take the default dtype
    configs = read_configurations(DATA, index=":5")
    rows = []
    for size_name, size in SIZES.items():
        ours_in = collate([to_graph(c, ElementTable(ZS), size["r_max"], torch.float64) for c in configs])
        theirs_in = mace_batch(configs, ZS, size["r_max"])
        for first in ("RealAgnosticInteractionBlock", "RealAgnosticResidualInteractionBlock"):
            mace = mace_model(size, first, seed=0)
            theirs = mace(dict(theirs_in), compute_force=True)
            with tempfile.TemporaryDirectory() as folder:
                torch.save(mace, Path(folder) / "mace.model")
                state, options = read_mace_model(Path(folder) / "mace.model")
            for constant in ("the model's (e3nn's)", "gaunt-tp's exact"):
                if constant != "the model's (e3nn's)":
                    options = {**options, "silu_scale": silu_factor()}
                ours = model_from_mace(state, options)(ours_in)
                row = {"size": size_name, "first_block": first, "silu_constant": constant,
                       "silu_scale": options["silu_scale"], "parameters": sum(p.numel() for p in mace.parameters()),
                       "max_abs_dE_eV": float((ours["energy"] - theirs["energy"]).abs().max()),
                       "max_abs_dF_eV_per_A": float((ours["forces"] - theirs["forces"]).abs().max()),
                       "max_abs_F_eV_per_A": float(theirs["forces"].abs().max())}  # fmt: skip
                rows.append(row)
                print(f"{size_name:13s} {first:37s} SiLU {constant:20s} dE {row['max_abs_dE_eV']:.1e} eV, dF "
                      f"{row['max_abs_dF_eV_per_A']:.1e} eV/A (|F| up to {row['max_abs_F_eV_per_A']:.2f})")  # fmt: skip
    periodic = _periodic()
    timing = _timing(args.budget)
    report = {"sizes": SIZES, "rows": rows, "periodic": periodic, "timed_size": TIMED, "threads": args.threads,
              "timing": timing}  # fmt: skip
    out = Path(__file__).resolve().parent / "results" / "mace_equivalence.json"
    write_json(out, report)
    groups = {name: {k: v for k, v in times.items() if k != "ratio"} for name, times in timing.items()}
    bar_plot(groups, out.with_suffix(".png"), "energy and forces, float64, CPU: mace-torch and its converted model",
             baseline="mace-torch")  # fmt: skip


def _periodic() -> list[dict]:
    """Energy, forces and stress of a periodic, sheared 9-atom cell (the small size, both first blocks)."""
    size = SIZES["small"]
    cell = np.array([[6.0, 0.3, 0.0], [0.0, 5.5, 0.2], [0.1, 0.0, 6.2]])
    box = Configuration(atomic_numbers=np.array([8, 1, 1, 6, 1, 1, 8, 1, 1]), cell=cell, pbc=(True, True, True),
                        positions=np.random.default_rng(0).random((9, 3)) * 5.5)  # fmt: skip

    rows = []
    for first in ("RealAgnosticInteractionBlock", "RealAgnosticResidualInteractionBlock"):
        mace = mace_model(size, first, seed=0)
        theirs = mace(mace_batch([box], ZS, size["r_max"]), compute_force=True, compute_stress=True)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(mace, Path(folder) / "mace.model")
            model = model_from_mace(*read_mace_model(Path(folder) / "mace.model"))
        ours = model(collate([to_graph(box, ElementTable(ZS), size["r_max"], torch.float64)]), compute_stress=True)
        row = {"first_block": first, **{f"max_abs_d{key}": float((ours[key] - theirs[key]).abs().max())
                                        for key in ("energy", "forces", "stress")}}  # fmt: skip
        rows.append(row)
        print(
            f"periodic cell, {first}: dE {row['max_abs_denergy']:.1e} eV, dF {row['max_abs_dforces']:.1e} eV/A, "
            f"dS {row['max_abs_dstress']:.1e} eV/A^3 (|S| up to {float(theirs['stress'].abs().max()):.1e})"
        )
    return rows


def _timing(budget: float) -> dict:
    """Median seconds of energy and forces for mace-torch and its converted model, one and five molecules."""
    zs = [1, 6, 7, 8]
    mace = mace_model(TIMED, "RealAgnosticInteractionBlock", seed=1, zs=zs)
    with tempfile.TemporaryDirectory() as folder:
        torch.save(mace, Path(folder) / "mace.model")
        ours = model_from_mace(*read_mace_model(Path(folder) / "mace.model"))
    out = {}
    molecules = read_configurations(DATA_3BPA, index=":5")
    for count in (1, 5):
        picked = molecules[:count]
        ours_in = collate([to_graph(c, ElementTable(zs), TIMED["r_max"], torch.float64) for c in picked])
        theirs_in = mace_batch(picked, zs, TIMED["r_max"])
        times = time_interleaved(
            {"mace-torch": lambda: mace(dict(theirs_in), compute_force=True), "gaunt-tp": lambda: ours(ours_in)},
            device=torch.device("cpu"), budget_s=budget,
        )  # fmt: skip
        out[f"{count} 3BPA molecule(s)"] = {**times, "ratio": times["mace-torch"] / times["gaunt-tp"]}
        print(f"energy and forces, {count} 3BPA: mace-torch {times['mace-torch'] * 1e3:.2f} ms, gaunt-tp "
              f"{times['gaunt-tp'] * 1e3:.2f} ms: {times['mace-torch'] / times['gaunt-tp']:.1f}x")  # fmt: skip
    return out


if __name__ == "__main__":
    main()
