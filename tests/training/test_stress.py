"""Training on stress (MACE's ``--loss stress``): the loss term, the error tables, the command line."""

import csv
import dataclasses
import json
import math
import re
from types import SimpleNamespace

import ase.io
import numpy as np
import pytest
import torch
from small_runs import SMALL as TINY

from gaunt_tp.testing import emt_copper
from gaunt_tp.training.cli import main
from gaunt_tp.training.config import config_from_args
from gaunt_tp.training.metrics import ErrorAccumulator, force_delta_factors, weighted_loss

SMALL = [*TINY, "--valid_fraction", "0.25"]


@pytest.fixture(scope="module")
def copper(tmp_path_factory):
    """Twelve strained (3%) and rattled 8-atom copper cells labelled by ASE's EMT (energy, forces, stress)."""
    frames = emt_copper(12, seed=3, strain=0.03)
    path = tmp_path_factory.mktemp("copper") / "cu.xyz"
    ase.io.write(path, frames)
    return path


def _batch(stress: torch.Tensor) -> SimpleNamespace:
    """Two configurations of 1 and 2 atoms with energies, forces and the given ``[2, 3, 3]`` stress labels, in
    cells of volume 8 and 27 (the second one sheared)."""
    return SimpleNamespace(
        cell=torch.tensor([[[2.0, 0, 0], [0, 2, 0], [0, 0, 2]], [[3.0, 0, 0], [1, 3, 0], [0, 2, 3]]],
                          dtype=torch.float64),  # fmt: skip
        ptr=torch.tensor([0, 1, 3]), batch=torch.tensor([0, 1, 1]),
        weight=torch.tensor([1.0, 2.0], dtype=torch.float64),
        energy=torch.tensor([1.0, 2.0], dtype=torch.float64), forces=torch.zeros(3, 3, dtype=torch.float64),
        stress=stress, config_type=["a", "b"],
    )  # fmt: skip


def test_stress_term_of_the_loss_skips_missing_labels():
    stress = torch.randn(2, 3, 3, dtype=torch.float64)
    out = {"energy": torch.tensor([1.0, 2.0], dtype=torch.float64), "forces": torch.zeros(3, 3, dtype=torch.float64),
           "stress": torch.randn(2, 3, 3, dtype=torch.float64)}  # fmt: skip
    both = weighted_loss(_batch(stress), out, 1.0, 1.0, 7.0)
    squared = (out["stress"] - stress).square().sum((1, 2))
    expected = 1.0 * squared[0] + 2.0 * squared[1]
    assert float(both) == pytest.approx(7.0 * float(expected) / 18, rel=1e-12)  # energies and forces exact: 0
    stress[1] = float("nan")  # the second configuration has no stress label
    one = weighted_loss(_batch(stress), out, 1.0, 1.0, 7.0)
    assert float(one) == pytest.approx(7.0 * float((out["stress"][0] - stress[0]).square().sum()) / 9, rel=1e-12)
    assert float(weighted_loss(_batch(stress), out, 1.0, 1.0)) == 0.0  # no stress weight: no stress term


def test_virials_term_of_the_loss_is_the_stress_error_times_the_volume_per_atom():
    """MACE's virials loss: mean over the labelled components of ((virials error) / atoms)^2, the virials being
    -stress * volume; a configuration without a stress label is left out."""
    stress = torch.randn(2, 3, 3, dtype=torch.float64)
    out = {"energy": torch.tensor([1.0, 2.0], dtype=torch.float64), "forces": torch.zeros(3, 3, dtype=torch.float64),
           "stress": torch.randn(2, 3, 3, dtype=torch.float64)}  # fmt: skip
    virials = lambda s: -s * torch.tensor([8.0, 27.0], dtype=torch.float64)[:, None, None]  # noqa: E731
    per_atom = (virials(out["stress"]) - virials(stress)) / torch.tensor([1.0, 2.0], dtype=torch.float64)[:, None, None]
    squared = per_atom.square().sum((1, 2))
    loss = weighted_loss(_batch(stress), out, 1.0, 1.0, 0.0, 3.0)
    assert float(loss) == pytest.approx(3.0 * float(squared[0] + 2.0 * squared[1]) / 18, rel=1e-12)
    both = weighted_loss(_batch(stress), out, 1.0, 1.0, 7.0, 3.0)  # the two terms add
    assert float(both) == pytest.approx(float(loss + weighted_loss(_batch(stress), out, 1.0, 1.0, 7.0)), rel=1e-12)
    stress[0] = float("nan")
    one = weighted_loss(_batch(stress), out, 1.0, 1.0, 0.0, 3.0)
    assert float(one) == pytest.approx(3.0 * 2.0 * float(squared[1]) / 9, rel=1e-12)


