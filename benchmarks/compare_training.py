"""Accuracy after the same number of epochs: GauntMACE against mace-torch's ScaleShiftMACE, one training loop.

Both models: r_max 5 A, 8 Bessel functions, polynomial cutoff p = 5, max_ell 3, 64 channels, max_L 1 (hidden
irreps 64x0e + 64x1o; ``--max_L 2`` adds 64x2e), correlation 3, 2 interactions, radial MLP [64, 64, 64], readout
MLP 16x0e, float64. They are trained by the same loop on the same configurations in the same order:

- data: the train/validation split of ``gaunt-tp train`` (``gaunt_tp.data.train_valid_split``, valid fraction
  0.1, ``--seed``; seed 1 holds out the 50 configurations of the run in docs/benchmarks.md);
- E0s from the isolated atoms; MACE's shift (mean interaction energy per atom) and scale (RMS force component)
  and average number of neighbours, computed once from the training set and given to both models;
- loss ``1 * mean((dE / n_atoms)^2) + 100 * mean(dF^2)`` (mace-torch's ``WeightedEnergyForcesLoss`` and
  gaunt-tp's ``weighted_loss``, written once here for both);
- Adam (amsgrad, lr 0.01, weight decay 5e-7 on every parameter), batch 5, the same shuffled order each epoch,
  EMA 0.99 (``torch.optim.swa_utils``) evaluated after every epoch, ReduceLROnPlateau on the EMA validation loss.

Writes ``compare_training.json`` (per-epoch validation RMSE, E in meV/atom and F in meV/A, and wall times) after
every epoch, and ``compare_training.png`` (learning curves). The models train one after the other, each on
``--threads`` threads. mace-torch pins e3nn 0.4.4: run this in an environment with mace-torch and gaunt-tp
(``pip install --no-deps -e .``):

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 OMP_NUM_THREADS=1 ../mace-venv/bin/python benchmarks/compare_training.py \\
        --epochs 10
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conv_variants import EdgeProjections  # noqa: E402
from many_body_variants import AllPaths, Intermediate, MaceProduct, OddIntermediates  # noqa: E402
from report import write_json  # noqa: E402

import gaunt_tp  # noqa: E402
from gaunt_tp.data import (  # noqa: E402
    Configuration,
    ElementTable,
    collate,
    read_any,
    resolve_e0s,
    shift_and_scale,
    to_graph,
    train_valid_split,
)
from gaunt_tp.nn import GauntMACE, ModelConfig, SymmetricContraction  # noqa: E402

SIZE = {"r_max": 5.0, "max_ell": 3, "num_channels": 64, "max_L": 1, "correlation": 3, "num_interactions": 2,
        "num_radial_basis": 8, "num_cutoff_basis": 5, "radial_mlp": (64, 64, 64), "readout_hidden": 16}  # fmt: skip


class Contender:
    """A model, its training and validation items, and how to batch and call it.

    ``step(items) -> (energy [graphs], forces [atoms, 3], ref energy, ref forces, atoms per graph [graphs])``.
    """

    def __init__(self, model: torch.nn.Module, train: list, valid: list, collate_fn: Callable, call: Callable):
        self.model, self.train, self.valid, self.collate_fn, self.call = model, train, valid, collate_fn, call

    def run(self, model: torch.nn.Module, items: list, *, training: bool) -> tuple[torch.Tensor, ...]:
        return self.call(model, self.collate_fn(items), training)


def loss_fn(e: torch.Tensor, f: torch.Tensor, e_ref: torch.Tensor, f_ref: torch.Tensor, n: torch.Tensor,
            energy_weight: float, forces_weight: float) -> torch.Tensor:  # fmt: skip
    """``w_E mean((dE / n_atoms)^2) + w_F mean(dF^2)``, MACE's ``WeightedEnergyForcesLoss`` with unit weights."""
    return energy_weight * ((e - e_ref) / n).square().mean() + forces_weight * (f - f_ref).square().mean()


