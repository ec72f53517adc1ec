"""Opening a run folder: a new run refused where a killed one would be overwritten, a restart's checkpoint read and
checked against the options it is resumed with."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from gaunt_tp.errors import InputError
from gaunt_tp.nn.model import ModelConfig
from gaunt_tp.training.checkpoint import latest_checkpoint, load_checkpoint
from gaunt_tp.training.config import TrainConfig
from gaunt_tp.training.records import keep_history_before

__all__ = ["MODEL_OPTIONS", "open_run_folder", "started_stage_two"]

# the model's hyperparameters among the training options: those named alike in ModelConfig and TrainConfig
MODEL_OPTIONS = frozenset(f.name for f in dataclasses.fields(ModelConfig)) & {
    f.name for f in dataclasses.fields(TrainConfig)
}
# the options a restart must keep: the model's, those fixing the data a run sees (its validation split and
# shuffling, its E0s, its starting weights) and the schedule whose state the checkpoint holds
_SAME_RUN = MODEL_OPTIONS | {"seed", "valid_fraction", "E0s", "foundation_model", "scheduler", "model", "scaling"}


def open_run_folder(config: TrainConfig) -> tuple[Path, dict] | None:
    """Prepare ``config.run_dir`` for this run and return (path, state) of the checkpoint it resumes, or None.

    Without ``--restart_latest``, a folder holding checkpoints or ``metrics.csv`` is an InputError (a forgotten flag
    must not overwrite a killed run). With it, the latest checkpoint is loaded (an InputError if truncated, or if
    written with other model options, split, E0s or schedule: :data:`_SAME_RUN`) and the history's rows after its
    epoch are dropped, as they are run again. Writes ``config.json``. The first process's work alone under
    torchrun.
    """
    run_dir = config.run_dir
    ckpt_dir, history_path = run_dir / "checkpoints", run_dir / "metrics.csv"
    latest = latest_checkpoint(ckpt_dir)
    if not config.restart_latest and (latest is not None or history_path.is_file()):
        raise InputError(
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
            "options, seed, valid_fraction, E0s, foundation_model and scheduler (use another --name for a new run)"
        )


def started_stage_two(state: dict) -> int | None:
    """The epochs after which a checkpoint's run started stage two (None: not yet). Checkpoints written before
    this was stored hold only an early start; a planned one is found from their own options."""
    if "stage_two_after" in state:
        return state["stage_two_after"]
    if state.get("early_stage_two") is not None:
        return int(state["early_stage_two"])
    planned = TrainConfig(**json.loads(state["config"])).stage_two_after if "config" in state else None
    return planned if planned is not None and int(state["epoch"]) > planned else None
