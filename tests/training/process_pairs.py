"""Two processes in one process group (gloo), spawned by a test: each runs a worker and reports what it returned or
raised. A worker is a module-level function (the spawned processes import it)."""

import json
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist


def run_pair(worker: Callable, folder: Path, *args, joined: bool = True, timeout: float = 300.0) -> list[dict]:
    """``worker(rank, *args)`` in two spawned processes of ranks 0 and 1, as torchrun would start them (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``; one thread each). With ``joined``, each joins
    the group (met through a file, a collective left waiting fails after 60 s) before the worker starts and leaves it
    after; otherwise the worker (the code it tests) joins it, as under torchrun. Processes still running after
    ``timeout`` seconds are killed and the test fails. Returns each process's outcome: ``{"value": returned}`` or
    ``{"error": type name, "message": str(error)}``."""
    with socket.socket() as free:  # a port for the group's store, free now
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    pair = torch.multiprocessing.start_processes(_main, args=(worker, folder, args, joined, port), nprocs=2,
                                                 join=False)  # fmt: skip
    deadline = time.monotonic() + timeout
    while not pair.join(timeout=max(deadline - time.monotonic(), 0.0)):
        if time.monotonic() >= deadline:
            for process in pair.processes:
                process.kill()
            pytest.fail(f"two processes of {worker.__name__} overran {timeout} s")
    return [json.loads((folder / f"outcome-{rank}.json").read_text()) for rank in range(2)]


def _main(rank: int, worker: Callable, folder: Path, args: tuple, joined: bool, port: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    if joined:
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