def gaunt_contender(
    train: list[Configuration],
    valid: list[Configuration],
    stats: dict,
    conv_blocks: str = "gaunt",
    radial_per_input: bool = False,
    num_products: int = 1,
    product_blocks: str = "gaunt",
    separate_paths: bool = False,
) -> Contender:
    """GauntMACE; ``conv_blocks="e3nn"`` swaps in MACE's per-path Clebsch-Gordan convolution,
    ``radial_per_input`` gives the Gaunt convolution one radial weight per input irrep as well,
    ``num_products`` sums that many products in each many-body block."""
    table = ElementTable(stats["atomic_numbers"])
    config = ModelConfig(atomic_numbers=tuple(stats["atomic_numbers"]), e0s=tuple(stats["e0s"]),
                         avg_num_neighbors=stats["avg_num_neighbors"], energy_shift=stats["shift"],
                         energy_scale=stats["scale"], conv_blocks=conv_blocks,
                         radial_per_input=radial_per_input, num_products=num_products,
                         product_blocks=product_blocks, separate_paths=separate_paths, **SIZE)  # fmt: skip
    model = GauntMACE(config).to(torch.float64)

    def call(m, b, training):  # noqa: ANN001, ANN202
        out = m(b, compute_forces=True, training=training)
        return out["energy"], out["forces"], b.energy, b.forces, (b.ptr[1:] - b.ptr[:-1]).to(torch.float64)

    graphs = lambda cs: [to_graph(c, table, SIZE["r_max"], torch.float64) for c in cs]  # noqa: E731
    return Contender(model, graphs(train), graphs(valid), collate, call)


def replace_products(contender: Contender, block: Callable[[torch.nn.Module], torch.nn.Module]) -> Contender:
    """The contender with each layer's many-body block replaced by ``block(old_block)`` (float64; the
    diagnostic blocks are in ``many_body_variants.py``)."""
    for layer in contender.model.layers:
        layer.product = block(layer.product).to(torch.float64)
    return contender


def basis_weighted(block: torch.nn.Module) -> SymmetricContraction:
    """A SymmetricContraction weighting its 29 basis polynomials directly (``weights_on="basis"``) instead of
    MACE's 86 coupling chains, in place of ``block``."""
    return SymmetricContraction(block.irreps_in, block.irreps_out, correlation=block.correlation,
                                num_elements=block.num_elements, weights_on="basis")  # fmt: skip


def edge_projected(contender: Contender, stats: dict) -> Contender:
    """The contender with the projection term of ``conv_variants.EdgeProjections`` in each layer whose node
    features have irreps of degree >= 1 (a diagnostic)."""
    for i, layer in enumerate(contender.model.layers):
        if any(ir.l > 0 and ir.p == (-1) ** ir.l for _, ir in layer.conv.irreps_node):
            contender.model.layers[i] = EdgeProjections(
                layer, stats["avg_num_neighbors"], SIZE["num_radial_basis"], SIZE["radial_mlp"]
            )
    return contender


def mace_contender(train: list[Configuration], valid: list[Configuration], stats: dict) -> Contender:
    from e3nn import o3
    from mace import data, modules, tools
    from mace.tools.torch_geometric.batch import Batch

    hidden = o3.Irreps([(SIZE["num_channels"], ir) for _, ir in o3.Irreps.spherical_harmonics(SIZE["max_L"])])
    model = modules.ScaleShiftMACE(
        r_max=SIZE["r_max"], num_bessel=SIZE["num_radial_basis"], num_polynomial_cutoff=SIZE["num_cutoff_basis"],
        max_ell=SIZE["max_ell"], interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=SIZE["num_interactions"], num_elements=len(stats["atomic_numbers"]),
        hidden_irreps=hidden, MLP_irreps=o3.Irreps(f"{SIZE['readout_hidden']}x0e"),
        atomic_energies=np.array(stats["e0s"]), avg_num_neighbors=stats["avg_num_neighbors"],
        atomic_numbers=list(stats["atomic_numbers"]), correlation=SIZE["correlation"], gate=torch.nn.functional.silu,
        radial_MLP=list(SIZE["radial_mlp"]), atomic_inter_scale=stats["scale"], atomic_inter_shift=stats["shift"],
    ).to(torch.float64)  # fmt: skip
    table = tools.AtomicNumberTable(list(stats["atomic_numbers"]))

    def item(c: Configuration):  # noqa: ANN202
        mc = data.Configuration(atomic_numbers=c.atomic_numbers, positions=c.positions, cell=c.cell, pbc=c.pbc,
                                properties={"energy": c.energy, "forces": c.forces},
                                property_weights={"energy": 1.0, "forces": 1.0})  # fmt: skip
        return data.AtomicData.from_config(mc, z_table=table, cutoff=SIZE["r_max"])

    def call(m, b, training):  # noqa: ANN001, ANN202
        out = m(b, training=training, compute_force=True)
        return out["energy"], out["forces"], b["energy"], b["forces"], (b["ptr"][1:] - b["ptr"][:-1]).to(torch.float64)

    return Contender(model, [item(c) for c in train], [item(c) for c in valid],
                     lambda items: Batch.from_data_list(items).to_dict(), call)  # fmt: skip


