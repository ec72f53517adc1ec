"""What the command-line tests share: the flags of a tiny model, and a helper that trains one."""

from pathlib import Path

from gaunt_tp.training.cli import main

SMALL = ["--num_channels", "4", "--max_L", "1", "--max_ell", "2", "--r_max", "4.0", "--batch_size", "4",
         "--num_radial_basis", "4", "--E0s", "average", "--plots", "false"]  # fmt: skip


def train(tmp_path: Path, data: Path, name: str, *extra: str) -> Path:
    """Train the tiny model on ``data`` (with the flags ``extra``) into ``tmp_path / name``, which it returns."""
    assert main(["train", "--train_file", str(data), "--work_dir", str(tmp_path), "--name", name, *SMALL, *extra]) == 0
    return tmp_path / name
