"""Data-parallel runs under torchrun: each process's device, the process group, what the first process alone decides
(it alone reads and writes the run folder, whose disk the others may not see) and the log and warnings, given by it
alone."""

from __future__ import annotations

import gc
import logging
import os
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

import torch

from gaunt_tp.errors import InputError, InputWarning

__all__ = ["first_process_speaks", "from_first", "launch_rank", "local_device", "process_group"]

T = TypeVar("T")
log = logging.getLogger("gaunt_tp.train")


def launch_rank(env: Mapping[str, str]) -> int | None:
    """The rank torchrun gave this process (``RANK``), read before any process group is joined; None when torchrun
    did not start it."""
    rank = env.get("RANK")
    return int(rank) if rank is not None else None


def local_device(device: torch.device, env: Mapping[str, str]) -> torch.device:
    """The device of this process, with an index where it is a GPU (``torch.cuda.set_device`` refuses a bare
    ``cuda``): under torchrun (``LOCAL_RANK`` set), ``cuda`` without an index is the local rank's GPU, so that each
    process of a node takes its own; otherwise the current one (``CUDA_VISIBLE_DEVICES`` chooses). Anything else as
    given."""
    if device.type == "cuda" and device.index is None:
        local = env.get("LOCAL_RANK")
        return torch.device("cuda", int(local) if local is not None else torch.cuda.current_device())
    return device


@contextmanager
def process_group(device: torch.device) -> Iterator[tuple[int, int]]:
    """(rank, world size) within. Under torchrun (``WORLD_SIZE`` above 1) the process joins the process group (gloo
    on CPUs, NCCL on GPUs) and leaves it on the way out, whichever way: returning or raising. A group the caller
    joined already is used and left to the caller; when leaving fails after the run failed, the run's error is the
    one raised and the other is logged as an error. On the way out it frees what is no longer reachable and, after
    an error, the local variables of the finished frames of that error and of those chained to it: a
    DistributedDataParallel wrapper that outlives its group hung a gloo process at exit. With one process, (0, 1)
    and nothing else."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        yield 0, 1
        return
    import torch.distributed as dist

    joins = not dist.is_initialized()
    if joins:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    failed = False
    try:
        yield dist.get_rank(), dist.get_world_size()
    except BaseException as err:
        failed = True
        _clear_frames(err)
        raise
    finally:
        gc.collect()
        if joins and dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:
                if not failed:
                    raise
                # the run's own error is the one raised; this one is logged, by every process (not a warning, which
                # first_process_speaks keeps to the first)
                log.error("could not leave the process group after the run failed (its error follows)", exc_info=True)


def _clear_frames(err: BaseException) -> None:
    """The local variables of the finished frames that ``err``, its cause and its context (and theirs, in turn)
    went through, cleared; frames still running (the callers') are left as they are."""
    pending, seen = [err], set()
    while pending:
        linked = pending.pop()
        if linked is None or id(linked) in seen:
            continue
        seen.add(id(linked))
        traceback.clear_frames(linked.__traceback__)
        pending += [linked.__cause__, linked.__context__]


def from_first(work: Callable[[], T], rank: int, world: int, device: torch.device) -> T:
    """``work()`` done by the first process (rank 0) alone, its result sent to every process (pickled: tensors on
    the CPU). When it raises, every process raises: the first its own error, the others an
    :class:`~gaunt_tp.errors.InputError` with the same message for an InputError, a RuntimeError naming it for
    anything else; none is left waiting in a collective for the process group to time out. Called by every process
    at the same point; with one process, just ``work()``."""
    if world == 1:
        return work()
    box: list = [None]
    failure = None
    if rank == 0:
        try:
            box[0] = ("done", work(), None)
        except Exception as err:  # sent as text: an exception need not pickle
            failure = err
            box[0] = ("input" if isinstance(err, InputError) else "error", f"{type(err).__name__}: {err}", str(err))
    torch.distributed.broadcast_object_list(box, src=0, device=device)
    if failure is not None:
        raise failure
    if box[0][0] == "input":
        raise InputError(box[0][2])
    if box[0][0] == "error":
        raise RuntimeError(f"the first process (rank 0) stopped: {box[0][1]}")
    return box[0][1]


class _ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextmanager
def first_process_speaks(rank: int, logger: logging.Logger) -> Iterator[None]:
    """Within, on processes other than the first (``rank`` above 0): ``logger`` passes only errors, and
    :class:`~gaunt_tp.errors.InputWarning` (of the data readers) is not shown. All processes read the same options
    and data and take the same decisions, so these would repeat the first one's; other warnings (torch's, gaunt-tp's
    about its kernels, which may concern one process's build or device) still show."""
    if rank == 0:
        yield
        return
    quiet = _ErrorsOnly()
    logger.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=InputWarning)
            yield
    finally:
        logger.removeFilter(quiet)