def test_huber_loss_is_half_the_square_up_to_delta_and_linear_beyond():
    """MACE's ``huber`` loss: each error component through Huber's function, weighted and averaged as the squares."""
    stress = torch.zeros(2, 3, 3, dtype=torch.float64)
    out = {"energy": torch.tensor([1.3, 2.0], dtype=torch.float64), "forces": torch.zeros(3, 3, dtype=torch.float64),
           "stress": torch.zeros(2, 3, 3, dtype=torch.float64)}  # fmt: skip
    out["forces"][0, 0], out["forces"][2, 1] = 0.05, -2.0  # one force error under delta 0.1, one beyond
    out["stress"][1, 0, 2] = 0.4
    batch = _batch(stress)
    loss = weighted_loss(batch, out, 1.0, 10.0, 7.0, 0.0, 0.1)
    energy = 1.0 * 0.1 * (0.3 - 0.05) / 2  # the first configuration's 0.3 eV per atom error, weight 1, over 2
    forces = 10.0 * (0.5 * 0.05**2 + 2.0 * 0.1 * (2.0 - 0.05)) / 9  # the second atom's error weighs 2 (its config)
    stresses = 7.0 * 2.0 * 0.1 * (0.4 - 0.05) / 18
    assert float(loss) == pytest.approx(energy + forces + stresses, rel=1e-12)
    squares = weighted_loss(batch, out, 1.0, 10.0, 7.0)
    assert float(weighted_loss(batch, out, 1.0, 10.0, 7.0, 0.0, 1e3)) == pytest.approx(0.5 * float(squares), rel=1e-12)


def test_universal_loss_shrinks_the_forces_delta_where_the_reference_force_is_large():
    """MACE's ``universal`` loss: ``huber`` with each atom's force delta times 1, 0.7, 0.4 or 0.1 as its reference
    force's size is below 100, 200, 300 eV/A or beyond (the bounds belong to the upper bin); energies and stress keep
    the plain delta."""
    assert force_delta_factors(torch.tensor([0.0, 99.9, 100.0, 199.9, 200.0, 299.9, 300.0, 1e4])).tolist() == (
        pytest.approx([1.0, 1.0, 0.7, 0.7, 0.4, 0.4, 0.1, 0.1])
    )
    stress = torch.zeros(2, 3, 3, dtype=torch.float64)
    batch = _batch(stress)
    batch.forces = torch.tensor([[50.0, 0, 0], [0, 150.0, 0], [0, 0, 400.0]], dtype=torch.float64)
    out = {"energy": torch.tensor([1.3, 2.0], dtype=torch.float64), "forces": batch.forces + 0.05,
           "stress": torch.zeros(2, 3, 3, dtype=torch.float64)}  # fmt: skip
    out["stress"][1, 0, 2] = 0.4
    delta = 0.1  # every force error is 0.05: under the delta of the first atom (0.1) and the second (0.07), beyond
    loss = weighted_loss(batch, out, 1.0, 10.0, 7.0, 0.0, delta, True)  # the third's (0.01)
    energy = 1.0 * 0.1 * (0.3 - 0.05) / 2
    forces = 10.0 * (3 * 0.5 * 0.05**2 + 2.0 * 3 * 0.5 * 0.05**2 + 2.0 * 3 * 0.01 * (0.05 - 0.005)) / 9
    stresses = 7.0 * 2.0 * 0.1 * (0.4 - 0.05) / 18
    assert float(loss) == pytest.approx(energy + forces + stresses, rel=1e-12)
    batch.forces = batch.forces / 10  # every reference force below 100 eV/A: the huber loss itself
    out["forces"] = batch.forces + 0.5
    assert float(weighted_loss(batch, out, 1.0, 10.0, 7.0, 0.0, delta, True)) == pytest.approx(
        float(weighted_loss(batch, out, 1.0, 10.0, 7.0, 0.0, delta)), rel=1e-12
    )


