"""Error tables: energies per atom and per configuration, forces, over config_types."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gaunt_tp.training.metrics import ErrorAccumulator
from gaunt_tp.training.records import format_tables


def test_energy_errors_per_configuration_and_per_atom_from_molecules_of_different_sizes():
    """The total-energy errors (meV, what rMD17 and 3BPA tables quote) and those per atom differ when the
    configurations differ in size; both are in the tables, per config_type and over all."""
    sizes = np.array([3, 5, 4])
    ptr = torch.tensor([0, *np.cumsum(sizes)])
    batch = SimpleNamespace(
        ptr=ptr, energy=torch.zeros(3, dtype=torch.float64), forces=torch.zeros(int(ptr[-1]), 3, dtype=torch.float64),
        config_type=["a", "b", "b"],
    )  # fmt: skip
    errors = np.array([0.03, -0.01, 0.02])  # eV
    out = {"energy": torch.tensor(errors), "forces": batch.forces + 1e-3}
    acc = ErrorAccumulator()
    acc.add(batch, out)
    table = acc.table()
    assert table["all"]["rmse_e_meV"] == pytest.approx(1e3 * np.sqrt(np.mean(errors**2)), rel=1e-12)
    assert table["all"]["mae_e_meV"] == pytest.approx(1e3 * np.mean(np.abs(errors)), rel=1e-12)
    assert table["all"]["mae_e_meV_per_atom"] == pytest.approx(1e3 * np.mean(np.abs(errors / sizes)), rel=1e-12)
    assert table["b"]["mae_e_meV"] == pytest.approx(15.0, rel=1e-12)
    assert table["a"]["rmse_e_meV_per_atom"] == pytest.approx(10.0, rel=1e-12)
    assert table["all"]["mae_f_meV_per_A"] == pytest.approx(1.0, rel=1e-12)
    text = format_tables({"test": table})
    assert "| RMSE E (meV) |" in text and "| test | b | 2 | 3.81 | 15.81 |" in text


def test_the_count_is_of_configurations_with_any_label():
    """n counts each configuration that has an energy, forces or a stress to compare: one with only an energy and
    one with only forces are two, one with none is left out, and merging accumulators adds their counts."""
    nan = float("nan")
    ptr = torch.tensor([0, 2, 4, 6])
    forces = torch.zeros(6, 3, dtype=torch.float64)
    forces[:2] = nan  # configuration 0: an energy, no forces
    forces[4:] = nan  # configuration 2: neither
    batch = SimpleNamespace(
        ptr=ptr, energy=torch.tensor([0.0, nan, nan], dtype=torch.float64), forces=forces, config_type=["a", "a", "b"]
    )
    out = {"energy": torch.ones(3, dtype=torch.float64), "forces": torch.zeros(6, 3, dtype=torch.float64)}
    acc = ErrorAccumulator()
    acc.add(batch, out)
    table = acc.table()
    assert table["all"]["n"] == 2 and table["a"]["n"] == 2 and "b" not in table
    assert ErrorAccumulator.merged([acc, acc]).table()["all"]["n"] == 4


def test_a_prediction_that_is_not_finite_shows_in_the_table():
    """Labelled configurations are those with a finite reference: a NaN prediction for one is counted and makes the
    errors NaN, rather than being taken for a missing label and left out."""
    ptr = torch.tensor([0, 2, 4])
    batch = SimpleNamespace(
        ptr=ptr, energy=torch.zeros(2, dtype=torch.float64), forces=torch.zeros(4, 3, dtype=torch.float64),
        config_type=["a", "a"],
    )  # fmt: skip
    out = {"energy": torch.tensor([0.1, float("nan")], dtype=torch.float64), "forces": torch.zeros(4, 3)}
    out["forces"][2:] = float("inf")
    acc = ErrorAccumulator()
    acc.add(batch, out)
    table = acc.table()["all"]
    assert table["n"] == 2 and np.isnan(table["rmse_e_meV"]) and not np.isfinite(table["rmse_f_meV_per_A"])
