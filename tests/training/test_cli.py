import csv
import json
import warnings

import ase.io
import numpy as np
import pytest
import torch
from ase.calculators.fd import calculate_numerical_forces
from small_runs import SMALL, train

from gaunt_tp.calculator import GauntCalculator
from gaunt_tp.errors import InputWarning
from gaunt_tp.nn.serialization import load_model
from gaunt_tp.training.checkpoint import latest_checkpoint, load_checkpoint
from gaunt_tp.training.cli import main
from gaunt_tp.training.config import build_parser, config_from_args


def test_train_writes_the_run_and_the_calculator_passes_ase_checks(tmp_path, data):
    run = train(tmp_path, data, "run", "--max_num_epochs", "2", "--plots", "true")
    for name in (
        "config.json",
        "train.log",
        "metrics.csv",
        "errors.json",
        "run.model",
        "run.model.json",
        "learning_curve.png",
        "parity.png",
    ):
        assert (run / name).is_file(), name
    logged = (run / "train.log").read_text()
    assert "epoch 2: loss=" in logged and "final errors (best model)" in logged and "| test |" not in logged
    model = load_model(run / "run.model")  # the log opens with what was trained, on what, where
    assert f"model: {sum(p.numel() for p in model.parameters())} parameters; 4 channels, max_L 1" in logged
    assert "configurations: 11 train (99 atoms), 1 valid, 0 test" in logged and "device cpu, float64" in logged
    assert f"elements Z=[1, 6, 8], E0s {', '.join(f'{e:.6g}' for e in model.config.e0s)} eV" in logged
    atoms = ase.io.read(data, index="0")
    atoms.calc = GauntCalculator(run / "run.model")
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-4), atol=1e-6)


def test_maces_model_mace_trains_without_shift_and_first_self_connection(tmp_path, data):
    """``--model MACE`` trains mace-torch's default model: the RMS-force scale of ScaleShiftMACE but no shift, and
    its first layer without a self-connection; the calculator reads it back from the model file. ``--scaling
    no_scaling``: a scale of 1."""
    shifted = load_model(train(tmp_path, data, "shifted", "--max_num_epochs", "1") / "shifted.model")
    run = train(tmp_path, data, "mace", "--max_num_epochs", "1", "--model", "MACE")
    model = load_model(run / "mace.model")
    assert model.config.energy_shift == 0.0 and shifted.config.energy_shift != 0.0
    assert model.config.energy_scale == shifted.config.energy_scale
    assert not model.config.first_self_connection and model.layers[0].skip is None
    assert "no self-connection in the first layer" in (run / "train.log").read_text()
    assert json.loads((run / "config.json").read_text())["model"] == "MACE"
    unscaled = train(tmp_path, data, "unscaled", "--max_num_epochs", "1", "--scaling", "no_scaling")
    assert load_model(unscaled / "unscaled.model").config.energy_scale == 1.0  # MACE's --scaling no_scaling
    atoms = ase.io.read(data, index="1")
    atoms.calc = GauntCalculator(run / "mace.model")
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-4), atol=1e-6)