# name -> (plot label, builder(train, valid, stats))
CONTENDERS: dict[str, tuple[str, Callable[..., Contender]]] = {
    "gaunt": ("gaunt-tp GauntMACE", gaunt_contender),
    "gaunt-cg": ("GauntMACE + CG convolution", lambda *a: gaunt_contender(*a, conv_blocks="e3nn")),
    "gaunt-rpi": ("GauntMACE, radial per input irrep", lambda *a: gaunt_contender(*a, radial_per_input=True)),
    "gaunt-k4": ("GauntMACE, 4 many-body products", lambda *a: gaunt_contender(*a, num_products=4)),
    "gaunt-k8": ("GauntMACE, 8 many-body products", lambda *a: gaunt_contender(*a, num_products=8)),
    "gaunt-sym": ("GauntMACE, product_blocks='symmetric'", lambda *a: gaunt_contender(*a, product_blocks="symmetric")),
    "gaunt-sym-basis": (
        "GauntMACE, symmetric, basis weights",
        lambda *a: replace_products(gaunt_contender(*a), basis_weighted),
    ),
    "gaunt-sym-rpi": (
        "GauntMACE, symmetric, radial per input irrep",
        lambda *a: gaunt_contender(*a, product_blocks="symmetric", radial_per_input=True),
    ),
    "gaunt-sym-cg": (
        "GauntMACE, symmetric, CG convolution",
        lambda *a: gaunt_contender(*a, product_blocks="symmetric", conv_blocks="e3nn"),
    ),
    "gaunt-sym-cgp": (
        "GauntMACE, symmetric, CG convolution, paths apart",
        lambda *a: gaunt_contender(*a, product_blocks="symmetric", conv_blocks="e3nn", separate_paths=True),
    ),
    "gaunt-sym-proj": (
        "GauntMACE, symmetric, edge projections",
        lambda *a: edge_projected(gaunt_contender(*a, product_blocks="symmetric"), a[2]),
    ),
    "gaunt-sym-rpi-proj": (
        "GauntMACE, symmetric + rpi, edge projections",
        lambda *a: edge_projected(gaunt_contender(*a, product_blocks="symmetric", radial_per_input=True), a[2]),
    ),
    "gaunt-rpi-k4": (
        "GauntMACE, radial per input, 4 products",
        lambda *a: gaunt_contender(*a, radial_per_input=True, num_products=4),
    ),
    "gaunt-all": ("GauntMACE, every Gaunt many-body path", lambda *a: replace_products(gaunt_contender(*a), AllPaths)),
    "gaunt-maceprod": (
        "GauntMACE + mace-torch many-body",
        lambda *a: replace_products(gaunt_contender(*a), MaceProduct),
    ),
    "gaunt-inter": (
        "GauntMACE, intermediate degrees weighted",
        lambda *a: replace_products(gaunt_contender(*a), Intermediate),
    ),
    "gaunt-odd": (
        "GauntMACE + odd intermediate paths",
        lambda *a: replace_products(gaunt_contender(*a), OddIntermediates),
    ),
    "mace": ("mace-torch MACE", mace_contender),
}


def evaluate(c: Contender, model: torch.nn.Module, args: argparse.Namespace, energy_weight: float) -> dict:
    """Validation loss (with ``energy_weight``), RMSEs (E meV/atom, F meV/A) and mean energy error (its constant
    part, meV/atom) of ``model``, in batches of 10."""
    de, df, loss, graphs = [], [], 0.0, 0
    for s in range(0, len(c.valid), 10):
        e, f, e_ref, f_ref, n = c.run(model, c.valid[s : s + 10], training=False)
        loss += float(loss_fn(e, f, e_ref, f_ref, n, energy_weight, args.forces_weight).detach()) * len(n)
        graphs += len(n)
        de.append(((e - e_ref) / n).detach().numpy())
        df.append((f - f_ref).detach().numpy().reshape(-1))
    rms = lambda x: float(np.sqrt(np.mean(np.concatenate(x) ** 2)) * 1e3)  # noqa: E731
    return {"valid_loss": loss / graphs, "rmse_e_meV_per_atom": rms(de), "rmse_f_meV_per_A": rms(df),
            "mean_e_meV_per_atom": float(np.mean(np.concatenate(de)) * 1e3)}  # fmt: skip


