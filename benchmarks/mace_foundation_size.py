"""mace-torch models of a foundation model's size read into gaunt-tp: exact, and how fast on periodic materials?

mace-torch 0.3.16's ScaleShiftMACE with the hyperparameters of the MACE-MP-0 "medium" foundation model (89 elements,
r_max 6 A, 10 Bessel functions, max_ell 3, hidden irreps 128x0e + 128x1o, correlation 3, two residual layers, radial
MLP [64, 64, 64], readout 16x0e), and the same with the kinds of part later foundation models such as MACE-MPA-0 add
(density-normalised interaction blocks, the ZBL pair repulsion, the Agnesi distance transform), with random weights
(perturbed from their initialisation; no model is downloaded here), written to a file, read back and converted with
``gaunt_tp.interop.mace``. Compared in float64 on small periodic cells (rattled silicon, rocksalt MgO and NaCl, and
silicon squeezed to 70% where the ZBL repulsion acts): energies, forces and stress. Then energy, forces and stress
timed side by side (interleaved, medians) on 512-atom cells of silicon and MgO, in float64 and float32 (mace-torch
built in each default dtype, as its calculator does), on ``--threads`` threads.

Writes ``benchmarks/results/mace_foundation_size.json`` and ``.png``. In mace-torch's environment with gaunt-tp beside
it (``pip install --no-deps -e . vesin``):

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 ../mace-venv/bin/python benchmarks/mace_foundation_size.py --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mace_equivalence import mace_batch  # noqa: E402
from report import bar_plot, write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

from gaunt_tp.data import Configuration, ElementTable, collate, to_graph  # noqa: E402
from gaunt_tp.interop.mace import model_from_mace, read_mace_model  # noqa: E402

ZS = list(range(1, 90))  # MACE-MP-0's elements, H to Ac
R_MAX = 6.0
# the two architectures: the interaction blocks (first, later) and the parts of later foundation models
ARCHITECTURES = {
    "MP-0 medium": {"blocks": ("RealAgnosticResidualInteractionBlock",) * 2, "pair_repulsion": False,
                    "distance_transform": "None"},
    "+ density blocks, ZBL, Agnesi": {"blocks": ("RealAgnosticDensityInteractionBlock",
                                                 "RealAgnosticDensityResidualInteractionBlock"),
                                      "pair_repulsion": True, "distance_transform": "Agnesi"},
}  # fmt: skip


def foundation_sized(seed: int, blocks: tuple[str, str], **parts) -> torch.nn.Module:
    """mace-torch's ScaleShiftMACE with MACE-MP-0-medium's hyperparameters, interaction blocks ``blocks`` (first,
    later) and ``parts`` (``pair_repulsion``, ``distance_transform``), random weights, default dtype."""
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = modules.ScaleShiftMACE(
        r_max=R_MAX, num_bessel=10, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes[blocks[1]],
        interaction_cls_first=modules.interaction_classes[blocks[0]], num_interactions=2, num_elements=len(ZS),
        hidden_irreps=o3.Irreps("128x0e + 128x1o"), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=-rng.uniform(0.5, 10.0, len(ZS)), avg_num_neighbors=40.0, atomic_numbers=ZS, correlation=3,
        gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64], atomic_inter_scale=3.0, atomic_inter_shift=-0.1,
        **parts,
    )  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def cells() -> dict[str, Atoms]:
    """Small periodic cells for the comparison, rattled off their lattices."""
    rng = np.random.default_rng(0)
    out = {
        "Si, 64 atoms": bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2),
        "MgO, 64 atoms": bulk("MgO", "rocksalt", a=4.21, cubic=True) * (2, 2, 2),
        "NaCl, 8 atoms, sheared": bulk("NaCl", "rocksalt", a=5.64, cubic=True),
        "Si squeezed to 70%, 8 atoms": bulk("Si", "diamond", a=0.7 * 5.43, cubic=True),
    }
    out["NaCl, 8 atoms, sheared"].set_cell(out["NaCl, 8 atoms, sheared"].cell.array @ np.array(
        [[1.0, 0.05, 0.0], [0.0, 1.0, 0.03], [0.02, 0.0, 1.0]]), scale_atoms=True)  # fmt: skip
    for atoms in out.values():
        atoms.positions += rng.normal(scale=0.2, size=atoms.positions.shape)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of timing per case")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    ours_table = ElementTable(ZS)

    def inputs(atoms: Atoms, dtype: torch.dtype) -> tuple[dict, object]:
        config = Configuration(atomic_numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array,
                               pbc=tuple(bool(p) for p in atoms.pbc))  # fmt: skip
        return mace_batch([config], ZS, R_MAX), collate([to_graph(config, ours_table, R_MAX, dtype)])

    big = {"Si, 512 atoms": bulk("Si", "diamond", a=5.43, cubic=True) * (4, 4, 4),
           "MgO, 512 atoms": bulk("MgO", "rocksalt", a=4.21, cubic=True) * (4, 4, 4)}  # fmt: skip
    for atoms in big.values():
        atoms.positions += np.random.default_rng(1).normal(scale=0.05, size=atoms.positions.shape)
    parameters, rows, timing = {}, [], {}
    for arch, parts in ARCHITECTURES.items():
        torch.set_default_dtype(torch.float64)
        mace = foundation_sized(seed=0, **parts)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(mace, Path(folder) / "mace.model")
            ours = model_from_mace(*read_mace_model(Path(folder) / "mace.model"))
        parameters[arch] = {"mace-torch": sum(p.numel() for p in mace.parameters()),
                            "gaunt-tp": sum(p.numel() for p in ours.parameters())}  # fmt: skip
        print(f"{arch}: parameters mace-torch {parameters[arch]['mace-torch']}, converted "
              f"{parameters[arch]['gaunt-tp']}")  # fmt: skip
        for name, atoms in cells().items():
            theirs_in, ours_in = inputs(atoms, torch.float64)
            theirs = mace(theirs_in, compute_force=True, compute_stress=True)
            mine = ours(ours_in, compute_stress=True)
            row = {"architecture": arch, "cell": name, "atoms": len(atoms),
                   **{f"max_abs_d{key}": float((mine[key] - theirs[key]).abs().max())
                      for key in ("energy", "forces", "stress")},
                   "max_abs_forces": float(theirs["forces"].abs().max())}  # fmt: skip
            rows.append(row)
            print(f"  {name:28s} dE {row['max_abs_denergy']:.1e} eV, dF {row['max_abs_dforces']:.1e} eV/A (|F| up "
                  f"to {row['max_abs_forces']:.2g}), dS {row['max_abs_dstress']:.1e} eV/A^3")  # fmt: skip
        for dtype in (torch.float64, torch.float32):
            torch.set_default_dtype(dtype)  # mace-torch's calculator builds its model and data in the default dtype
            theirs_model, ours_model = mace.to(dtype), ours.to(dtype)
            for name, atoms in big.items():
                theirs_in, ours_in = inputs(atoms, dtype)
                times = time_interleaved(
                    {"mace-torch": lambda: theirs_model(dict(theirs_in), compute_force=True, compute_stress=True),
                     "gaunt-tp": lambda: ours_model(ours_in, compute_stress=True)},
                    device=torch.device("cpu"), budget_s=args.budget, min_rounds=3,
                )  # fmt: skip
                key = f"{arch}: {name}, {str(dtype).removeprefix('torch.')}"
                timing[key] = {**times, "ratio": times["mace-torch"] / times["gaunt-tp"]}
                print(f"energy, forces and stress, {key}: mace-torch {times['mace-torch'] * 1e3:.0f} ms, gaunt-tp "
                      f"{times['gaunt-tp'] * 1e3:.0f} ms: {timing[key]['ratio']:.1f}x", flush=True)  # fmt: skip
    torch.set_default_dtype(torch.float64)
    out = Path(__file__).resolve().parent / "results" / "mace_foundation_size.json"
    write_json(out, {"architectures": ARCHITECTURES, "parameters": parameters, "rows": rows, "timing": timing,
                     "threads": args.threads, "torch": torch.__version__})  # fmt: skip
    groups = {name.replace(": ", "\n"): {k: v for k, v in times.items() if k != "ratio"}
              for name, times in timing.items()}  # fmt: skip
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    bar_plot(groups, out.with_suffix(".png"), f"MACE-MP-0-medium's size, random weights, CPU ({threads}): mace-torch "
             "and its converted model", baseline="mace-torch")  # fmt: skip
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