@pytest.mark.parametrize(
    "stage_two",
    [[], ["--stage_two", "--start_stage_two", "1"], ["--scheduler", "ExponentialLR", "--lr_scheduler_gamma", "0.5"]],
    ids=["plain", "stage_two", "exponential"],
)
def test_restart_latest_gives_the_same_weights(tmp_path, data, stage_two):
    straight = train(tmp_path, data, "straight", "--max_num_epochs", "3", *stage_two)
    resumed = train(tmp_path, data, "resumed", "--max_num_epochs", "2", *stage_two)  # "killed" after epoch 2
    train(tmp_path, data, "resumed", "--max_num_epochs", "3", "--restart_latest", *stage_two)
    assert sorted(p.name for p in (straight / "checkpoints").iterdir()) == ["epoch-00002.pt", "epoch-00003.pt"]
    a = load_checkpoint(latest_checkpoint(straight / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(resumed / "checkpoints"))
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    with (resumed / "metrics.csv").open() as fh:  # the training time goes on from the checkpoint's
        times = [float(row["time_s"]) for row in csv.DictReader(fh)]
    assert len(times) == 3 and 0 < times[0] < times[1] < times[2] and b["time_s"] == times[2]


def _fails(tmp_path, data, name, capsys, *extra):
    """Run ``gaunt-tp train`` expecting bad input: status 2 and one line on stderr, which is returned."""
    argv = ["train", "--train_file", str(data), "--work_dir", str(tmp_path), "--name", name, *SMALL, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_run_folder_is_resumed_or_refused_never_overwritten(tmp_path, data, capsys):
    """Without ``--restart_latest`` a folder holding a run is refused (a forgotten flag after a crash must not
    overwrite its checkpoints); with it, other model options are refused by name; the history keeps one row per
    epoch when a crash fell between writing a row and writing its checkpoint."""
    run = train(tmp_path, data, "kept", "--max_num_epochs", "2")
    before, log = latest_checkpoint(run / "checkpoints").read_bytes(), (run / "train.log").read_text()
    assert "already holds a training run" in _fails(tmp_path, data, "kept", capsys, "--max_num_epochs", "3")
    assert latest_checkpoint(run / "checkpoints").read_bytes() == before
    assert (run / "train.log").read_text() == log  # the refused run's error is not the kept run's
    message = _fails(tmp_path, data, "kept", capsys, "--restart_latest", "--num_channels", "8", "--max_ell", "1")
    assert "written with other options (--max_ell 2 -> 1, --num_channels 4 -> 8)" in message
    assert json.loads((run / "config.json").read_text())["num_channels"] == 4  # the run's options, kept
    message = _fails(tmp_path, data, "kept", capsys, "--restart_latest", "--seed", "7", "--valid_fraction", "0.2")
    assert "written with other options (--seed 123 -> 7, --valid_fraction 0.1 -> 0.2)" in message  # another split
    moved = tmp_path / "more.xyz"  # other data under the restored weights, split and normalisation: another run
    moved.write_bytes(data.read_bytes())
    message = _fails(tmp_path, data, "kept", capsys, "--restart_latest", "--train_file", str(moved))
    assert f"written with other options (--train_file '{data}' -> '{moved}')" in message
    message = _fails(tmp_path, data, "kept", capsys, "--restart_latest", "--radial_MLP", "[64, 32]")
    assert "written with other options (--radial_mlp [64, 64, 64] -> [64, 32])" in message
    message = _fails(tmp_path, data, "kept", capsys, "--restart_latest", "--model", "MACE")  # no shift, another block
    assert "written with other options (--first_self_connection True -> False, --model 'ScaleShiftMACE' -> 'MACE')" in (
        message
    )
    latest_checkpoint(run / "checkpoints").unlink()  # as if killed after epoch 2's row, before its checkpoint
    train(tmp_path, data, "kept", "--max_num_epochs", "3", "--restart_latest")
    assert [int(r["epoch"]) for r in _rows(run)] == [1, 2, 3]


@pytest.mark.parametrize("change", ["start_swa", "max_num_epochs"])
def test_stage_two_state_survives_a_restart_with_other_options(tmp_path, data, change):
    """Stage two turned on at a restart starts there (best loss reset, logged once); once started, it goes on
    even when the new options would place it later."""
    if change == "start_swa":  # 2 plain epochs, then stage two asked to start after epoch 1
        run = train(tmp_path, data, "s", "--max_num_epochs", "2")
        train(tmp_path, data, "s", "--max_num_epochs", "3", "--swa", "--start_swa", "1", "--restart_latest")
        lrs, started = [0.01, 0.01, 0.001], 2
    else:  # stage two from epoch 2 of 2, then 2 more epochs: the default start would now be after epoch 3
        run = train(tmp_path, data, "m", "--max_num_epochs", "2", "--swa", "--start_swa", "1")
        train(tmp_path, data, "m", "--max_num_epochs", "4", "--swa", "--restart_latest")
        lrs, started = [0.01, 0.001, 0.001, 0.001], 1
    assert [float(r["lr"]) for r in _rows(run)] == lrs
    assert (run / "train.log").read_text().count("stage two from epoch") == 1
    assert load_checkpoint(latest_checkpoint(run / "checkpoints"))["stage_two_after"] == started


def test_a_diverging_run_stops_with_a_clear_error(tmp_path, data, capsys):
    message = _fails(tmp_path, data, "nan", capsys, "--lr", "1e200", "--ema", "false", "--max_num_epochs", "3")
    assert "epoch 1: the training loss is not finite" in message and "lower --lr" in message
    assert not (tmp_path / "nan" / "nan.model").exists()


def test_keep_checkpoints_keeps_every_evaluated_epoch(tmp_path, data):
    run = train(tmp_path, data, "kept", "--max_num_epochs", "3", "--keep_checkpoints")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"epoch-0000{i}.pt" for i in (1, 2, 3)]
    train(tmp_path, data, "kept", "--max_num_epochs", "2", "--restart_latest", "--keep_checkpoints")  # nothing left
    assert "epoch 3 reached --max_num_epochs 2: no epoch left to train" in (run / "train.log").read_text()
    assert len(_rows(run)) == 3


def test_time_budget_stops_after_the_epoch_that_spends_it(tmp_path, data):
    run = train(tmp_path, data, "timed", "--max_num_epochs", "50", "--max_time_minutes", "1e-6")
    assert load_checkpoint(latest_checkpoint(run / "checkpoints"))["epoch"] == 1
    assert (run / "errors.json").is_file() and (run / "timed.model").is_file()
    with pytest.raises(ValueError, match="max_time_minutes"):
        config_from_args(["--train_file", str(data), "--max_time_minutes", "0"])


def test_corrupted_checkpoint_is_a_clear_error_and_the_previous_survives(tmp_path, data):
    run = train(tmp_path, data, "crash", "--max_num_epochs", "2")
    latest = latest_checkpoint(run / "checkpoints")
    latest.write_bytes(latest.read_bytes()[:100])
    args = ["train", "--train_file", str(data), "--work_dir", str(tmp_path), "--name", "crash", *SMALL]
    assert main([*args, "--max_num_epochs", "3", "--restart_latest"]) == 2  # the CLI's status for bad input
    assert "truncated or corrupted" in (run / "train.log").read_text().splitlines()[-1]
    previous = sorted((run / "checkpoints").glob("epoch-*.pt"))[0]
    assert previous != latest and load_checkpoint(previous)["epoch"] == 1


def test_stage_two_switches_loss_weights_and_learning_rate(tmp_path, data):
    """MACE's stage two: after ``start_swa`` epochs the loss has the stage-two weights and the learning rate is
    ``swa_lr``; the validation loss logged is the weighted sum of the logged squared errors."""
    run = train(tmp_path, data, "two", "--max_num_epochs", "3", "--swa", "--start_swa", "1", "--swa_lr", "0.002",
                "--swa_energy_weight", "500", "--swa_forces_weight", "20", "--plots", "true")  # fmt: skip
    assert (run / "learning_curve.png").is_file()  # with the start of stage two marked
    with (run / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["lr"]) for r in rows] == [0.01, 0.002, 0.002]
    for row, (w_e, w_f) in zip(rows, [(1.0, 100.0), (500.0, 20.0), (500.0, 20.0)]):
        e, f = float(row["rmse_e_meV_per_atom"]) / 1e3, float(row["rmse_f_meV_per_A"]) / 1e3
        assert float(row["valid_loss"]) == pytest.approx(w_e * e**2 + w_f * f**2, rel=1e-9)
    default = config_from_args(["--train_file", "a.xyz", "--stage_two", "--max_num_epochs", "12"])
    assert (default.stage_two_after, config_from_args(["--train_file", "a.xyz"]).stage_two_after) == (9, None)
    with pytest.raises(ValueError, match="start_swa must be in 0..max_num_epochs-1=3"):
        config_from_args(["--train_file", "a.xyz", "--swa", "--start_swa", "4", "--max_num_epochs", "4"])
    help_text = " ".join(build_parser().format_help().split())
    assert (
        "--swa_energy_weight SWA_ENERGY_WEIGHT, --stage_two_energy_weight SWA_ENERGY_WEIGHT energy weight in stage two "
        "(default 1000.0)" in help_text
    )


