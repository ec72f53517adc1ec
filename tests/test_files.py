"""Durable replacement: the new content reaches the disk before the rename, and the rename before returning."""

import os
from pathlib import Path

import pytest
import torch

from gaunt_tp.files import replace_durably
from gaunt_tp.nn import GauntMACE, load_model, save_model
from gaunt_tp.testing import small_model_config
from gaunt_tp.training.checkpoint import load_checkpoint, save_checkpoint
from gaunt_tp.training.records import write_json


@pytest.fixture
def synced(monkeypatch):
    """Record, at each ``os.fsync``, what the descriptor names and which files the directory then holds."""
    events = []
    real = os.fsync

    def fsync(fd):
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        folder = target if target.is_dir() else target.parent
        events.append((target, sorted(p.name for p in folder.iterdir())))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return events


pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name descriptors")


def test_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, synced):
    tmp, path = tmp_path / "a.tmp", tmp_path / "a"
    path.write_text("old")
    tmp.write_text("new")
    replace_durably(tmp, path)
    assert path.read_text() == "new" and not tmp.exists()
    assert synced == [(tmp, ["a", "a.tmp"]), (tmp_path, ["a"])]


def test_checkpoints_and_records_are_replaced_durably(tmp_path, synced):
    path = save_checkpoint(tmp_path / "checkpoints", 3, {"model": {"w": torch.ones(2)}, "epoch": 3})
    assert load_checkpoint(path)["epoch"] == 3
    write_json(tmp_path / "errors.json", {"x": 1.0})
    assert [target.name for target, _ in synced] == [
        ".epoch-00003.pt.tmp", "checkpoints", "errors.json.tmp", tmp_path.name
    ]  # fmt: skip


def test_models_are_replaced_durably(tmp_path, synced):
    save_model(GauntMACE(small_model_config()), tmp_path / "model.pt")
    assert load_model(tmp_path / "model.pt").config == small_model_config()
    assert [target.name for target, _ in synced] == ["model.pt.tmp", tmp_path.name, "model.pt.json.tmp", tmp_path.name]