def test_error_table_reports_stress_in_meV_per_cubic_angstrom():
    stress = torch.randn(2, 3, 3, dtype=torch.float64)
    out = {"energy": torch.tensor([1.0, 2.0], dtype=torch.float64), "forces": torch.zeros(3, 3, dtype=torch.float64),
           "stress": stress + 1e-3 * torch.arange(18, dtype=torch.float64).view(2, 3, 3)}  # fmt: skip
    acc = ErrorAccumulator()
    acc.add(_batch(stress), out)
    table = acc.table()
    errors = np.arange(18.0)  # meV/A^3
    assert table["all"]["rmse_stress_meV_per_A3"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-9)
    assert table["all"]["mae_stress_meV_per_A3"] == pytest.approx(np.mean(errors), rel=1e-9)
    assert table["b"]["rmse_stress_meV_per_A3"] == pytest.approx(np.sqrt(np.mean(errors[9:] ** 2)), rel=1e-9)
    plain = ErrorAccumulator()
    plain.add(_batch(stress), {k: v for k, v in out.items() if k != "stress"})
    assert "rmse_stress_meV_per_A3" not in plain.table()["all"]


def test_kept_values_are_the_labelled_references_and_predictions():
    """``keep_values``: energies per atom, force and stress components as (reference, predicted) pairs, missing
    labels left out; an accumulator without it refuses."""
    stress = torch.randn(2, 3, 3, dtype=torch.float64)
    stress[1] = float("nan")  # the second configuration has no stress label
    batch = _batch(stress)
    batch.forces[2] = float("nan")  # nor forces on its last atom
    out = {"energy": torch.tensor([3.0, 5.0], dtype=torch.float64), "forces": torch.randn(3, 3, dtype=torch.float64),
           "stress": torch.randn(2, 3, 3, dtype=torch.float64)}  # fmt: skip
    acc = ErrorAccumulator(keep_values=True)
    acc.add(batch, out)
    acc.add(batch, out)  # a second batch is appended
    values = acc.values()
    assert set(values) == {"energy", "forces", "stress"}
    np.testing.assert_array_equal(values["energy"][0], [1.0, 1.0, 1.0, 1.0])  # 1/1 and 2/2 eV per atom
    np.testing.assert_array_equal(values["energy"][1], [3.0, 2.5, 3.0, 2.5])
    np.testing.assert_array_equal(values["forces"][1], np.tile(out["forces"][:2].flatten().numpy(), 2))
    assert values["forces"][0].shape == (12,)
    np.testing.assert_array_equal(values["stress"][0], np.tile(stress[0].flatten().numpy(), 2))
    np.testing.assert_array_equal(values["stress"][1], np.tile(out["stress"][0].flatten().numpy(), 2))
    with pytest.raises(RuntimeError, match="keep_values"):
        ErrorAccumulator().values()