def test_exponential_schedule_falls_every_epoch_until_stage_two(tmp_path, data, capsys):
    """MACE's ExponentialLR: the learning rate used in epoch k is lr * gamma**(k-1) (metrics.csv logs the rate each
    epoch trained with, evaluated or not), then swa_lr in stage two; a restart under the other schedule is refused."""
    schedule = ["--scheduler", "ExponentialLR", "--lr_scheduler_gamma", "0.5", "--eval_interval", "2", "--swa"]
    run = train(tmp_path, data, "exp", "--max_num_epochs", "4", *schedule, "--start_swa", "3", "--swa_lr", "0.003")
    assert [(int(r["epoch"]), float(r["lr"])) for r in _rows(run)] == [(2, 0.005), (4, 0.003)]
    ckpt = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert ckpt["scheduler"]["last_epoch"] == 3  # stepped after epochs 1-3, not in stage two
    message = _fails(tmp_path, data, "exp", capsys, "--max_num_epochs", "5", "--restart_latest")
    assert "--scheduler 'ExponentialLR' -> 'ReduceLROnPlateau'" in message
    with pytest.raises(ValueError, match="lr_scheduler_gamma must be > 0.0 and < 1.0, got 1.5"):
        config_from_args(["--train_file", "a.xyz", "--lr_scheduler_gamma", "1.5"])
    with pytest.raises(ValueError, match="scheduler must be 'ReduceLROnPlateau' or 'ExponentialLR', got 'cosine'"):
        config_from_args(["--train_file", "a.xyz", "--scheduler", "cosine"])


