"""Whole-model speed: GauntMACE against mace-torch's MACE with the same hyperparameters, side by side.

Both models: r_max 5 A, 8 Bessel functions, polynomial cutoff p = 5, max_ell 3, 64 channels, hidden
irreps 0e (+ 1o for max_L 1, + 2e for max_L 2), correlation 3, 2 interactions, radial MLP
[64, 64, 64], elements H C N O. Timed (median of interleaved runs, first calls excluded):

- ``train_step``: a training step on 5 3BPA configurations (energies, forces with create_graph, a
  loss on both, backward);
- ``md_3bpa``: energy and forces of one 3BPA molecule (an MD step's model call);
- ``md_1000``: energy and forces of a periodic box of 37 3BPA molecules (999 atoms).

``--variants gaunt symmetric symmetric+rpi`` times GauntMACE variants in the same run (``gaunt``: the
default; ``symmetric``: ``product_blocks="symmetric"``, :class:`gaunt_tp.nn.SymmetricContraction`, MACE's
many-body function space; ``symmetric+rpi``: that and ``radial_per_input``; ``symmetric+cg``: that and MACE's
per-path convolution, ``conv_blocks="e3nn"``, in gaunt-tp's coupled-form kernels).

mace-torch pins e3nn 0.4.4: run this in an environment with mace-torch and gaunt-tp
(``pip install --no-deps -e .``), with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``:

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 ../mace-venv/bin/python benchmarks/bench_potential.py --dtype float32

``--compile`` adds each variant compiled with ``torch.compile`` (inductor) to the MD tasks (``name+compiled``;
the training step's double backward does not compile); compilation happens in the untimed first calls.

``--device cuda`` times both on a GPU (CUDA events; without mace-torch importable, GauntMACE alone).
``--mace_cueq`` adds mace-torch's model built with cuEquivariance's kernels (``mace+cueq``: layout ir_mul, all
optimisations, fused convolution on CUDA, as ``mace_run_train --only_cueq`` builds it; needs cuequivariance-torch
and, for its fast kernels, cuequivariance-ops-torch).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import bar_plot, write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

from gaunt_tp.data import Configuration, ElementTable, collate, to_graph  # noqa: E402
from gaunt_tp.dtypes import DTYPES, torch_dtype  # noqa: E402
from gaunt_tp.nn import GauntMACE, ModelConfig  # noqa: E402
from gaunt_tp.ops import GauntConvolution  # noqa: E402
from gaunt_tp.testing import pytorch_path as use_pytorch_path  # noqa: E402

ZS = (1, 6, 7, 8)
VARIANTS = {
    "gaunt": {},
    "symmetric": {"product_blocks": "symmetric"},
    "symmetric+rpi": {"product_blocks": "symmetric", "radial_per_input": True},
    "symmetric+cg": {"product_blocks": "symmetric", "conv_blocks": "e3nn"},
    "symmetric+cg-paths": {"product_blocks": "symmetric", "conv_blocks": "e3nn", "separate_paths": True},
    "chunk1024": {"edge_chunk": 1024},  # the default blocks with fixed 1024-edge chunks (GPUs' rule before stop 34)
}
E0S = (-13.587222780835477, -1029.4889999855063, -1484.9814568572233, -2041.9816003861047)


def box_of_molecules(molecule: Atoms, count: int, rng: np.random.Generator) -> Atoms:
    """``count`` randomly rotated copies on a cubic lattice in a periodic box."""
    per_side = int(np.ceil(count ** (1 / 3)))
    spacing = 11.0
    atoms = Atoms(cell=np.eye(3) * per_side * spacing, pbc=True)
    centred = molecule.positions - molecule.positions.mean(0)
    for k in range(count):
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        offset = spacing * (np.array(np.unravel_index(k, (per_side,) * 3)) + 0.5)
        atoms += Atoms(molecule.numbers, positions=centred @ q.T + offset)
    return atoms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/3bpa/train_300K.xyz")
    parser.add_argument("--max_L", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (timed with CUDA events)")
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--variants", nargs="+", default=["gaunt"], choices=list(VARIANTS))
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd variants (MD tasks)")
    parser.add_argument("--mace_cueq", action="store_true", help="also time mace-torch with cuEquivariance")
    parser.add_argument("--name", default=None, help="output file stem (default potential_<dtype>)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch_dtype(args.dtype)
    device = torch.device(args.device)
    torch.set_default_dtype(dtype)  # mace-torch builds its tables in the default dtype
    frames = ase.io.read(args.data, index=":5")
    big = box_of_molecules(frames[0], 37, np.random.default_rng(0))
    systems = {"train_step": frames, "md_3bpa": [frames[0]], "md_1000": [big]}
    results = {}
    path = args.out / f"{args.name or 'potential_' + args.dtype}.json"
    for max_l in args.max_L:
        contenders = {}
        for v in args.variants:
            name = "gaunt" if v == "gaunt" else f"gaunt-{v}"
            contenders[name] = gaunt_runner(systems, max_l, dtype, device=device, **VARIANTS[v])
            if args.compile:  # another model of the same variant, compiled
                contenders[f"{name}+compiled"] = gaunt_runner(systems, max_l, dtype, device=device, compiled=True,
                                                              **VARIANTS[v])  # fmt: skip
        try:
            contenders["mace"] = mace_runner(systems, max_l, dtype, device=device)
        except ImportError:
            print("mace-torch not importable: timing gaunt-tp only", file=sys.stderr)
        if args.mace_cueq and "mace" in contenders:
            try:
                contenders["mace+cueq"] = mace_runner(systems, max_l, dtype, device=device, cueq=True)
            except Exception as error:  # a missing or mismatched cuEquivariance build: the others are still timed
                print(f"mace-torch with cuEquivariance failed, left out: {error!r}", file=sys.stderr)
        for task in systems:
            fns = {name: runner[task] for name, runner in contenders.items() if task in runner}
            t = time_interleaved(fns, device=device, repeats=20, budget_s=args.budget, min_rounds=3)
            results[f"max_L={max_l}/{task}"] = t
            ratio = "".join(
                f" ({m}/{k} {t[m] / t[k]:.1f}x)" for m in ("mace", "mace+cueq") if m in t for k in t if "mace" not in k
            )
            print(
                f"max_L {max_l} {task}: " + ", ".join(f"{k} {v * 1e3:.4g} ms" for k, v in t.items()) + ratio, flush=True
            )
            # after every task, so that a run stopped by a time limit keeps what it measured
            write_json(path, {"dtype": args.dtype, "threads": args.threads, "seconds": results, "device": str(device),
                              "torch": torch.__version__})  # fmt: skip
    where = f"CPU ({args.threads} threads)" if device.type == "cpu" else str(device)
    title = f"GauntMACE vs mace-torch, same size: 64 channels, correlation 3, {args.dtype}, {where}"
    bar_plot(
        results,
        path.with_suffix(".png"),
        title,
        baseline="mace" if any("mace" in t for t in results.values()) else None,
    )
    print(f"wrote {path} and {path.with_suffix('.png')}")


def gaunt_runner(
    systems: dict,
    max_l: int,
    dtype: torch.dtype,
    edge_chunk: int | None = None,
    *,
    device: torch.device | str = "cpu",
    compiled: bool = False,
    pytorch_path: bool = False,
    **overrides,
) -> dict:
    """``train_step``, ``md_3bpa`` and ``md_1000`` callables for GauntMACE of this benchmark's size, on ``device``.

    ``edge_chunk`` fixes the convolutions' edge chunk (default: automatic); ``overrides`` are further
    ModelConfig fields (``num_products``, ``radial_per_input``, ...). ``compiled``: the MD tasks alone, through
    ``torch.compile`` (default inductor backend). ``pytorch_path``: the C kernels off (the PyTorch code GPUs run).
    """
    config = ModelConfig(atomic_numbers=ZS, e0s=E0S, r_max=5.0, max_ell=3, num_channels=64, max_L=max_l, correlation=3,
                         num_interactions=2, radial_mlp=(64, 64, 64), avg_num_neighbors=20.0, **overrides)  # fmt: skip
    model = GauntMACE(config).to(device=device, dtype=dtype)
    for module in model.modules():
        if isinstance(module, GauntConvolution):
            module.edge_chunk = edge_chunk
    if pytorch_path:
        use_pytorch_path(model)
    table = ElementTable(ZS)

    def graphs(frames):
        configs = [Configuration(atomic_numbers=a.numbers.copy(), positions=a.positions.copy(), cell=a.cell.array.copy(),
                                 pbc=tuple(bool(p) for p in a.pbc), energy=a.get_potential_energy(),
                                 forces=a.get_forces()) if a.calc is not None else
                   Configuration(atomic_numbers=a.numbers.copy(), positions=a.positions.copy(), cell=a.cell.array.copy(),
                                 pbc=tuple(bool(p) for p in a.pbc)) for a in frames]  # fmt: skip
        return collate([to_graph(c, table, 5.0, dtype) for c in configs]).to(device)

    batches = {task: graphs(frames) for task, frames in systems.items()}
    if compiled:
        call = torch.compile(model)
        return {"md_3bpa": lambda: call(batches["md_3bpa"]), "md_1000": lambda: call(batches["md_1000"])}

    def train_step():
        b = batches["train_step"]
        out = model(b, compute_forces=True, training=True)
        loss = (out["energy"] - b.energy).square().mean() + (out["forces"] - b.forces).square().mean()
        loss.backward()

    return {
        "train_step": train_step,
        "md_3bpa": lambda: model(batches["md_3bpa"]),
        "md_1000": lambda: model(batches["md_1000"]),
    }


def mace_runner(
    systems: dict, max_l: int, dtype: torch.dtype, *, device: torch.device | str = "cpu", cueq: bool = False
) -> dict:
    """The same three callables for mace-torch's ScaleShiftMACE of this benchmark's size (``cueq``: with
    cuEquivariance's kernels, as mace-torch's ``--only_cueq`` configures them)."""
    from e3nn import o3
    from mace import data, modules, tools
    from mace.tools import torch_geometric

    extra = {}
    if cueq:
        from mace.modules.wrapper_ops import CUET_AVAILABLE, CuEquivarianceConfig

        if not CUET_AVAILABLE:
            raise ImportError("cuequivariance_torch is not importable")
        extra["cueq_config"] = CuEquivarianceConfig(enabled=True, layout="ir_mul", group="O3_e3nn", optimize_all=True,
                                                    conv_fusion=torch.device(device).type == "cuda")  # fmt: skip

    hidden = o3.Irreps(" + ".join(f"64x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(max_l + 1)))
    model = modules.ScaleShiftMACE(
        r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=4, hidden_irreps=hidden, MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.array(E0S), avg_num_neighbors=20.0, atomic_numbers=list(ZS), correlation=3,
        gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64], atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        **extra,
    ).to(device=device, dtype=dtype)  # fmt: skip
    table = tools.AtomicNumberTable(list(ZS))

    def batch(frames):
        configs = [data.config_from_atoms(a) for a in frames]
        items = [data.AtomicData.from_config(c, z_table=table, cutoff=5.0) for c in configs]
        loader = torch_geometric.dataloader.DataLoader(items, batch_size=len(items), shuffle=False)
        return next(iter(loader)).to(device).to_dict()

    batches = {task: batch(frames) for task, frames in systems.items()}

    def train_step():
        out = model(batches["train_step"], training=True, compute_force=True)
        loss = out["energy"].square().mean() + out["forces"].square().mean()
        loss.backward()

    return {"train_step": train_step, "md_3bpa": lambda: model(batches["md_3bpa"], compute_force=True),
            "md_1000": lambda: model(batches["md_1000"], compute_force=True)}  # fmt: skip


if __name__ == "__main__":
    main()
