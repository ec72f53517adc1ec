"""Write the mace-torch fixture of ``tests/interop/test_mace.py``: small mace-torch models and what they predict.

Seven mace-torch 0.3.16 ScaleShiftMACE models with random weights (``benchmarks/mace_equivalence.py``'s small size: 4
channels, max_L 1, max_ell 2, correlation 3, H C O), one per first block (``RealAgnosticInteractionBlock``, as
mace-torch's ``--model MACE`` builds it, and ``RealAgnosticResidualInteractionBlock``), three with the ZBL pair
repulsion (``--pair_repulsion``; evaluated on the molecules squeezed to 75%, where it acts), without and with each
``--distance_transform`` ('Agnesi' and 'Soft'), one with MACE's density-normalised blocks (as MACE-MPA-0: the
ZBL repulsion and 'Agnesi' too) and one of two heads, read back from a model file by
:func:`gaunt_tp.interop.mace.read_mace_model`; saved with mace-torch's energies and forces on the first three
ethanol configurations of shared/data, so that the tests check the conversion against mace-torch without it.
For the two plain models also mace-torch's node features and invariant descriptors of the three (what its
calculator's ``get_descriptors`` returns) and the Hessian of the third (``compute_hessian``, ``[27, 27]``).
``np.savez_compressed`` (the coupling tensors are mostly zeros), no pickled code.

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 ../mace-venv/bin/python benchmarks/mace_fixture.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mace_equivalence import DATA, SIZES, ZS, mace_batch, mace_model  # noqa: E402

from gaunt_tp.data import read_configurations  # noqa: E402
from gaunt_tp.interop.mace import read_mace_model  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "interop" / "mace_small.npz"
SQUEEZE = 0.75


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_default_dtype(torch.float64)

    size = SIZES["small"]
    configs = read_configurations(DATA, index=":3")

    def batch(configs: list, head: str | None = None) -> dict:
        return mace_batch(configs, ZS, size["r_max"], head, heads=None if head is None else ["h0", "h1"])

    # the ZBL models see the molecules squeezed to 75%: bonds shorter than the sums of covalent radii, where it acts
    squeezed = [dataclasses.replace(c, positions=SQUEEZE * c.positions) for c in configs]
    arrays, meta = {"zbl/positions": np.concatenate([c.positions for c in squeezed])}, {}
    residual = "RealAgnosticResidualInteractionBlock"
    for name, first, pair, transform in (
        ("plain", "RealAgnosticInteractionBlock", False, "None"),
        ("residual", residual, False, "None"),
        ("zbl", residual, True, "None"),
        ("agnesi", residual, True, "Agnesi"),
        ("soft", residual, True, "Soft"),
        ("density", "RealAgnosticDensityInteractionBlock", True, "Agnesi"),  # MACE-MPA-0's kinds of part
    ):
        later = "RealAgnosticDensityResidualInteractionBlock" if name == "density" else residual
        model = mace_model(size, first, seed=0, pair_repulsion=pair, distance_transform=transform, interaction=later)
        out = model(batch(squeezed if pair else configs), compute_force=True)

        with tempfile.TemporaryDirectory() as folder:
            torch.save(model, Path(folder) / "mace.model")
            state, options = read_mace_model(Path(folder) / "mace.model")
        for key, value in state.items():
            arrays[f"{name}/state/{key}"] = value.detach().numpy()
        arrays[f"{name}/energy"] = out["energy"].detach().numpy()
        arrays[f"{name}/forces"] = out["forces"].detach().numpy()
        if name in ("plain", "residual"):  # what its ASE calculator adds: invariant descriptors, the Hessian
            from mace.modules.utils import extract_invariant

            invariants = extract_invariant(out["node_feats"], 2, size["channels"], size["max_L"])
            arrays[f"{name}/descriptors"] = invariants.detach().numpy()
            arrays[f"{name}/node_feats"] = out["node_feats"].detach().numpy()  # get_descriptors(invariants_only=False)
            hessian = model(batch(configs[2:3]), compute_force=True, compute_hessian=True)["hessian"]
            arrays[f"{name}/hessian"] = hessian.detach().reshape(27, 27).numpy()
        meta[name] = options
    # the residual model's blocks with two heads (E0s, scales, shifts and readouts of their own): each head's predictions
    model = mace_model(size, "RealAgnosticResidualInteractionBlock", seed=0, heads=2)
    heads = [model(batch(configs, head), compute_force=True) for head in model.heads]
    arrays["heads/energy"] = np.stack([o["energy"].detach().numpy() for o in heads])
    arrays["heads/forces"] = np.stack([o["forces"].detach().numpy() for o in heads])
    with tempfile.TemporaryDirectory() as folder:
        torch.save(model, Path(folder) / "mace.model")
        state, meta["heads"] = read_mace_model(Path(folder) / "mace.model")
    arrays.update({f"heads/state/{key}": value.detach().numpy() for key, value in state.items()})
    meta["configurations"] = f"{DATA.parent.name}/{DATA.name}, index :3"
    arrays["meta"] = np.array(json.dumps(meta))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"{OUT}: {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
