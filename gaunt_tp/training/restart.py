"""Opening a run folder: a new run refused where a killed one would be overwritten, a restart's checkpoint read and
checked against the options it is resumed with; the optimiser options a restart may change applied over the
checkpoint's."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gaunt_tp.errors import InputError
from gaunt_tp.training.checkpoint import latest_checkpoint, load_checkpoint
from gaunt_tp.training.config import MODEL_OPTIONS, TrainConfig
from gaunt_tp.training.records import keep_history_before

__all__ = ["RunFolderInUse", "open_run_folder", "reapply_changed_options", "started_stage_two"]

# the options a restart must keep: the model's, those fixing the data a run sees (its files, validation split and
# shuffling, its E0s, its starting weights), the optimiser and schedule whose state the checkpoint holds, and
# AMSGrad (its running maximum exists only where it was on from the start)
_SAME_RUN = MODEL_OPTIONS | {
    "train_file", "valid_file", "seed", "valid_fraction", "E0s", "foundation_model", "scheduler", "model", "scaling",
    "optimizer", "amsgrad"
}  # fmt: skip
# the options whose values the optimiser's and scheduler's state hold: a restart with other values applies them
_REAPPLIED = ("lr", "weight_decay", "lr_factor", "scheduler_patience", "lr_scheduler_gamma")


class RunFolderInUse(InputError):
    """A new run refused in a folder that holds another (whose ``train.log`` is then left as it was)."""


def open_run_folder(config: TrainConfig) -> tuple[Path, dict] | None:
    """Prepare ``config.run_dir`` for this run and return (path, state) of the checkpoint it resumes, or None.

    Without ``--restart_latest``, a folder holding checkpoints or ``metrics.csv`` is :class:`RunFolderInUse` (a
    forgotten flag must not overwrite a killed run). With it, the latest checkpoint is loaded (an InputError if
    truncated, or if written with other model options, split, E0s, optimiser or schedule: :data:`_SAME_RUN`) and
    the history's rows after its epoch are dropped, as they are run again. Writes ``config.json``. The first
    process's work alone under torchrun.
    """
    run_dir = config.run_dir
    ckpt_dir, history_path = run_dir / "checkpoints", run_dir / "metrics.csv"
    latest = latest_checkpoint(ckpt_dir)
    if not config.restart_latest and (latest is not None or history_path.is_file()):
        raise RunFolderInUse(
            f"{run_dir} already holds a training run (checkpoints or metrics.csv): pass --restart_latest to resume "
            "it, or another --name or --work_dir for a new run"
        )
    resumed = None
    if config.restart_latest and latest is not None:
        state = load_checkpoint(latest)
        _check_same_run(latest, state, config)
        resumed = latest, state
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.to_json())  # once the checkpoint is known to match it
    # the rows after the checkpoint's epoch are run again (dropped now: a restart that stops later, on the data,
    # would have run them again all the same)
    keep_history_before(history_path, int(resumed[1]["epoch"]) + 1 if resumed else 1)
    return resumed


def _check_same_run(path: Path, state: dict, config: TrainConfig) -> None:
    """A checkpoint resumed only with the model options (and the split and E0s) it was written with: a clear error,
    not a state-dict size mismatch or a silently different run."""
    stored = json.loads(state.get("config", "{}"))
    now = json.loads(config.to_json())  # as stored: tuples as lists
    changed = [f"--{n} {stored[n]!r} -> {now[n]!r}" for n in sorted(_SAME_RUN) if n in stored and stored[n] != now[n]]
    if changed:
        raise InputError(
            f"{path}: written with other options ({', '.join(changed)}); --restart_latest needs the same model "
            "options, training and validation files, seed, valid_fraction, E0s, foundation_model, optimizer, "
            "amsgrad and scheduler (use another --name for a new run)"
        )


def reapply_changed_options(
    state: dict, config: TrainConfig, optimizer: torch.optim.Optimizer, scheduler: object
) -> list[str]:
    """Set the options of :data:`_REAPPLIED` that ``config`` changes from the checkpoint's onto ``optimizer`` and
    ``scheduler``, whose loaded state dicts brought back the old values; returns them as ``--lr 0.01 -> 0.001``.

    A changed ``--lr`` restarts the rate there (a plateau schedule's reductions so far are dropped); unchanged, the
    rate the checkpoint holds goes on. Stage two sets ``--swa_lr`` every epoch regardless.
    """
    stored = json.loads(state.get("config", "{}"))
    now = json.loads(config.to_json())
    changed = [name for name in _REAPPLIED if name in stored and stored[name] != now[name]]
    for group in optimizer.param_groups:
        if "lr" in changed:
            group["lr"] = config.lr
        if "weight_decay" in changed:
            group["weight_decay"] = config.weight_decay
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.factor, scheduler.patience = config.lr_factor, config.scheduler_patience
    elif isinstance(scheduler, torch.optim.lr_scheduler.ExponentialLR):
        scheduler.gamma = config.lr_scheduler_gamma
    return [f"--{name} {stored[name]!r} -> {now[name]!r}" for name in changed]


def started_stage_two(state: dict) -> int | None:
    """The epochs after which a checkpoint's run started stage two (None: not yet). Checkpoints written before
    this was stored hold only an early start; a planned one is found from their own options."""
    if "stage_two_after" in state:
        return state["stage_two_after"]
    if state.get("early_stage_two") is not None:
        return int(state["early_stage_two"])
    planned = TrainConfig(**json.loads(state["config"])).stage_two_after if "config" in state else None
    return planned if planned is not None and int(state["epoch"]) > planned else None
