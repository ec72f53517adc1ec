"""Two processes in one process group (gloo, met through a file), spawned by a test: each runs a worker and
reports what it returned or raised. A worker is a module-level function (the spawned processes import it)."""

import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist


def run_pair(worker: Callable, folder: Path, *args) -> list[dict]:
    """``worker(rank, *args)`` in two spawned processes of ranks 0 and 1, as torchrun would start them (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``; one thread each); a collective left waiting fails after 60 s. Returns each
    process's outcome: ``{"value": returned}`` or ``{"error": type name, "message": str(error)}``."""
    torch.multiprocessing.spawn(_main, args=(worker, folder, args), nprocs=2, join=True)
    return [json.loads((folder / f"outcome-{rank}.json").read_text()) for rank in range(2)]


def _main(rank: int, worker: Callable, folder: Path, args: tuple) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder / 'store'}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))  # fmt: skip
    try:
        outcome = {"value": worker(rank, *args)}
    except Exception as err:
        outcome = {"error": type(err).__name__, "message": str(err)}
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    (folder / f"outcome-{rank}.json").write_text(json.dumps(outcome))