def test_learning_curve_draws_the_learning_rate_where_the_history_has_it(tmp_path):
    import matplotlib.image

    from gaunt_tp.training.plots import learning_curve
    from gaunt_tp.training.records import append_csv

    for name, extra in (("with", lambda e: {"lr": 0.01 * 0.5**e}), ("without", lambda e: {})):
        for epoch in (1, 2, 3):
            row = {"epoch": epoch, "train_loss": 2.0 / epoch, "valid_loss": 1.0, "rmse_e_meV_per_atom": 3.0,
                   "rmse_f_meV_per_A": 4.0, **extra(epoch)}  # fmt: skip
            append_csv(tmp_path / f"{name}.csv", row)
        learning_curve(tmp_path / f"{name}.csv", tmp_path / f"{name}.png", stage_two_after=2)
    with_rate, without = (matplotlib.image.imread(tmp_path / f"{n}.png") for n in ("with", "without"))
    assert with_rate.shape == without.shape and not np.array_equal(with_rate, without)


def test_top_level_help_version_and_unknown_command(capsys):
    import e3nn

    from gaunt_tp import __version__

    assert main(["--version"]) == 0
    expected = f"gaunt-tp {__version__} (torch {torch.__version__}, e3nn {e3nn.__version__})"
    assert capsys.readouterr().out.strip() == expected
    assert main(["--help"]) == 0 and "gaunt-tp train" in capsys.readouterr().out
    assert main(["fit"]) == 2 and "unknown command 'fit'" in capsys.readouterr().err


def test_error_table_sets_the_log_line_and_metrics_hold_both(tmp_path, data):
    run = train(tmp_path, data, "mae", "--max_num_epochs", "1", "--error_table", "PerAtomMAE")
    (row,) = _rows(run)
    logged = (run / "train.log").read_text()
    assert f"MAE_E={float(row['mae_e_meV_per_atom']):.2f} meV/atom MAE_F={float(row['mae_f_meV_per_A']):.2f}" in logged
    assert "RMSE_E=" not in logged and float(row["rmse_f_meV_per_A"]) > float(row["mae_f_meV_per_A"])
    run = train(tmp_path, data, "total", "--max_num_epochs", "1", "--error_table", "TotalRMSE")
    (row,) = _rows(run)
    logged = (run / "train.log").read_text()
    assert f"RMSE_E={float(row['rmse_e_meV']):.2f} meV RMSE_F={float(row['rmse_f_meV_per_A']):.2f} meV/A" in logged