def test_history_gains_the_stress_column_when_a_restart_turns_the_stress_loss_on(tmp_path):
    from gaunt_tp.training.plots import learning_curve
    from gaunt_tp.training.records import append_csv, read_history

    history = tmp_path / "metrics.csv"
    plain = {"epoch": 1, "train_loss": 2.0, "valid_loss": 1.0, "rmse_e_meV_per_atom": 3.0, "rmse_f_meV_per_A": 4.0}
    append_csv(history, {**plain, "lr": 0.01})
    append_csv(history, {**plain, "epoch": 2, "rmse_stress_meV_per_A3": 5.0, "lr": 0.01})
    with history.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["rmse_stress_meV_per_A3"] for r in rows] == ["", "5.0"] and [r["lr"] for r in rows] == ["0.01"] * 2
    columns = read_history(history)  # by column, NaN where the earlier row had no stress
    assert columns["epoch"] == [1, 2] and columns["lr"] == [0.01, 0.01] and columns["rmse_stress_meV_per_A3"][1] == 5.0
    assert math.isnan(columns["rmse_stress_meV_per_A3"][0])
    (tmp_path / "empty.csv").write_text("epoch,lr\n")
    assert read_history(tmp_path / "empty.csv") == {}
    learning_curve(history, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").is_file()


def test_train_with_stress_loss_logs_and_tabulates_stress(tmp_path, copper, capsys, caplog, shared_data):
    """``--loss stress``: the validation loss is the weighted sum of the logged squared errors, stress included;
    the final tables and ``gaunt-tp eval`` report stress errors; a bad loss name is a clear error."""
    args = ["train", "--train_file", str(copper), "--work_dir", str(tmp_path), "--name", "cu", *SMALL,
            "--max_num_epochs", "2", "--loss", "stress", "--stress_weight", "1000", "--plots", "true"]  # fmt: skip
    assert main(args) == 0
    run = tmp_path / "cu"
    import matplotlib.image

    # three parity panels (energy, forces, stress) at 5 x 4.5 inches and 110 dpi each
    assert matplotlib.image.imread(run / "parity.png").shape[:2] == (495, 1650)
    assert (run / "learning_curve.png").is_file()
    with (run / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        e, f = float(row["rmse_e_meV_per_atom"]) / 1e3, float(row["rmse_f_meV_per_A"]) / 1e3
        s = float(row["rmse_stress_meV_per_A3"]) / 1e3
        assert s > 0
        assert float(row["valid_loss"]) == pytest.approx(e**2 + 100 * f**2 + 1000 * s**2, rel=1e-9)
    errors = json.loads((run / "errors.json").read_text())
    assert {split: errors[split]["all"]["n"] for split in ("train", "valid")} == {"train": 9, "valid": 3}
    assert np.isfinite(errors["valid"]["all"]["rmse_stress_meV_per_A3"])

    out = tmp_path / "pred.xyz"
    capsys.readouterr()
    assert main(["eval", "--configs", str(copper), "--model", str(run / "cu.model"), "--output", str(out)]) == 0
    frames = ase.io.read(out, index=":")
    assert np.asarray(frames[0].info["gaunt_stress"]).size == 9
    assert "RMSE stress (meV/A^3)" in capsys.readouterr().out
    molecules = tmp_path / "molecules.xyz"
    ase.io.write(molecules, ase.io.read(shared_data / "ethanol" / "train.xyz", index=":8"))
    assert main([*args[:2], str(molecules), *args[3:], "--name", "molecules"]) == 2
    assert re.search("no configuration of .*molecules.xyz has a stress label", capsys.readouterr().err)
    sheets = tmp_path / "sheets.xyz"  # stress labels, but on cells with a zero vector (no volume)
    frames = ase.io.read(copper, index=":")
    for atoms in frames:
        atoms.cell[2] = 0.0
        atoms.pbc = (True, True, False)
    ase.io.write(sheets, frames)
    with caplog.at_level("WARNING", logger="gaunt_tp.train"):
        assert main([*args[:2], str(sheets), *args[3:], "--name", "sheets"]) == 2
    assert "12 configurations carry stress labels in cells without volume" in caplog.text
    assert re.search("sheets.xyz has a stress label .* in a cell that spans a volume", capsys.readouterr().err)
    with pytest.raises(
        ValueError, match="loss must be 'weighted' or 'stress' or 'virials' or 'huber' or 'universal', got 'l1'"
    ):
        config_from_args(["--train_file", str(copper), "--loss", "l1"])


def test_stress_labels_count_where_the_cell_spans_a_volume_at_any_batch_size(copper):
    """A stress label counts on any cell with a volume, periodic or not (a slab with its vacuum in the cell, as ASE
    and MACE compute stress), and is left out of the error table where the cell has a zero vector (the model has no
    stress there), so the table does not depend on which configurations share a batch."""
    from gaunt_tp.data import read_configurations
    from gaunt_tp.nn import GauntMACE, ModelConfig
    from gaunt_tp.training.predict import predict

    configs = read_configurations(copper)[:3]
    assert all(c.stress is not None for c in configs)
    slab_cell = configs[1].cell.copy()
    slab_cell[2] *= 2.0  # vacuum above the slab, inside the cell
    configs[1] = dataclasses.replace(configs[1], pbc=(True, True, False), cell=slab_cell)
    sheet_cell = configs[2].cell.copy()
    sheet_cell[2] = 0.0
    configs[2] = dataclasses.replace(configs[2], pbc=(True, True, False), cell=sheet_cell)
    assert [c.has_stress for c in configs] == [True, True, False]
    torch.manual_seed(0)
    config = ModelConfig(atomic_numbers=(29,), e0s=(0.0,), r_max=4.0, max_ell=2, num_channels=4, max_L=1)
    model = GauntMACE(config).double()
    alone = predict(model, configs[:2], batch_size=1)[1]["all"]["rmse_stress_meV_per_A3"]
    for batch_size in (1, 2, 3):
        predictions, table = predict(model, configs, batch_size=batch_size)
        assert table["all"]["rmse_stress_meV_per_A3"] == pytest.approx(alone, rel=1e-12)
        assert [p.stress is None for p in predictions] == [False, False, True]


def test_final_tables_report_stress_for_periodic_data_without_the_stress_loss(tmp_path, copper):
    args = ["train", "--train_file", str(copper), "--work_dir", str(tmp_path), "--name", "plain", *SMALL,
            "--max_num_epochs", "1"]  # fmt: skip
    assert main(args) == 0
    errors = json.loads((tmp_path / "plain" / "errors.json").read_text())
    assert np.isfinite(errors["train"]["all"]["rmse_stress_meV_per_A3"])
    assert "carry stress labels, which --loss weighted does not fit" in (tmp_path / "plain" / "train.log").read_text()
    with (tmp_path / "plain" / "metrics.csv").open() as fh:
        assert "rmse_stress_meV_per_A3" not in next(csv.DictReader(fh))  # the loss has no stress term
    stage_two = ["--name", "two", "--loss", "stress", "--stress_weight", "0", "--swa", "--start_swa", "1",
                 "--swa_stress_weight", "10", "--max_num_epochs", "2"]  # fmt: skip
    assert main([*args[:5], *SMALL, *stage_two]) == 0  # a stress term in stage two only: the column, NaN before
    with (tmp_path / "two" / "metrics.csv").open() as fh:
        stresses = [float(row["rmse_stress_meV_per_A3"]) for row in csv.DictReader(fh)]
    assert len(stresses) == 2 and np.isnan(stresses[0]) and np.isfinite(stresses[1])


def test_training_on_virials_matches_training_on_their_stress(tmp_path, copper):
    """``--virials_key``: virials (eV) without stress labels train and tabulate as the stress -virials/volume does."""
    frames = ase.io.read(copper, index=":")
    for atoms in frames:
        atoms.info["virials_eV"] = -atoms.get_stress(voigt=False) * atoms.get_volume()
        atoms.info["REF_energy"], atoms.arrays["REF_forces"] = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None  # the stress is gone from the file: only the virials hold it
    virials = tmp_path / "cu_virials.xyz"
    ase.io.write(virials, frames)
    common = ["train", "--work_dir", str(tmp_path), *SMALL, "--max_num_epochs", "1", "--loss", "stress"]
    assert main([*common, "--train_file", str(copper), "--name", "stress"]) == 0
    assert main([*common, "--train_file", str(virials), "--name", "virials", "--virials_key", "virials_eV"]) == 0
    runs = [json.loads((tmp_path / name / "errors.json").read_text()) for name in ("stress", "virials")]
    for split in ("train", "valid"):
        rmse = [run[split]["all"]["rmse_stress_meV_per_A3"] for run in runs]
        assert rmse[1] == pytest.approx(rmse[0], rel=1e-6) and rmse[0] > 0


def test_train_with_the_virials_loss(tmp_path, copper):
    """``--loss virials`` (MACE's): the validation loss is the weighted sum of the squared errors of energies, forces
    and virials per atom (the stress error times volume / atoms, which lies between the copper cells' extremes);
    stage two's virials weight is its own flag."""
    from gaunt_tp.data import read_configurations

    volume_per_atom = [abs(np.linalg.det(c.cell)) / len(c.atomic_numbers) for c in read_configurations(copper)]
    args = ["train", "--train_file", str(copper), "--work_dir", str(tmp_path), "--name", "cu", *SMALL,
            "--max_num_epochs", "2", "--loss", "virials", "--virials_weight", "10", "--swa", "--start_swa", "1",
            "--swa_virials_weight", "30"]  # fmt: skip
    assert main(args) == 0
    with (tmp_path / "cu" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    for row, (w_e, w_v) in zip(rows, ((1.0, 10.0), (1000.0, 30.0))):  # stage two from the second epoch
        e, f = float(row["rmse_e_meV_per_atom"]) / 1e3, float(row["rmse_f_meV_per_A"]) / 1e3
        s = float(row["rmse_stress_meV_per_A3"]) / 1e3
        virials = float(row["valid_loss"]) - w_e * e**2 - 100 * f**2
        assert s > 0 and virials > 0
        assert w_v * (min(volume_per_atom) * s) ** 2 * (1 - 1e-6) <= virials
        assert virials <= w_v * (max(volume_per_atom) * s) ** 2 * (1 + 1e-6)
    assert "virials weight 30" in (tmp_path / "cu" / "train.log").read_text()


def test_train_with_the_huber_loss(tmp_path, copper, shared_data):
    """``--loss huber`` with a delta above every error is half the squared loss; Adam without clipping or weight
    decay takes the same steps for half the gradients, so the run's validation losses are half the weighted
    loss's (with the stress term on copper); on molecules it trains without stress."""
    common = ["train", "--work_dir", str(tmp_path), *SMALL, "--max_num_epochs", "2", "--clip_grad", "0",
              "--weight_decay", "0", "--train_file", str(copper)]  # fmt: skip
    assert main([*common, "--name", "squares", "--loss", "stress"]) == 0
    assert main([*common, "--name", "huber", "--loss", "huber", "--huber_delta", "1000"]) == 0
    # EMT's forces on copper are far below 100 eV/A: MACE's universal loss is the huber loss there
    assert main([*common, "--name", "universal", "--loss", "universal", "--huber_delta", "1000"]) == 0
    rows = {}
    for name in ("squares", "huber", "universal"):
        with (tmp_path / name / "metrics.csv").open() as fh:
            rows[name] = list(csv.DictReader(fh))
    for squares, huber, universal in zip(rows["squares"], rows["huber"], rows["universal"]):
        assert float(huber["valid_loss"]) == pytest.approx(0.5 * float(squares["valid_loss"]), rel=1e-4)
        assert {**universal, "time_s": None} == {**huber, "time_s": None}  # all but the clock
        assert float(huber["rmse_stress_meV_per_A3"]) == pytest.approx(
            float(squares["rmse_stress_meV_per_A3"]), rel=1e-4
        )
    molecules = tmp_path / "molecules.xyz"
    ase.io.write(molecules, ase.io.read(shared_data / "ethanol" / "train.xyz", index=":8"))
    assert main([*common[:-1], str(molecules), "--name", "molecules", "--loss", "huber"]) == 0
    with (tmp_path / "molecules" / "metrics.csv").open() as fh:
        assert "rmse_stress_meV_per_A3" not in next(csv.DictReader(fh))  # no stress labels: no stress term