def train(name: str, c: Contender, args: argparse.Namespace, record: Callable[[list[dict]], None]) -> None:
    model = c.model
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, amsgrad=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.8, patience=args.scheduler_patience)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay))
    rows: list[dict] = []
    stage_two = args.stage_two_start if args.stage_two_start is not None else args.epochs
    for epoch in range(1, args.epochs + 1):
        model.train()
        two = epoch > stage_two  # MACE's stage two: energy weight up, learning rate down, plateau schedule off
        if two:
            for group in optimizer.param_groups:
                group["lr"] = args.stage_two_lr
        energy_weight = args.stage_two_energy_weight if two else args.energy_weight
        order = torch.randperm(len(c.train), generator=torch.Generator().manual_seed(args.seed * 100003 + epoch))
        started, running, steps = time.perf_counter(), 0.0, 0
        for s in range(0, len(order), args.batch_size):
            optimizer.zero_grad(set_to_none=True)
            e, f, e_ref, f_ref, n = c.run(model, [c.train[i] for i in order[s : s + args.batch_size]], training=True)
            loss = loss_fn(e, f, e_ref, f_ref, n, energy_weight, args.forces_weight)
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
            running, steps = running + float(loss.detach()), steps + 1
        train_s = time.perf_counter() - started
        ema.module.eval()
        started = time.perf_counter()
        errors = evaluate(c, ema.module, args, energy_weight)
        if not two:
            scheduler.step(errors["valid_loss"])
        rows.append({"epoch": epoch, "train_loss": running / steps, **errors, "lr": optimizer.param_groups[0]["lr"],
                     "train_seconds": train_s, "eval_seconds": time.perf_counter() - started})  # fmt: skip
        print(f"{name} epoch {epoch}: E {errors['rmse_e_meV_per_atom']:.2f} meV/atom, F {errors['rmse_f_meV_per_A']:.2f}"
              f" meV/A, train loss {running / steps:.4g}, {train_s:.0f} s", flush=True)  # fmt: skip
        record(rows)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, (label, _) in CONTENDERS.items():
        if name not in report["models"]:
            continue
        rows = report["models"][name]["epochs"]
        for ax, key in zip(axes, ("rmse_e_meV_per_atom", "rmse_f_meV_per_A")):
            ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], "o-", label=label)
    for ax, title in zip(axes, ("energy RMSE (meV/atom)", "force RMSE (meV/A)")):
        ax.set(xlabel="epoch", yscale="log", title=f"3BPA 300 K validation\n{title}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def versions() -> dict:
    import e3nn
    import mace

    root = Path(gaunt_tp.__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    return {"torch": torch.__version__, "e3nn": e3nn.__version__, "mace-torch": mace.__version__,
            "gaunt_tp": str(root), "gaunt_tp_commit": commit.strip(), "python": sys.version.split()[0]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/3bpa/train_300K.xyz")
    parser.add_argument("--E0s", default="../shared/data/3bpa/iso_atoms.xyz")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["gaunt", "mace"],
        choices=list(CONTENDERS),
        help="gaunt-cg: GauntMACE with MACE's Clebsch-Gordan convolution (per-path radial weights); "
        "gaunt-rpi: the Gaunt convolution with radial weights per input irrep too; "
        "-k4: four products summed in each many-body block (num_products=4); "
        "gaunt-sym: gaunt-tp's SymmetricContraction (MACE's many-body function space) as the many-body block "
        "(-basis: its basis weights instead of MACE's chain weights; -rpi: with radial_per_input; "
        "-cg: with MACE's CG convolution; -proj: with each node irrep's projection on the edge sent on as a scalar, "
        "conv_variants.py, a diagnostic); "
        "gaunt-all: a free combination of every Gaunt coupling path in the many-body block (a diagnostic); "
        "gaunt-maceprod: mace-torch's symmetric contraction in place of the Gaunt many-body block (a diagnostic); "
        "gaunt-inter: the third body order's pair product weighted per intermediate degree (a diagnostic); "
        "gaunt-odd: a third-order term through parity-odd intermediate degrees added to each block (a diagnostic)",
    )
    parser.add_argument("--max_L", type=int, default=1, choices=(0, 1, 2, 3), help="largest hidden degree, both models")
    parser.add_argument("--limit", type=int, default=None, help="use only the first LIMIT configurations")
    parser.add_argument("--seed", type=int, default=1, help="draws the split, the initial weights and the order")
    parser.add_argument(
        "--init_seed", type=int, default=None, help="another seed for the initial weights only (default: --seed)"
    )
    parser.add_argument("--valid_fraction", type=float, default=0.1)
    parser.add_argument("--batch_size", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--weight_decay", type=float, default=5e-7)
    parser.add_argument("--ema_decay", type=float, default=0.99)
    parser.add_argument("--scheduler_patience", type=int, default=5)
    parser.add_argument("--energy_weight", type=float, default=1.0)
    parser.add_argument("--forces_weight", type=float, default=100.0)
    parser.add_argument(
        "--stage_two_start",
        type=int,
        default=None,
        help="after this many epochs, MACE's stage two for both models: energy weight --stage_two_energy_weight, "
        "learning rate --stage_two_lr, no plateau schedule (mace-torch's --swa --start_swa; off by default)",
    )
    parser.add_argument("--stage_two_energy_weight", type=float, default=1000.0)
    parser.add_argument("--stage_two_lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="compare_training", help="stem of the JSON and PNG written")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    SIZE["max_L"] = args.max_L  # the contender builders read the model size from SIZE
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)  # mace-torch builds its tables and data in the default dtype

    configs = read_any(args.data)[: args.limit]
    train_cfg, valid_cfg = train_valid_split(configs, args.valid_fraction, args.seed)
    zs = sorted({int(z) for c in configs for z in c.atomic_numbers})
    e0s = resolve_e0s(args.E0s, train_cfg, zs)
    shift, scale = shift_and_scale(train_cfg, e0s)
    table = ElementTable(zs)
    graphs = [to_graph(c, table, SIZE["r_max"], torch.float64) for c in train_cfg]
    avg = float(np.mean([g.edge_index.shape[1] / g.positions.shape[0] for g in graphs]))
    stats = {"atomic_numbers": zs, "e0s": [e0s[z] for z in zs], "shift": shift, "scale": scale,
             "avg_num_neighbors": avg}  # fmt: skip
    report = {
        "question": "validation RMSE of gaunt-tp's GauntMACE and mace-torch's MACE after the same number of epochs",
        "data": args.data, "n_train": len(train_cfg), "n_valid": len(valid_cfg),
        "valid_sources": [c.source for c in valid_cfg], "model_size": {**SIZE, "radial_mlp": list(SIZE["radial_mlp"])},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "statistics": stats, "versions": versions(), "dtype": "float64",
        "timing_note": "wall times are informative only: 2 shared CPU cores, another job running beside this one",
        "models": {},
    }  # fmt: skip
    out_json, out_png = args.out / f"{args.name}.json", args.out / f"{args.name}.png"
    print(f"{len(train_cfg)} train / {len(valid_cfg)} valid; shift {shift:.5g} eV, scale {scale:.5g} eV/A, "
          f"avg neighbours {avg:.4g}", flush=True)  # fmt: skip
    for name in args.models:
        torch.manual_seed(args.seed if args.init_seed is None else args.init_seed)
        contender = CONTENDERS[name][1](train_cfg, valid_cfg, stats)
        params = sum(p.numel() for p in contender.model.parameters())
        report["models"][name] = {"parameters": params, "epochs": []}

        def record(rows: list[dict], name: str = name) -> None:
            report["models"][name]["epochs"] = rows
            write_json(out_json, report)
            plot(report, out_png)

        train(name, contender, args, record)
    final = {n: report["models"][n]["epochs"][-1] for n in report["models"]}
    if "gaunt" in final and "mace" in final:
        report["final_ratio_gaunt_over_mace"] = {
            k: final["gaunt"][k] / final["mace"][k] for k in ("rmse_e_meV_per_atom", "rmse_f_meV_per_A")
        }
        print("final gaunt/mace:", report["final_ratio_gaunt_over_mace"], flush=True)
        write_json(out_json, report)


if __name__ == "__main__":
    main()