def test_symmetric_product_blocks_train_and_serve(tmp_path, data):
    """``--product_blocks symmetric`` (with MACE's convolution, paths kept apart): trained, saved, loaded by the
    calculator, forces = -grad E."""
    run = train(tmp_path, data, "sym", "--max_num_epochs", "1", "--product_blocks", "symmetric",
                "--conv_blocks", "e3nn", "--separate_paths")  # fmt: skip
    atoms = ase.io.read(data, index="1")
    atoms.calc = GauntCalculator(run / "sym.model")
    assert type(atoms.calc.model.layers[0].product).__name__ == "SymmetricContraction"
    assert atoms.calc.model.config.separate_paths and len(atoms.calc.model.layers[1].conv.irreps_out) > 4
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-4), atol=1e-6)


def _rows(run):
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_a_restart_applies_changed_optimiser_options_and_refuses_another_optimiser(tmp_path, data, capsys):
    """The checkpoint's optimiser and scheduler state hold the learning rate, weight decay and schedule settings:
    values changed at a restart are applied over them (and logged), not recorded in config.json and then ignored;
    another optimiser, AMSGrad setting or schedule is refused."""
    run = train(tmp_path, data, "re", "--max_num_epochs", "2", "--weight_decay", "0")
    changed = ["--lr", "0.002", "--weight_decay", "0.1", "--lr_factor", "0.5", "--scheduler_patience", "3"]
    train(tmp_path, data, "re", "--max_num_epochs", "3", "--restart_latest", *changed)
    assert [float(r["lr"]) for r in _rows(run)] == [0.01, 0.01, 0.002]
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert {(g["lr"], g["weight_decay"]) for g in state["optimizer"]["param_groups"]} == {(0.002, 0.1)}
    assert (state["scheduler"]["factor"], state["scheduler"]["patience"]) == (0.5, 3)
    assert (
        "restarted with other optimiser options, applied: --lr 0.01 -> 0.002, --weight_decay 0.0 -> 0.1, "
        "--lr_factor 0.8 -> 0.5, --scheduler_patience 50 -> 3"
    ) in (run / "train.log").read_text()
    train(tmp_path, data, "re", "--max_num_epochs", "4", "--restart_latest", *changed)  # unchanged now: kept
    assert [float(r["lr"]) for r in _rows(run)][-1] == 0.002 and (run / "train.log").read_text().count("applied") == 1
    for other, said in ((["--optimizer", "adamw"], "--optimizer 'adam' -> 'adamw'"),
                        (["--amsgrad", "false"], "--amsgrad True -> False")):  # fmt: skip
        message = _fails(tmp_path, data, "re", capsys, "--max_num_epochs", "5", "--restart_latest", *changed, *other)
        assert f"written with other options ({said})" in message


def test_patience_stops_the_run_or_starts_stage_two(tmp_path, data):
    """With a learning rate of 0 (and no EMA) the validation loss never improves after epoch 1: ``--patience 2``
    stops after epoch 3; with ``--swa`` it starts stage two after epoch 3 instead (MACE's rule), and stops two
    evaluations after stage two's first; a run killed inside and restarted does the same, and one restarted after
    it stopped trains no more epochs (unless given more patience)."""
    frozen = ("--lr", "0", "--ema", "false", "--patience", "2", "--max_num_epochs", "10")
    stop = train(tmp_path, data, "stop", *frozen)
    assert len(_rows(stop)) == 3
    exported = (stop / "stop.model").read_bytes()
    train(tmp_path, data, "stop", *frozen, "--restart_latest")  # as if killed in the final tables: no more epochs
    assert len(_rows(stop)) == 3 and (stop / "stop.model").read_bytes() == exported
    assert "the run had stopped after epoch 3: no better validation loss for 2 evaluations" in (
        (stop / "train.log").read_text()
    )
    train(tmp_path, data, "stop", *frozen[:5], "3", *frozen[6:], "--restart_latest")  # more patience: one more
    assert len(_rows(stop)) == 4
    two = train(tmp_path, data, "two", *frozen, "--swa", "--swa_lr", "0")
    assert len(_rows(two)) == 6
    assert load_checkpoint(latest_checkpoint(two / "checkpoints"))["stage_two_after"] == 3
    killed = train(tmp_path, data, "killed", *frozen[:-1], "4", "--swa", "--swa_lr", "0")
    resumed = train(tmp_path, data, "killed", *frozen, "--swa", "--swa_lr", "0", "--restart_latest")
    assert resumed == killed and [r["valid_loss"] for r in _rows(resumed)] == [r["valid_loss"] for r in _rows(two)]
    with pytest.raises(ValueError, match="patience must be >= 1"):
        config_from_args(["--train_file", "a.xyz", "--patience", "0"])


