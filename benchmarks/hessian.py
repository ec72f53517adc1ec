"""Hessians: ``GauntCalculator.get_hessian`` against mace-torch's own Hessian and ASE's finite differences.

A mace-torch 0.3.16 ScaleShiftMACE with random weights at the size of docs/benchmarks.md's whole-model comparisons
(64 channels, max_L 1, max_ell 3, correlation 3, H C N O, first block ``RealAgnosticInteractionBlock``) is converted
with ``gaunt-tp import-mace``'s functions; on one 3BPA molecule (27 atoms, 81 rows), float64:

- the two Hessians, mace-torch's (``compute_hessian=True``: rows by ``torch.vmap`` in chunks of 16, ``[3n, n, 3]``
  reshaped to ``[3n, 3n]``) and gaunt-tp's, compared entry by entry, with their time side by side (interleaved
  medians, ``--threads`` threads), and mace-torch's own fallback, one backward pass per row, as gaunt-tp does it;
- ASE's ``Vibrations`` (central differences, ``nfree`` 2 and 4, step 0.005 A) on the gaunt-tp calculator: its
  harmonic frequencies against those of the exact Hessian, and its time (untimed by the interleaving: one run each).

Writes ``hessian.json`` and ``hessian.png``. mace-torch pins e3nn 0.4.4: run it in mace-torch's environment with
gaunt-tp installed beside it (``pip install --no-deps -e . vesin``):

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 ../mace-venv/bin/python benchmarks/hessian.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mace_equivalence import DATA_3BPA, TIMED, mace_batch, mace_model  # noqa: E402
from report import bar_plot, write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

from gaunt_tp.calculator import GauntCalculator  # noqa: E402
from gaunt_tp.data import read_configurations  # noqa: E402
from gaunt_tp.interop.mace import model_from_mace, read_mace_model  # noqa: E402

ZS = [1, 6, 7, 8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of side-by-side timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    torch.set_default_dtype(torch.float64)  # mace-torch's data and models take the default dtype
    from ase import Atoms
    from ase.vibrations import Vibrations, VibrationsData

    mace = mace_model(TIMED, "RealAgnosticInteractionBlock", seed=1, zs=ZS)
    with tempfile.TemporaryDirectory() as folder:
        torch.save(mace, Path(folder) / "mace.model")
        calc = GauntCalculator(model_from_mace(*read_mace_model(Path(folder) / "mace.model")))
    config = read_configurations(DATA_3BPA, index=":1")[0]
    atoms = Atoms(numbers=config.atomic_numbers, positions=config.positions)
    n = len(atoms)
    batch = mace_batch([config], ZS, TIMED["r_max"])

    def theirs() -> np.ndarray:
        out = mace(dict(batch), compute_force=True, compute_hessian=True)
        return out["hessian"].detach().reshape(3 * n, 3 * n).numpy()

    def theirs_by_rows() -> np.ndarray:  # mace-torch's fallback: one backward pass per row, as gaunt-tp does
        from mace.modules.utils import compute_hessians_loop

        inputs = dict(batch)
        inputs["positions"] = inputs["positions"].clone().requires_grad_(True)
        out = mace(inputs, compute_force=True, training=True)
        return compute_hessians_loop(out["forces"], inputs["positions"]).reshape(3 * n, 3 * n).numpy()

    ours = calc.get_hessian(atoms)
    reference = theirs()
    assert np.abs(theirs_by_rows() - reference).max() < 1e-10  # mace-torch's two ways agree
    difference = float(np.abs(ours - reference).max())
    print(f"Hessian, one 3BPA molecule: max |gaunt-tp - mace-torch| {difference:.1e} eV/A^2 "
          f"(entries up to {np.abs(reference).max():.1f}); symmetric to {np.abs(ours - ours.T).max():.1e}")  # fmt: skip
    # gaunt-tp's time includes its neighbour list (the calculator's call, as a user makes it); mace-torch's batch
    # is built once above, so the ratio is conservative
    contenders = {"mace-torch": theirs, "mace-torch, row by row": theirs_by_rows,
                  "gaunt-tp": lambda: calc.get_hessian(atoms)}  # fmt: skip
    times = time_interleaved(contenders,
                             device=torch.device("cpu"), budget_s=args.budget, min_rounds=3, warmup=1)  # fmt: skip
    print(f"time: mace-torch {times['mace-torch']:.2f} s (row by row {times['mace-torch, row by row']:.2f} s), "
          f"gaunt-tp {times['gaunt-tp']:.2f} s: {times['mace-torch'] / times['gaunt-tp']:.1f}x "
          f"({times['mace-torch, row by row'] / times['gaunt-tp']:.1f}x)")  # fmt: skip

    exact = VibrationsData.from_2d(atoms, ours).get_frequencies()
    order = np.argsort(np.abs(exact))[6:]  # the six smallest: translations and rotations
    finite = {}
    atoms.calc = calc
    for nfree in (2, 4):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            vib = Vibrations(atoms, name=str(Path(folder) / "vib"), delta=0.005, nfree=nfree)
            vib.run()
            seconds = time.perf_counter() - start
            frequencies = vib.get_frequencies()
        gap = float(np.abs(frequencies[np.argsort(np.abs(frequencies))[6:]] - exact[order]).max())
        finite[f"ASE finite differences of gaunt-tp forces, nfree {nfree}"] = {"seconds": seconds, "max_abs_dfrequency_cm1": gap}
        print(f"ASE Vibrations nfree {nfree}: {seconds:.2f} s, frequencies within {gap:.1e} cm^-1 of the exact "
              "Hessian's")  # fmt: skip
    report = {"size": TIMED, "atoms": n, "threads": args.threads, "max_abs_dH_eV_per_A2": difference,
              "max_abs_H_eV_per_A2": float(np.abs(reference).max()), "seconds": times,
              "ratio": times["mace-torch"] / times["gaunt-tp"], "finite_differences": finite,
              "torch": torch.__version__}  # fmt: skip
    out = Path(__file__).resolve().parent / "results" / "hessian.json"
    write_json(out, report)
    groups = {"Hessian, one 3BPA molecule (81 rows)": times,  # medians; ASE's runs once each, unlabelled
              "ASE Vibrations (one run each)": {k: v["seconds"] for k, v in finite.items()}}  # fmt: skip
    bar_plot(groups, out.with_suffix(".png"), f"Hessian, float64, CPU ({args.threads} thread(s))",
             baseline="mace-torch")  # fmt: skip
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
