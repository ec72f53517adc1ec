import os
import socket
import subprocess
import sys

import ase.io
import pytest
import torch

from gaunt_tp.training.checkpoint import latest_checkpoint, load_checkpoint
from gaunt_tp.training.cli import main

ARGS = ["--num_channels", "4", "--max_L", "1", "--max_ell", "2", "--r_max", "4.0", "--batch_size", "4",
        "--num_radial_basis", "4", "--E0s", "average", "--plots", "false", "--max_num_epochs", "2"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, shared_data):
    frames = ase.io.read(shared_data / "ethanol" / "train.xyz", index=":12")
    ase.io.write(tmp_path / "train.xyz", frames[:8])
    ase.io.write(tmp_path / "valid.xyz", frames[8:])
    common = ["--train_file", str(tmp_path / "train.xyz"), "--valid_file", str(tmp_path / "valid.xyz"),
              "--work_dir", str(tmp_path), *ARGS]  # fmt: skip
    assert main(["train", "--name", "single", *common]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    rendezvous = ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    cmd = [*launcher, *rendezvous, "-m", "gaunt_tp.training.cli", "train", "--name", "ddp", *common]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    a = load_checkpoint(latest_checkpoint(tmp_path / "single" / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "ddp" / "checkpoints"))
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=1e-10)


def test_each_torchrun_process_takes_its_local_gpu(monkeypatch):
    """``--device cuda`` under torchrun: process LOCAL_RANK=k runs on cuda:k (all on cuda:0 would clash in NCCL);
    without torchrun the current GPU, by index, which ``torch.cuda.set_device`` needs (a bare ``cuda`` stopped the
    first training on an H200); an explicit index or a CPU keep the device given."""
    from torch.cuda._utils import _get_device_index  # what torch.cuda.set_device parses its argument with

    from gaunt_tp.training.loop import _local_device

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)  # no GPU needed
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert _local_device(cuda, {"LOCAL_RANK": "3"}) == torch.device("cuda", 3)
    assert _local_device(torch.device("cuda", 1), {"LOCAL_RANK": "3"}) == torch.device("cuda", 1)
    assert _local_device(cuda, {}) == torch.device("cuda", 2) and _local_device(cpu, {"LOCAL_RANK": "1"}) == cpu
    assert _get_device_index(_local_device(cuda, {})) == 2
    with pytest.raises(ValueError):  # the failure mended
        _get_device_index(cuda)