def test_gradients_are_clipped_at_mace_default(tmp_path, data, monkeypatch):
    norms = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda p, max_norm: norms.append(max_norm) or clip(p, max_norm)
    )
    train(tmp_path, data, "clipped", "--max_num_epochs", "1")
    assert norms and set(norms) == {10.0}
    norms.clear()
    train(tmp_path, data, "unclipped", "--max_num_epochs", "1", "--clip_grad", "0")
    assert norms == []
    assert config_from_args(["--train_file", "a.xyz", "--clip_grad", "None"]).clip_grad is None  # MACE's spelling
    assert config_from_args(["--train_file", "a.xyz"]).clip_grad == 10.0
    with pytest.raises(ValueError, match="argument --clip_grad: expected a number or None, got 'ten'"):
        config_from_args(["--train_file", "a.xyz", "--clip_grad", "ten"])


def test_config_type_weights_scale_the_loss(tmp_path, data):
    """A zero weight for every configuration's type zeroes the loss, not the errors; JSON or (as mace-torch reads it)
    a Python literal; bad mappings are clear errors."""
    kind = ase.io.read(data, index="0").info.get("config_type", "Default")
    run = train(tmp_path, data, "weighted", "--max_num_epochs", "1", "--config_type_weights", json.dumps({kind: 0}))
    (row,) = _rows(run)
    assert float(row["train_loss"]) == 0.0 and float(row["valid_loss"]) == 0.0 and float(row["rmse_f_meV_per_A"]) > 0
    assert "no training or validation configuration" not in (run / "train.log").read_text()
    run = train(tmp_path, data, "misspelt", "--max_num_epochs", "1", "--config_type_weights", '{"Defualt": 2.0}')
    assert (
        "--config_type_weights ['Defualt']: no training or validation configuration has such a config_type"
        in (run / "train.log").read_text()
    )
    for bad in ('{"Default": -1}', "Default=1", "[1, 2]", '{"Default": Infinity}', "{'Default': float('nan')}"):
        with pytest.raises(ValueError, match="config_type_weights must"):
            config_from_args(["--train_file", "a.xyz", "--config_type_weights", bad])
    python = config_from_args(["--train_file", "a.xyz", "--config_type_weights", "{'Default': 1.0, 'bulk': 10}"])
    assert python.type_weights == {"Default": 1.0, "bulk": 10.0}  # a Python literal, as mace-torch reads it
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("train_file: a.xyz\nconfig_type_weights: {Default: 2.0, bulk: 10}\n")
    assert config_from_args(["--config", str(yaml_file)]).type_weights == {"Default": 2.0, "bulk": 10.0}


def test_e0s_average_needs_every_element_in_the_training_data(tmp_path, data, shared_data, capsys):
    """3BPA's nitrogen only in the test file: 'average' has no E0 for it (least squares would give it 0 eV), an
    error; with E0s given for it, a warning that the model is not trained on it."""
    test = tmp_path / "with_nitrogen.xyz"
    ase.io.write(test, ase.io.read(shared_data / "3bpa" / "train_300K.xyz", index=":2"))
    message = _fails(tmp_path, data, "n", capsys, "--test_file", str(test), "--max_num_epochs", "1")
    assert "'average': elements Z=[7] appear in no training configuration" in message
    e0s = "{1: -13.6, 6: -1029.5, 7: -1485.0, 8: -2041.9}"
    run = train(tmp_path, data, "n2", "--test_file", str(test), "--max_num_epochs", "1", "--E0s", e0s)
    assert "elements Z=[7] appear only in the validation or test data" in (run / "train.log").read_text()
    json.loads((run / "errors.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in errors.json"))


