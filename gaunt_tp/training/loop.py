"""The training run: data, model, optimiser, EMA, learning-rate schedule, checkpoints, logs, final tables."""

from __future__ import annotations

import copy
import dataclasses
import gc
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from gaunt_tp.cuda_graphs import GraphedPotential
from gaunt_tp.data import (
    BatchCapacity,
    ElementTable,
    KeySpec,
    read_any,
    resolve_e0s,
    shift_and_scale,
    split_isolated_atoms,
    to_graph,
    train_valid_split,
)
from gaunt_tp.devices import torch_device
from gaunt_tp.dtypes import torch_dtype
from gaunt_tp.errors import InputError, InputWarning
from gaunt_tp.nn.model import GauntMACE
from gaunt_tp.nn.serialization import load_model, save_model
from gaunt_tp.training.batching import batches_of, graph_cost, process_shares
from gaunt_tp.training.checkpoint import latest_checkpoint, save_checkpoint
from gaunt_tp.training.config import TrainConfig
from gaunt_tp.training.distributed import (
    first_process_speaks,
    from_first,
    launch_rank,
    local_device,
    process_group,
)
from gaunt_tp.training.ema import MovingAverage
from gaunt_tp.training.evaluation import evaluate_shared, final_errors
from gaunt_tp.training.foundation import adopt_architecture, fine_tuning_e0s, fine_tuning_model
from gaunt_tp.training.metrics import label_counts
from gaunt_tp.training.records import append_csv, format_tables, write_json
from gaunt_tp.training.restart import RunFolderInUse, open_run_folder, reapply_changed_options, started_stage_two
from gaunt_tp.training.step import EagerStep, GraphedStep

__all__ = ["run_training"]

log = logging.getLogger("gaunt_tp.train")


def _keys(config: TrainConfig) -> KeySpec:
    return KeySpec(energy_key=config.energy_key, forces_key=config.forces_key, stress_key=config.stress_key,
                   virials_key=config.virials_key)  # fmt: skip


def _read_without_isolated_atoms(path: str, keys: KeySpec, require_forces: bool = True) -> tuple[list, list]:
    """(the file's MACE isolated atoms, its other configurations), an error if it holds nothing else."""
    isolated, configs = split_isolated_atoms(read_any(path, keys=keys, require_forces=require_forces))
    if not configs:
        raise InputError(f"{path}: holds only isolated atoms (config_type IsolatedAtom), nothing to train or test on")
    return isolated, configs


def _read_reference_set(path: str, keys: KeySpec, role: str) -> list:
    """A validation or test file's configurations, forces optional (the errors are over the labels there are); its
    isolated atoms (if any) are left out, with a log line."""
    isolated, configs = _read_without_isolated_atoms(path, keys, require_forces=False)
    if isolated:
        log.info("%s: %d isolated atoms (config_type IsolatedAtom) are left out of the %s set",
                 path, len(isolated), role)  # fmt: skip
    return configs


