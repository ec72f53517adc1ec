"""Does GauntMACE with MACE's blocks compute mace-torch's function? Weights copied from a mace-torch model.

A mace-torch 0.3.16 ScaleShiftMACE (2 layers, 4 channels, max_L 1, max_ell 2, correlation 3, radial MLP [8, 8], H C
O; first block ``RealAgnosticInteractionBlock`` or ``RealAgnosticResidualInteractionBlock``) gets random weights;
they are copied, tensor by tensor, into GauntMACE with ``conv_blocks="e3nn"``, ``product_blocks="symmetric"``,
``separate_paths=True`` and the matching ``first_self_connection``, and both models evaluate three ethanol
configurations in float64. Reported: the largest energy and force differences,

- with gaunt-tp's SiLU normalisation (``1 / sqrt(E[silu(z)^2])`` by quadrature) and with e3nn's (``normalize2mom``,
  a Monte Carlo estimate over 10^6 seeded samples, 0.16% larger), which mace-torch's radial MLP and readout use;
- with the many-body weights of every degree nu, or those of one nu alone (the others zero).

It writes ``mace_equivalence.json``. mace-torch pins e3nn 0.4.4: run it in mace-torch's environment with gaunt-tp
installed beside it (``pip install --no-deps -e . vesin``):

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 ../mace-venv/bin/python benchmarks/mace_equivalence.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_json  # noqa: E402

from gaunt_tp.data import ElementTable, collate, read_configurations, to_graph  # noqa: E402
from gaunt_tp.nn import GauntMACE, ModelConfig  # noqa: E402
from gaunt_tp.nn.activation import silu_second_moment  # noqa: E402

ZS, E0S = [1, 6, 8], [-13.6, -1030.0, -2040.0]
SIZE = {"r_max": 4.0, "num_channels": 4, "max_L": 1, "max_ell": 2, "correlation": 3, "num_radial_basis": 4,
        "radial_mlp": (8, 8), "avg_num_neighbors": 5.0, "energy_scale": 1.7, "energy_shift": -0.3}  # fmt: skip
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ethanol" / "train.xyz"


def mace_model(first: str, seed: int) -> torch.nn.Module:
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    c = SIZE["num_channels"]
    model = modules.ScaleShiftMACE(
        r_max=SIZE["r_max"], num_bessel=SIZE["num_radial_basis"], num_polynomial_cutoff=5, max_ell=SIZE["max_ell"],
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes[first], num_interactions=2, num_elements=len(ZS),
        hidden_irreps=o3.Irreps(f"{c}x0e + {c}x1o"), MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.array(E0S),
        avg_num_neighbors=SIZE["avg_num_neighbors"], atomic_numbers=ZS, correlation=SIZE["correlation"],
        gate=torch.nn.functional.silu, radial_MLP=list(SIZE["radial_mlp"]), atomic_inter_scale=SIZE["energy_scale"],
        atomic_inter_shift=SIZE["energy_shift"],
    ).to(torch.float64)  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def copied(mace: torch.nn.Module, first: str, silu_constant: float | None) -> GauntMACE:
    """GauntMACE with ``mace``'s weights; ``silu_constant``: the SiLU normalisation to use (None: gaunt-tp's)."""
    config = ModelConfig(atomic_numbers=tuple(ZS), e0s=tuple(E0S), correlation=SIZE["correlation"],
                         conv_blocks="e3nn", product_blocks="symmetric", separate_paths=True,
                         first_self_connection=first == "RealAgnosticResidualInteractionBlock",
                         **{k: v for k, v in SIZE.items() if k != "correlation"})  # fmt: skip
    model = GauntMACE(config).to(torch.float64)
    theirs = mace.state_dict()
    state = dict(model.state_dict())  # e0s and the Bessel frequencies: gaunt-tp's, from the config
    state["embedding.weight"] = theirs["node_embedding.linear.weight"]
    for i in range(2):
        src, dst = f"interactions.{i}.", f"layers.{i}."
        state[dst + "linear_up.weight"] = theirs[src + "linear_up.weight"]
        for k in range(len(SIZE["radial_mlp"]) + 1):
            state[dst + f"radial.weights.{k}"] = theirs[src + f"conv_tp_weights.layer{k}.weight"]
        state[dst + "linear_a.weight"] = theirs[src + "linear.weight"]
        # MACE's skip_tp: the self-connection of a residual block, the per-element map of the messages otherwise
        state[dst + ("skip.weight" if dst + "skip.weight" in state else "element_mix.weight")] = theirs[
            src + "skip_tp.weight"
        ]
        state[dst + "linear_out.weight"] = theirs[f"products.{i}.linear.weight"]
        chains = []  # per output irrep: nu = 1, 2, 3 (MACE holds them as weights[1], weights[0], weights_max)
        for contraction in mace.products[i].symmetric_contractions.contractions:
            chains += [contraction.weights[1], contraction.weights[0], contraction.weights_max]
        state[dst + "product.chain_weights"] = torch.cat([w.detach() for w in chains], dim=1)
    state["layers.0.readout.weight"] = theirs["readouts.0.linear.weight"]
    state["layers.1.readout.0.weight"] = theirs["readouts.1.linear_1.weight"]
    state["layers.1.readout.2.weight"] = theirs["readouts.1.linear_2.weight"]
    model.load_state_dict(state)
    if silu_constant is not None:
        for layer in model.layers:
            layer.radial.scales = [s / silu_second_moment() ** -0.5 * silu_constant if i else s
                                   for i, s in enumerate(layer.radial.scales)]  # fmt: skip
        model.layers[-1].readout[1].scale = silu_constant
    return model


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_default_dtype(torch.float64)  # mace-torch's data and models take the default dtype
    from e3nn.math import normalize2mom
    from mace import data, tools
    from mace.tools.torch_geometric.batch import Batch

    configs = read_configurations(DATA, index=":3")
    ours_in = collate([to_graph(c, ElementTable(ZS), SIZE["r_max"], torch.float64) for c in configs])
    table = tools.AtomicNumberTable(ZS)
    items = [data.AtomicData.from_config(data.Configuration(atomic_numbers=c.atomic_numbers, positions=c.positions,
                                                            cell=c.cell, pbc=c.pbc, properties={}, property_weights={}),
                                         z_table=table, cutoff=SIZE["r_max"]) for c in configs]  # fmt: skip
    theirs_in = Batch.from_data_list(items).to_dict()
    e3nn_constant = float(normalize2mom(torch.nn.functional.silu).cst)
    rows = []
    for first in ("RealAgnosticInteractionBlock", "RealAgnosticResidualInteractionBlock"):
        for kept in ((1, 2, 3), (1,), (2,), (3,)):
            mace = mace_model(first, seed=0)
            with torch.no_grad():
                for product in mace.products:
                    for contraction in product.symmetric_contractions.contractions:
                        for nu, w in ((3, contraction.weights_max), (2, contraction.weights[0]),
                                      (1, contraction.weights[1])):  # fmt: skip
                            if nu not in kept:
                                w.zero_()
            theirs = mace(dict(theirs_in), compute_force=True)
            for constant_name, constant in (("gaunt-tp (quadrature)", None), ("e3nn (Monte Carlo)", e3nn_constant)):
                ours = copied(mace, first, constant)(ours_in)
                row = {"first_block": first, "nu_kept": list(kept), "silu_constant": constant_name,
                       "max_abs_dE_eV": float((ours["energy"] - theirs["energy"]).abs().max()),
                       "max_abs_dF_eV_per_A": float((ours["forces"] - theirs["forces"]).abs().max()),
                       "max_abs_F_eV_per_A": float(theirs["forces"].abs().max())}  # fmt: skip
                rows.append(row)
                print(
                    f"{first:38s} nu {str(kept):9s} {constant_name:22s} dE {row['max_abs_dE_eV']:.2e} eV, "
                    f"dF {row['max_abs_dF_eV_per_A']:.2e} eV/A (|F| up to {row['max_abs_F_eV_per_A']:.2f})"
                )
    write_json(
        Path(__file__).resolve().parent / "results" / "mace_equivalence.json",
        {
            "size": SIZE,
            "e3nn_silu_constant": e3nn_constant,
            "gaunt_tp_silu_constant": silu_second_moment() ** -0.5,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
