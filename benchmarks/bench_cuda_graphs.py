"""Eager against CUDA-graph replay: a training step (``gaunt-tp train --cuda_graph``) and an MD call (the calculator's
``cuda_graph=True``).

GauntMACE of the whole-model benchmark's size (``bench_potential.py``: 64 channels, max_ell 3, correlation 3, two
interactions), timed side by side (median of interleaved calls; CUDA events on a GPU):

- ``train_step``: on batches of 5 3BPA configurations, a different batch each call, the training loop's work: the
  step (forward, forces with create_graph, loss, backward), gradient clipping, AMSGrad, the weights' moving
  average; eager (:class:`gaunt_tp.training.step.EagerStep`) against :class:`gaunt_tp.training.step.GraphedStep`;
- ``md_3bpa``: energy and forces of one 3BPA molecule, a different configuration each call (as in MD), eager
  against :class:`gaunt_tp.cuda_graphs.GraphedPotential`.

On a CPU the padded calls run eagerly (``padded``: what the padding alone costs there).

    python benchmarks/bench_cuda_graphs.py --device cuda --dtype float64 float32 --max_L 1 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_potential import E0S, VARIANTS, ZS  # noqa: E402
from report import bar_plot, write_json  # noqa: E402
from timing import time_interleaved  # noqa: E402

from gaunt_tp.cuda_graphs import GraphedPotential  # noqa: E402
from gaunt_tp.data import BatchCapacity, ElementTable, collate, read_configurations, to_graph  # noqa: E402
from gaunt_tp.dtypes import DTYPES, torch_dtype  # noqa: E402
from gaunt_tp.nn import GauntMACE, ModelConfig  # noqa: E402
from gaunt_tp.training.step import EagerStep, GraphedStep  # noqa: E402

WEIGHTS = (1.0, 100.0, 0.0)  # the loss's energy, forces and stress weights (stage one's)


def trainer(model: GauntMACE, step: EagerStep | GraphedStep, batches: list) -> Callable[[], None]:
    """One call: the next batch's step, clipping, AMSGrad and the moving average, as the training loop does them."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))
    state = {"i": 0, "loss": torch.zeros((), dtype=torch.float64, device=batches[0].positions.device)}

    def call() -> None:
        state["loss"] += step(batches[state["i"] % len(batches)], WEIGHTS)
        state["i"] += 1
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        optimizer.step()
        ema.update_parameters(model)

    return call


def md_caller(potential: Callable, graphs: list) -> Callable[[], None]:
    """One call: energy and forces of the next single configuration, read back to the host as MD needs them."""
    state = {"i": 0}

    def call() -> None:
        out = potential(graphs[state["i"] % len(graphs)])
        state["i"] += 1
        out["forces"].cpu()

    return call


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/3bpa/train_300K.xyz")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", nargs="+", default=["float64"], choices=DTYPES)
    parser.add_argument("--max_L", nargs="+", type=int, default=[2])
    parser.add_argument("--variants", nargs="+", default=["symmetric+cg", "gaunt"], choices=list(VARIANTS))
    parser.add_argument("--batches", type=int, default=10, help="distinct batches of 5, taken in turn")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timing per group")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    capture = device.type == "cuda"
    configs = read_configurations(args.data, index=f":{5 * args.batches}")
    table = ElementTable(ZS)
    rows, groups = [], {}
    out_json = args.out / f"{args.name or f'cuda_graphs_{device.type}'}.json"
    gpu = torch.cuda.get_device_name(device) if capture else None
    for dtype_name in args.dtype:
        dtype = torch_dtype(dtype_name)
        graphs = [to_graph(c, table, 5.0, dtype).to(device) for c in configs]
        batches = [collate(graphs[i : i + 5]) for i in range(0, len(graphs), 5)]
        capacity = BatchCapacity.covering(graphs, 5)
        padding = {"atoms": capacity.nodes, "edges": capacity.edges, "pairs": capacity.pairs,
                   "mean_edges": sum(b.edge_index.shape[1] for b in batches) / len(batches)}  # fmt: skip
        for max_l in args.max_L:
            for variant in args.variants:
                config = ModelConfig(atomic_numbers=ZS, e0s=E0S, r_max=5.0, max_ell=3, num_channels=64, max_L=max_l,
                                     correlation=3, radial_mlp=(64, 64, 64), avg_num_neighbors=20.0,
                                     **VARIANTS[variant])  # fmt: skip
                torch.manual_seed(0)
                eager_model = GauntMACE(config).to(device=device, dtype=dtype)
                graphed_model = GauntMACE(config).to(device=device, dtype=dtype)
                graphed_model.load_state_dict(eager_model.state_dict())
                graphed_name = "graphed" if capture else "padded"
                tasks = {
                    "train_step": {
                        "eager": trainer(eager_model, EagerStep(eager_model), batches),
                        graphed_name: trainer(
                            graphed_model, GraphedStep(graphed_model, capacity, capture=capture), batches
                        ),
                    },
                    "md_3bpa": {
                        "eager": md_caller(lambda g: eager_model(g, compute_forces=True), graphs),
                        graphed_name: md_caller(GraphedPotential(graphed_model, capture=capture), graphs),
                    },
                }
                for task, fns in tasks.items():
                    row = {"task": task, "variant": variant, "max_L": max_l, "dtype": dtype_name}
                    group = f"{task} {variant} L{max_l} {dtype_name}"
                    try:  # a capture that fails is recorded and the other groups still run
                        times = time_interleaved(fns, device=device, warmup=3, budget_s=args.budget)
                    except Exception as err:  # noqa: BLE001
                        row["error"] = f"{type(err).__name__}: {err}"
                        print(f"{group}: {row['error']}", flush=True)
                    else:
                        groups[group] = times
                        row.update(seconds=times, eager_over_graphed=times["eager"] / times[graphed_name])
                        print(f"{group}: eager {times['eager'] * 1e3:.2f} ms, {graphed_name} "
                              f"{times[graphed_name] * 1e3:.2f} ms ({row['eager_over_graphed']:.2f}x)", flush=True)  # fmt: skip
                    rows.append(row)
                    write_json(out_json, {"device": args.device, "gpu": gpu, "batch_size": 5,
                                          "training_padding": padding, "rows": rows})  # after every task  # fmt: skip
    if groups:
        bar_plot(groups, out_json.with_suffix(".png"), f"eager and CUDA-graph calls, 3BPA ({gpu or 'CPU'})",
                 baseline="eager")  # fmt: skip


if __name__ == "__main__":
    main()
