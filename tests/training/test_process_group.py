"""Leaving the process group whichever way a data-parallel run ends: a failed run stops both processes and frees
its DDP wrapper, errors' frames are cleared, a caller's group is kept, and the run's error is the one reported."""

import gc
import logging

import pytest
import torch
import torch.distributed as dist
from process_pairs import run_pair
from small_runs import SMALL

from gaunt_tp.training.checkpoint import latest_checkpoint, load_checkpoint
from gaunt_tp.training.config import config_from_args
from gaunt_tp.training.distributed import first_process_speaks, process_group
from gaunt_tp.training.loop import run_training
from gaunt_tp.training.records import read_history


def _stopped(rank: int, data: str, folder: str, how: str) -> dict:
    """Process ``rank`` of a run stopped after DDP wrapped the model, ``how``: ``"diverge"`` in its first epoch, or
    ``"full_disk"``: the first process's write of epoch 2's row of metrics.csv fails. Its error, whether it is
    still in the process group, how many DDP wrappers are left (while the error is held) and how many were left
    each time the run left the group."""
    argv = ["--train_file", data, "--work_dir", folder, "--name", how, *SMALL, "--max_num_epochs", "3"]
    if how == "diverge":
        argv += ["--lr", "1e200", "--ema", "false"]
    else:
        from gaunt_tp.training import loop

        written = loop.append_csv

        def fills_up(path, row: dict) -> None:
            if row["epoch"] == 2:
                raise OSError(28, "No space left on device")
            written(path, row)

        loop.append_csv = fills_up  # in this spawned process alone
    wrappers = lambda: sum(isinstance(o, torch.nn.parallel.DistributedDataParallel) for o in gc.get_objects())  # noqa: E731
    at_leaving, leave = [], dist.destroy_process_group

    def counted_leave(*args, **kwargs) -> None:  # what is left when the run leaves the group (in this process)
        at_leaving.append(wrappers())
        leave(*args, **kwargs)

    dist.destroy_process_group = counted_leave
    try:
        run_training(config_from_args(argv))
    except Exception as err:
        gc.collect()
        return {"error": type(err).__name__, "message": str(err), "in_group": dist.is_initialized(),
                "wrappers": wrappers(), "at_leaving": at_leaving}  # fmt: skip
    finally:
        dist.destroy_process_group = leave
    return {"error": None}


@pytest.mark.parametrize("how", ["diverge", "full_disk"])
def test_a_failed_run_stops_both_processes_frees_its_ddp_wrapper_and_leaves_only_its_own_group(tmp_path, data, how):
    """A run stopped by an error after DDP wrapped the model, met by both processes (divergence) or by the first
    alone (its disk full while it writes an epoch): both stop with its message, not at the group's timeout, with
    their DDP wrappers freed (an error's traceback would hold one; freed after its group went, it hung gloo at
    exit). The diverging run is started inside the test's process group, which it leaves to the test; the other
    joins one itself, as under torchrun, and leaves it. The run folder keeps epoch 1 and why the run stopped."""
    joined = how == "diverge"
    first, second = run_pair(_stopped, tmp_path, str(data), str(tmp_path), how, joined=joined)
    if how == "diverge":
        message = "epoch 1: the training loss is not finite"
        assert first["value"]["error"] == second["value"]["error"] == "InputError", (first, second)
    else:
        message = "No space left on device"
        assert first["value"]["error"] == "OSError" and second["value"]["error"] == "RuntimeError", (first, second)
        assert second["value"]["message"].startswith("the first process (rank 0) stopped: OSError: [Errno 28]")
        assert read_history(tmp_path / how / "metrics.csv")["epoch"] == [1]
        assert load_checkpoint(latest_checkpoint(tmp_path / how / "checkpoints"))["epoch"] == 1
    for outcome in (first, second):
        assert message in outcome["value"]["message"], outcome
        assert outcome["value"]["in_group"] is joined and outcome["value"]["wrappers"] == 0, outcome
        assert outcome["value"]["at_leaving"] == ([] if joined else [0]), outcome  # freed before it left
    assert f"stopped: {first['value']['message']}" in (tmp_path / how / "train.log").read_text()


class _Held:
    """What a finished frame holds."""


def _fails_holding(held: _Held) -> None:
    raise KeyError("inner")


def _chained_error(rank: int) -> dict:
    """An error raised in ``process_group`` while handling another, from a frame that holds a :class:`_Held`: how
    many are left while the error is held, and whether the process is still in the test's group."""
    try:
        with process_group(torch.device("cpu")) as (group_rank, world):
            assert (group_rank, world) == (rank, 2)
            try:
                _fails_holding(_Held())
            except KeyError:
                raise ValueError("outer") from None  # its context is still the KeyError
    except ValueError:
        gc.collect()
        return {"held": sum(isinstance(o, _Held) for o in gc.get_objects()), "in_group": dist.is_initialized()}
    return {}


def test_the_process_group_clears_the_frames_of_chained_errors_and_keeps_a_callers_group(tmp_path):
    """An error raised while handling another (its context) leaves nothing held by the frames the first went
    through, and a process group joined before is left to the caller."""
    first, second = run_pair(_chained_error, tmp_path)
    assert first == second == {"value": {"held": 0, "in_group": True}}, (first, second)


def _group_that_cannot_be_left(monkeypatch) -> list[str]:
    """torch.distributed's join and leave replaced by stand-ins that record the calls (no process needed); leaving
    raises."""
    calls, joined = [], [False]

    def init(backend):
        calls.append(f"join {backend}")
        joined[0] = True

    def destroy():
        calls.append("leave")
        joined[0] = False
        raise RuntimeError("the group could not be left")

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: joined[0])
    monkeypatch.setattr(dist, "init_process_group", init)
    monkeypatch.setattr(dist, "destroy_process_group", destroy)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    return calls


def test_a_failure_to_leave_the_group_after_the_run_failed_keeps_the_runs_error(monkeypatch, caplog):
    """When the run raised and leaving the group raises too, the run's error is the one that comes out (the CLI's
    error line names it) and the other is logged as an error, also by a process other than the first; after a run
    that ended well, leaving's error is raised."""
    calls = _group_that_cannot_be_left(monkeypatch)
    logger = logging.getLogger("gaunt_tp.train")
    with pytest.raises(ValueError, match="the run's own error"), caplog.at_level("INFO", logger.name):
        with first_process_speaks(1, logger), process_group(torch.device("cpu")) as (rank, world):
            assert (rank, world) == (1, 2)
            raise ValueError("the run's own error")
    assert calls == ["join gloo", "leave"]
    assert [(r.levelname, r.getMessage()[:40], r.exc_info[0]) for r in caplog.records] == [
        ("ERROR", "could not leave the process group after ", RuntimeError)
    ]
    with pytest.raises(RuntimeError, match="could not be left"):
        with process_group(torch.device("cpu")):
            pass
    assert calls == ["join gloo", "leave"] * 2