@contextmanager
def _input_warnings_logged() -> Iterator[None]:
    """Within, :class:`~gaunt_tp.errors.InputWarning` (of the data readers and the E0s) is shown as a line of the
    run's log, and so in ``train.log``, when it is raised, without the source line the warnings module prints; other
    warnings as usual. The filters stay (under torchrun the other processes' InputWarnings stay out)."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202 (warnings')
            if issubclass(category, InputWarning):
                log.warning("%s", message)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _load_split(config: TrainConfig) -> tuple[list, list, list, list]:
    """(train, valid, test, the training file's isolated atoms): MACE's IsolatedAtom configurations are left out
    of all three sets; those of the training file may give the E0s (:func:`resolve_e0s`)."""
    keys = _keys(config)
    isolated, train = _read_without_isolated_atoms(config.train_file, keys)
    if config.valid_file:
        valid = _read_reference_set(config.valid_file, keys, "validation")
    else:
        train, valid = train_valid_split(train, config.valid_fraction, config.seed)
    test = _read_reference_set(config.test_file, keys, "test") if config.test_file else []
    if type_weights := config.type_weights:  # times each configuration's own weight (the loss's; tables unweighted)
        if unmatched := sorted(set(type_weights) - {c.config_type for c in (*train, *valid)}):
            log.warning("--config_type_weights %s: no training or validation configuration has such a config_type "
                        "(a misspelt name?)", unmatched)  # fmt: skip
        train, valid = (
            [dataclasses.replace(c, weight=c.weight * type_weights.get(c.config_type, 1.0)) for c in configs]
            for configs in (train, valid)
        )
    return train, valid, test, isolated


def run_training(config: TrainConfig) -> dict:
    """Train as described by ``config``; returns the final error tables. See :mod:`gaunt_tp.training.cli`.

    The log lines (epochs, stage two, final tables) also go to ``train.log`` in the run folder, appended to by a
    restart (by the first process only, under torchrun); so does the error that stops a run, which is re-raised
    (an :class:`~gaunt_tp.errors.InputError` for bad files or options).
    """
    handler, level = None, log.level
    rank = launch_rank(os.environ) or 0
    if rank == 0:
        config.run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(config.run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
    try:
        # under torchrun, the others' info and warnings would repeat; the data's warnings go to the log
        with first_process_speaks(rank, log), _input_warnings_logged():
            return _train(config)
    except Exception as err:
        # the run folder keeps why it stopped (the console shows it once, from the caller); not a refused new run's
        if handler is not None and not isinstance(err, RunFolderInUse):
            trace = None if isinstance(err, InputError) else sys.exc_info()
            handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "stopped: %s", (err,), trace))
        raise
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
            log.setLevel(level)


def _train(config: TrainConfig) -> dict:
    started = time.monotonic()  # --max_time_minutes counts reading the data and building the model too
    device = torch_device(local_device(torch_device(config.device), os.environ))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and every bare .cuda() use the current device
    with process_group(device) as (rank, world):
        return _train_in_group(config, device, rank, world, started)


def _train_in_group(config: TrainConfig, device: torch.device, rank: int, world: int, started: float) -> dict:
    """The run of :func:`run_training` by process ``rank`` of ``world``, on ``device``, begun at ``started``
    (``time.monotonic()``)."""
    dtype = torch_dtype(config.default_dtype)
    if config.cuda_graph and world > 1:
        raise InputError("--cuda_graph runs in one process; leave it out under torchrun")
    if config.batch_size < world:
        log.warning("batch_size %d is smaller than the %d processes: %d of them only stand by at every step (the "
                    "batch is global)", config.batch_size, world, world - config.batch_size)  # fmt: skip
    foundation = load_model(config.foundation_model) if config.foundation_model else None
    if foundation is not None:  # its architecture, recorded in config.json as this run's
        config, replaced = adopt_architecture(config, foundation.config)
        log.info("fine-tuning %s (elements Z=%s)%s", config.foundation_model, list(foundation.config.atomic_numbers),
                 f"; its options replace: {', '.join(replaced)}" if replaced else "")  # fmt: skip
    run_dir = config.run_dir
    ckpt_dir, history_path = run_dir / "checkpoints", run_dir / "metrics.csv"
    model_path = run_dir / f"{config.name}.model"
    # the run folder is the first process's: under torchrun the others may not see its disk
    resumed = from_first(lambda: open_run_folder(config), rank, world, device)
    torch.manual_seed(config.seed)

    train, valid, test, isolated = _load_split(config)
    dropped = sum(c.stress is not None and c.trainable_stress is None for c in (*train, *valid, *test))
    if dropped:
        log.warning("%d configurations carry stress labels in cells without volume (a zero cell vector), where the "
                    "model has no stress: those labels are left out", dropped)  # fmt: skip
    stress_count = sum(c.trainable_stress is not None for c in train)
    stress_labels = stress_count > 0  # for the stress term of the Huber loss
    # a stress or virials term in either stage: its RMSE logged (NaN in a stage whose loss has none)
    logs_stress = any(config.loss_weights(two, stress_labels).needs_stress for two in (False, config.swa))
    if stress_labels and not logs_stress:
        log.info("%d training configurations carry stress labels, which --loss %s does not fit (--loss stress or "
                 "virials does; the final tables report the stress errors)",
                 stress_count, config.loss)  # fmt: skip
    if config.loss in ("stress", "virials") and not stress_labels:
        raise InputError(
            f"--loss {config.loss}, but no configuration of {config.train_file} has a stress label "
            f"({config.stress_key!r}, the stress= that ASE writes, or virials under {config.virials_key!r}) in a cell "
            "that spans a volume"
        )
    zs = sorted({int(z) for c in (*train, *valid, *test) for z in c.atomic_numbers})
    untrained = sorted(set(zs) - {int(z) for c in train for z in c.atomic_numbers})
    from_isolated = config.E0s == "average" and bool(isolated)
    if untrained and (config.E0s != "average" or from_isolated):  # a least-squares 'average' stops on them
        log.warning("elements Z=%s appear only in the validation or test data: the model is not trained on them",
                    untrained)  # fmt: skip
    if isolated:
        log.info("%s: %d isolated atoms (config_type IsolatedAtom) %s", config.train_file, len(isolated),
                 "give the E0s" if from_isolated else "are left out: --E0s gives the E0s")  # fmt: skip
    if foundation is None:
        e0s = resolve_e0s(config.E0s, train, zs, _keys(config), isolated)
    else:  # the data's E0s for its elements (or none: the foundation's), the foundation's for the others
        own = fine_tuning_e0s(config.E0s, foundation, train, zs, _keys(config), isolated)
        foundation = fine_tuning_model(foundation, zs, own)
        zs, e0s = list(foundation.config.atomic_numbers), dict(zip(foundation.config.atomic_numbers,
                                                                   foundation.config.e0s))  # fmt: skip
    table = ElementTable(zs)
    to = lambda configs: [to_graph(c, table, config.r_max, dtype) for c in configs]  # noqa: E731
    train_g, valid_g, test_g = to(train), to(valid), to(test)
    if foundation is None:
        avg_neighbors = float(np.mean([g.edge_index.shape[1] / g.positions.shape[0] for g in train_g]))
        # MACE's: the mean interaction energy per atom (none for its model "MACE"), the RMS force (or --scaling's)
        shift, scale = shift_and_scale(train, e0s, config.scaling)
        shift = 0.0 if config.model == "MACE" else shift
        model_config = config.model_config(
            tuple(zs), tuple(e0s[z] for z in zs), avg_num_neighbors=max(avg_neighbors, 1.0), energy_shift=shift,
            energy_scale=scale,
        )  # fmt: skip
        model = GauntMACE(model_config)
    else:  # its weights, normalisation, shift and scale
        model = foundation
    model = model.to(device=device, dtype=dtype)
    _log_summary(config, model, (train_g, valid_g, test_g), device)
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, amsgrad=config.amsgrad)
    if config.scheduler == "ExponentialLR":
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_scheduler_gamma)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.lr_factor, patience=config.scheduler_patience
        )
    ema = MovingAverage(model, config.ema_decay) if config.ema else None
    start, best, stale = 1, math.inf, 0  # stale: evaluations since the best validation loss
    # the epochs after which stage two started (or starts next epoch, when patience ran out before its planned
    # start); fixed from then on, also across restarts with other --start_swa or --max_num_epochs
    stage_two_fixed = None
    trained_s = 0.0  # seconds spent in epochs up to the last checkpoint, over restarts (metrics.csv's time_s)
    if resumed is not None:
        path, state = resumed
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        changed = reapply_changed_options(state, config, optimizer, scheduler)
        if changed:
            log.info("restarted with other optimiser options, applied: %s", ", ".join(changed))
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        start, best = int(state["epoch"]) + 1, float(state["best"])
        stale, stage_two_fixed = int(state.get("stale", 0)), started_stage_two(state)
        trained_s = float(state.get("time_s", 0.0))
        log.info("restarted from %s (epoch %d)", path, state["epoch"])
        # a run that had stopped on patience (not one whose patience started stage two there) has no epoch left:
        # the restart only writes what a kill may have cut short, the final tables (a larger --patience goes on)
        if stale >= config.patience and not (config.swa and stage_two_fixed in (None, start - 1)):
            log.info("the run had stopped after epoch %d: no better validation loss for %d evaluations", start - 1,
                     stale)  # fmt: skip
            start = config.max_num_epochs + 1
        elif start > config.max_num_epochs:
            log.info("epoch %d reached --max_num_epochs %d: no epoch left to train (a larger one goes on)",
                     start - 1, config.max_num_epochs)  # fmt: skip
        del resumed, state
    trained = model
    if world > 1:  # each process takes its share of every global batch; gradients are averaged
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    moved = lambda graphs: [g.to(device) for g in graphs]  # noqa: E731
    # what dealing the global batches out needs of each graph, once (on the host, before the graphs move)
    train_counts = [label_counts(g) for g in train_g] if world > 1 else []
    train_costs = [graph_cost(g) for g in train_g] if world > 1 else []
    train_g, valid_g, test_g = moved(train_g), moved(valid_g), moved(test_g)
    valid_batches = batches_of(valid_g, config.valid_batch_size)
    evaluated = ema.module if ema is not None else model  # validated every epoch, exported when better
    if config.cuda_graph:
        capacity = BatchCapacity.covering(train_g, config.batch_size)
        step = GraphedStep(model, capacity, capture=True)
        validated = GraphedPotential(evaluated, capture=True)
        log.info("CUDA graphs: training batches padded to %d atoms and %d edges", capacity.nodes, capacity.edges)
    else:
        step, validated = EagerStep(trained), evaluated
    from tqdm import tqdm

    clock = time.monotonic()
    for epoch in range(start, config.max_num_epochs + 1):
        model.train()
        stage_two_after = _stage_two_after(stage_two_fixed, config)
        stage_two = stage_two_after is not None and epoch > stage_two_after
        weights = config.loss_weights(stage_two, stress_labels)
        if stage_two:
            for group in optimizer.param_groups:
                group["lr"] = config.swa_lr
            if stage_two_fixed is None or epoch == stage_two_fixed + 1:  # its first epoch
                stage_two_fixed = epoch - 1
                best, stale = math.inf, 0  # the best model is chosen again under the stage-two loss, as in MACE
                terms = {"stress weight": weights.stress, "virials weight": weights.virials,
                         "Huber delta": weights.huber_delta}  # fmt: skip
                extra = "".join(f", {term} {w:g}" for term, w in terms.items() if w)
                log.info("stage two from epoch %d: energy weight %g, forces weight %g%s, lr %g", epoch,
                         weights.energy, weights.forces, extra, config.swa_lr)  # fmt: skip
        generator = torch.Generator().manual_seed(config.seed * 100003 + epoch)  # same order after a restart
        if world > 1:
            batches = process_shares(train_g, train_counts, train_costs, config.batch_size, generator, rank, world)
        else:
            batches = [(batch, None) for batch in batches_of(train_g, config.batch_size, generator)]
        running = torch.zeros((), dtype=torch.float64, device=device)  # summed where the losses are: no read-back
        for batch, share in tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=None if rank == 0 else True):
            running += step(batch, weights, share)
            if config.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=config.clip_grad)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
        if world > 1:  # the processes' parts of each batch's loss add up to it
            torch.distributed.all_reduce(running)
        running = float(running)
        out_of_time = (
            config.max_time_minutes is not None and time.monotonic() - started > 60.0 * config.max_time_minutes
        )
        diverged = not math.isfinite(running)
        if world > 1:  # every process stops after the same epoch
            flags = torch.tensor([float(out_of_time), float(diverged)], device=device)
            torch.distributed.all_reduce(flags)
            out_of_time, diverged = bool(flags[0].item() > 0), bool(flags[1].item() > 0)
        if diverged:
            _diverged(epoch, "training", ckpt_dir, rank, world, device)
        lr = optimizer.param_groups[0]["lr"]  # the learning rate of this epoch, logged with it
        if config.scheduler == "ExponentialLR" and not stage_two:  # every epoch, evaluated or not
            scheduler.step()
        if epoch % config.eval_interval and epoch != config.max_num_epochs and not out_of_time:
            continue
        valid_loss, valid_acc = evaluate_shared(validated, valid_batches, weights, rank, world, device)
        if not math.isfinite(valid_loss):  # the same on every process
            _diverged(epoch, "validation", ckpt_dir, rank, world, device)
        if config.scheduler == "ReduceLROnPlateau" and not stage_two:
            scheduler.step(valid_loss)
        improved = valid_loss < best
        best, stale = (valid_loss, 0) if improved else (best, stale + 1)
        patience_spent = stale >= config.patience
        if patience_spent and config.swa and not stage_two and epoch < config.max_num_epochs:
            stage_two_fixed, patience_spent = epoch, False  # MACE: out of patience before stage two starts it
            log.info("no better validation loss for %d evaluations: stage two starts now", stale)
        trained_s, clock = trained_s + time.monotonic() - clock, time.monotonic()
        # every process evaluates (same schedule); the first writes, and a failed write (a full disk) stops all
        errors = valid_acc.table() if valid_acc is not None else {}

        def write_epoch() -> None:
            row = _epoch_row(epoch, running / len(batches), valid_loss, errors, lr, trained_s, logs_stress)
            _log_epoch(row, config.error_table, logs_stress)
            append_csv(history_path, row)
            if improved:
                save_model(evaluated, model_path)
            save_checkpoint(
                ckpt_dir,
                epoch,
                {
                    "epoch": epoch,
                    "best": best,
                    "stale": stale,
                    "stage_two_after": stage_two_fixed,
                    "time_s": trained_s,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "config": config.to_json(),
                },
                keep=None if config.keep_checkpoints else 2,
            )

        from_first(write_epoch, rank, world, device)
        if out_of_time:
            log.info("stopping after epoch %d: the %.3g-minute time budget is spent", epoch, config.max_time_minutes)
            break
        if patience_spent:
            log.info("stopping after epoch %d: no better validation loss for %d evaluations", epoch, stale)
            break

    if world > 1:
        # the DDP wrapper goes here, while every process is still in the group and collectives follow: one freed at
        # the group's end instead (process_group) aborted a gloo process once in a CI run beside another job
        step = trained = None
        gc.collect()

    # the best model as exported, read by the first process (its disk), sent to the others
    best_model = copy.deepcopy(evaluated)
    best_model.load_state_dict(from_first(lambda: load_model(model_path).state_dict(), rank, world, device))
    splits = [(split, graphs) for split, graphs in (("train", train_g), ("valid", valid_g), ("test", test_g)) if graphs]
    log.info("evaluating the best model on %s", ", ".join(f"{len(g)} {split}" for split, g in splits))
    tables, values = final_errors(best_model, splits, config.valid_batch_size, rank, world, device, config.plots)
    if rank != 0:
        return {}
    write_json(run_dir / "errors.json", tables)
    log.info("final errors (best model):\n%s", format_tables(tables))
    if config.plots:
        from gaunt_tp.training.plots import learning_curve, parity_plots

        learning_curve(history_path, run_dir / "learning_curve.png", _stage_two_after(stage_two_fixed, config))
        parity_plots(values, run_dir / "parity.png")
    return tables


def _stage_two_after(fixed: int | None, config: TrainConfig) -> int | None:
    """The epoch after which stage two starts: ``fixed`` once it is (it started, or patience ran out), else the one
    the options plan (none without ``--swa``)."""
    return fixed if fixed is not None else config.stage_two_after


def _epoch_row(
    epoch: int, train_loss: float, valid_loss: float, errors: dict, lr: float, time_s: float, logs_stress: bool
) -> dict:
    """An evaluated epoch's row of ``metrics.csv``: losses, the validation errors of ``errors["all"]``, learning
    rate, training time."""
    every = errors["all"]
    row = {"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss}
    for column in ("rmse_e_meV_per_atom", "rmse_f_meV_per_A", "mae_e_meV_per_atom", "mae_f_meV_per_A", "rmse_e_meV",
                   "mae_e_meV"):  # fmt: skip
        row[column] = every[column]
    if logs_stress:
        row["rmse_stress_meV_per_A3"] = every.get("rmse_stress_meV_per_A3", math.nan)
    row["lr"], row["time_s"] = lr, time_s
    return row


def _log_epoch(row: dict, error_table: str, logs_stress: bool) -> None:
    """The log line of an evaluated epoch, with the errors ``--error_table`` names (RMSE or MAE, energies per atom
    or per configuration), as MACE's."""
    kind = "MAE" if "MAE" in error_table else "RMSE"
    energy = f"{kind.lower()}_e_meV_per_atom" if error_table.startswith("PerAtom") else f"{kind.lower()}_e_meV"
    stress = f" RMSE_stress={row['rmse_stress_meV_per_A3']:.2f} meV/A^3" if logs_stress else ""
    log.info("epoch %d: loss=%.4g valid_loss=%.4g %s_E=%.2f %s %s_F=%.2f meV/A%s lr=%.2e", row["epoch"],
             row["train_loss"], row["valid_loss"], kind, row[energy], "meV/atom" if energy.endswith("atom") else "meV",
             kind, row[f"{kind.lower()}_f_meV_per_A"], stress, row["lr"])  # fmt: skip


def _log_summary(config: TrainConfig, model: GauntMACE, splits: tuple[list, list, list], device: torch.device) -> None:
    """What a run trains, on what, where: its first lines in the log (as MACE's log opens)."""
    from gaunt_tp import __version__

    mc = model.config
    train_g, valid_g, test_g = splits
    log.info("gaunt-tp %s, torch %s, device %s, %s", __version__, torch.__version__, device, config.default_dtype)
    log.info("configurations: %d train (%d atoms), %d valid, %d test", len(train_g),
             sum(g.positions.shape[0] for g in train_g), len(valid_g), len(test_g))  # fmt: skip
    log.info("elements Z=%s, E0s %s eV", list(mc.atomic_numbers), ", ".join(f"{e:.6g}" for e in mc.e0s))
    log.info("model: %d parameters; %d channels, max_L %d, max_ell %d, correlation %d, %d interactions, r_max %g A, "
             "%s convolution, %s products%s; %.2f neighbours per atom on average, shift %.4g eV/atom, "
             "scale %.4g eV/A",
             sum(p.numel() for p in model.parameters()), mc.num_channels, mc.max_L, mc.max_ell, mc.correlation,
             mc.num_interactions, mc.r_max, mc.conv_blocks, mc.product_blocks,
             "".join(f", {part}" for part in mc.optional_parts()), mc.avg_num_neighbors,
             mc.energy_shift, mc.energy_scale)  # fmt: skip


def _diverged(epoch: int, which: str, ckpt_dir: Path, rank: int, world: int, device: torch.device) -> NoReturn:
    """Stops the run (every process) after ``epoch``, whose ``which`` loss is not finite, naming the latest
    checkpoint in ``ckpt_dir`` (on the first process's disk)."""
    latest = from_first(lambda: latest_checkpoint(ckpt_dir), rank, world, device)
    kept = f"the latest checkpoint, {latest}, is from before" if latest else "no checkpoint was written"
    raise InputError(
        f"epoch {epoch}: the {which} loss is not finite (the training diverged; try a lower --lr, or check the "
        f"labels); {kept}"
    )