def test_validation_and_test_files_may_lack_forces(tmp_path, data, capsys):
    """Energy-only validation and test configurations are read (as ``gaunt-tp eval`` reads them): their force errors
    are over no labels (null in errors.json), their energy errors are there; a training file still needs forces."""
    frames = ase.io.read(data, index=":")
    for atoms in frames:
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.calc = None
    energy_only = tmp_path / "energy_only.xyz"
    ase.io.write(energy_only, frames[:6])
    run = train(tmp_path, data, "partial", "--max_num_epochs", "1", "--valid_file", str(energy_only),
                "--test_file", str(energy_only))  # fmt: skip
    errors = json.loads((run / "errors.json").read_text())
    for split in ("valid", "test"):
        assert errors[split]["all"]["rmse_f_meV_per_A"] is None and errors[split]["all"]["rmse_e_meV_per_atom"] > 0
    assert errors["train"]["all"]["rmse_f_meV_per_A"] > 0
    assert "energy_only.xyz#0: no forces" in _fails(tmp_path, energy_only, "none", capsys, "--max_num_epochs", "1")


def test_warnings_of_the_data_and_the_e0s_are_in_train_log(tmp_path, data):
    """What the readers and the E0s warn of (a misspelt key; E0s that one composition leaves undetermined) is in
    train.log, as the other notes on the data are, not only printed by the warnings module."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        run = train(tmp_path, data, "warned", "--max_num_epochs", "1", "--energy_key", "REF_enrgy")
    assert not [w for w in shown if issubclass(w.category, InputWarning)]  # logged instead, without a source line
    log = (run / "train.log").read_text()
    assert "energy key 'REF_enrgy' is in none of its 12 configurations" in log
    assert "E0s 'average': the element counts of the 11 configurations fix only 1 combination(s) of the 3 E0s" in log


def test_isolated_atoms_in_the_training_file_give_the_e0s_and_are_no_training_data(tmp_path, data, shared_data):
    """MACE's IsolatedAtom configurations (no forces) in the training file: with 'average' they are the E0s, with
    an explicit mapping they are set aside; in neither case are they trained, validated or tested on (the test
    file's are left out with a log line)."""
    isolated = ase.io.read(shared_data / "ethanol" / "isolated_atoms.xyz", index=":3")  # H, C, O
    for atoms in isolated:
        atoms.info["config_type"] = "IsolatedAtom"
    mixed = tmp_path / "mixed.xyz"
    ase.io.write(mixed, [isolated[0], *ase.io.read(data, index=":")[:6], *isolated[1:]])
    want = {int(a.numbers[0]): a.get_potential_energy() for a in isolated}
    for name, extra, e0s in (("iso", [], want), ("explicit", ["--E0s", "{1: -13.0, 6: -1025.0, 8: -2035.0}"],
                                                 {1: -13.0, 6: -1025.0, 8: -2035.0})):  # fmt: skip
        run = train(tmp_path, mixed, name, "--max_num_epochs", "1", "--valid_fraction", "0.5", "--test_file",
                    str(mixed), *extra)  # fmt: skip
        model = load_model(run / f"{name}.model")
        assert dict(zip(model.config.atomic_numbers, model.config.e0s)) == pytest.approx(e0s, abs=0)
        counts = {split: rows["all"]["n"] for split, rows in json.loads((run / "errors.json").read_text()).items()}
        assert counts == {"train": 3, "valid": 3, "test": 6}
        says = "give the E0s" if name == "iso" else "are left out: --E0s gives the E0s"
        log = (run / "train.log").read_text()
        assert f"3 isolated atoms (config_type IsolatedAtom) {says}" in log
        assert f"{mixed}: 3 isolated atoms (config_type IsolatedAtom) are left out of the test set" in log


def test_errors_json_is_strict_json(tmp_path):
    from gaunt_tp.training.records import write_json

    write_json(tmp_path / "e.json", {"valid": [{"rmse_e": float("nan"), "rmse_f": 1.5, "n": 2}]})
    text = (tmp_path / "e.json").read_text()
    strict = json.loads(text, parse_constant=lambda c: pytest.fail(c))
    assert strict == {"valid": [{"rmse_e": None, "rmse_f": 1.5, "n": 2}]}


@pytest.mark.parametrize(
    "command, problem, message",
    [
        ("train", "missing", "no such file"),
        ("train", "no_forces", "#0: no forces (looked for arrays['REF_forces']"),
        ("train", "bad_option", "product_blocks must be 'gaunt' or 'symmetric'"),
        ("train", "bad_device", "device must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got 'gpu'"),
        ("train", "bad_flag", "argument --lr: invalid float value: 'fast' (gaunt-tp train --help lists the options)"),
        ("eval", "bad_flag", "unrecognized arguments: --fast"),
        ("eval", "missing", "no such file"),
        ("eval", "bad_model", "not a readable gaunt-tp model"),
        ("eval", "bad_option", "default_dtype must be 'float32' or 'float64', got 'float16'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_status_2(tmp_path, data, capsys, command, problem, message):
    """Missing or malformed files and options: ``gaunt-tp`` prints what is wrong with what, no traceback."""
    configs, extra = data, []
    if problem == "missing":
        configs = tmp_path / "nowhere.xyz"
    elif problem == "no_forces":
        configs = tmp_path / "energies_only.xyz"
        frames = ase.io.read(data, index=":3")
        for atoms in frames:
            atoms.calc = None
            atoms.info["REF_energy"] = -1.0
        ase.io.write(configs, frames, format="extxyz")
    elif problem == "bad_option":  # checked before any file is read
        extra = ["--product_blocks", "cubic"] if command == "train" else ["--default_dtype", "float16"]
    elif problem == "bad_device":  # checked before the run folder is made
        extra = ["--device", "gpu"]
    elif problem == "bad_flag":  # argparse's own errors: one line too, not the usage text
        extra = ["--lr", "fast"] if command == "train" else ["--fast"]
    if command == "train":
        argv = ["train", "--train_file", str(configs), "--work_dir", str(tmp_path), "--name", "bad", *SMALL, *extra]
    else:
        model = tmp_path / "x.model"
        if problem == "bad_model":
            model.write_bytes(b"not a model")
        elif problem not in ("bad_option", "bad_flag"):
            train(tmp_path, data, "x", "--max_num_epochs", "1")
            model = tmp_path / "x" / "x.model"
        argv = ["eval", "--configs", str(configs), "--model", str(model), "--output", str(tmp_path / "out.xyz"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"gaunt-tp {command}: error: ") and message in err[0], err
    assert not (tmp_path / "out.xyz").exists()
    if problem.startswith("bad_"):  # options are checked before the run folder is made
        assert not (tmp_path / "bad").exists()


def test_maces_radial_mlp_and_mlp_irreps_shape_the_model(tmp_path, data):
    """``--radial_MLP`` and ``--MLP_irreps`` reach the model (and its export); a run with them resumes."""
    run = train(tmp_path, data, "shaped", "--max_num_epochs", "1", "--radial_MLP", "[8, 8]", "--MLP_irreps", "4x0e")
    model = load_model(run / "shaped.model")
    assert (model.config.radial_mlp, model.config.readout_hidden) == ((8, 8), 4)
    default = load_model(train(tmp_path, data, "default", "--max_num_epochs", "1") / "default.model")
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in default.parameters())
    train(tmp_path, data, "shaped", "--max_num_epochs", "2", "--restart_latest", "--radial_MLP", "8,8",
          "--MLP_irreps", "4x0e")  # fmt: skip
    assert [int(r["epoch"]) for r in _rows(run)] == [1, 2]
