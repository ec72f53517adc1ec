"""``gaunt-tp eval``: predictions written into extxyz, and the error table where references exist."""

import re

import ase.io
import numpy as np
import pytest
from ase.stress import voigt_6_to_full_3x3_stress
from small_runs import train

from gaunt_tp.calculator import GauntCalculator
from gaunt_tp.data import read_any, read_configurations
from gaunt_tp.training.cli import main
from gaunt_tp.training.predict import predict


def test_eval_writes_predictions(tmp_path, data, capsys):
    run = train(tmp_path, data, "ev", "--max_num_epochs", "1")
    out = tmp_path / "pred.xyz"
    assert main(["eval", "--configs", str(data), "--model", str(run / "ev.model"), "--output", str(out)]) == 0
    frames = ase.io.read(out, index=":")
    assert len(frames) == 12 and "gaunt_energy" in frames[0].info and frames[0].arrays["gaunt_forces"].shape == (9, 3)
    assert "RMSE E" in capsys.readouterr().out
    # the input's own labels (here ASE's energy= and forces) are written back beside the predictions
    inputs = ase.io.read(data, index=":")
    assert [a.get_potential_energy() for a in frames] == pytest.approx([a.get_potential_energy() for a in inputs])


def test_eval_in_batches_equals_the_calculator_one_configuration_at_a_time(tmp_path, data, capsys):
    """Batches of 5 over 12 configurations, half of them in periodic cells, half without a cell (stress predicted
    for the first alone): ``predict`` to 1e-10 in float64, and the file ``gaunt-tp eval`` writes (extxyz keeps 8
    decimals)."""
    run = train(tmp_path, data, "batched", "--max_num_epochs", "1")
    frames = ase.io.read(data, index=":")
    for atoms in frames[::2]:
        atoms.pbc = True  # the 50 A cell of the file: no image within the cutoff, but a stress
    for atoms in frames[1::2]:
        atoms.cell = None  # no volume: no stress
    mixed, out = tmp_path / "mixed.xyz", tmp_path / "pred.xyz"
    ase.io.write(mixed, frames)
    args = ["eval", "--configs", str(mixed), "--model", str(run / "batched.model"), "--output", str(out)]
    assert main([*args, "--batch_size", "5"]) == 0
    calc = GauntCalculator(run / "batched.model")
    predictions, table = predict(calc.model, read_configurations(mixed), batch_size=5)
    assert table["all"]["n"] == 12
    from_atoms, unlabelled = predict(calc.model, frames, batch_size=5)  # ase.Atoms: the structures, no labels
    assert unlabelled == {} and [p.energy for p in from_atoms] == [p.energy for p in predictions]
    for atoms, p, written in zip(frames, predictions, ase.io.read(out, index=":"), strict=True):
        atoms.calc = calc
        np.testing.assert_allclose(p.energy, atoms.get_potential_energy(), rtol=1e-13)
        np.testing.assert_allclose(p.forces, atoms.get_forces(), atol=1e-10)
        np.testing.assert_allclose(p.energies, atoms.get_potential_energies(), atol=1e-10)
        np.testing.assert_allclose(written.info["gaunt_energy"], p.energy, rtol=1e-13)
        np.testing.assert_allclose(written.arrays["gaunt_forces"], p.forces, atol=1e-7)
        np.testing.assert_allclose(written.arrays["gaunt_energies"], p.energies, atol=1e-7)
        if atoms.cell.rank == 3:
            np.testing.assert_allclose(p.stress, voigt_6_to_full_3x3_stress(atoms.get_stress()), atol=1e-10)
            np.testing.assert_allclose(np.reshape(written.info["gaunt_stress"], (3, 3)), p.stress, atol=1e-7)
        else:
            assert p.stress is None and "gaunt_stress" not in written.info
    capsys.readouterr()
    assert main([*args, "--batch_size", "0"]) == 2
    assert "batch_size must be >= 1, got 0" in capsys.readouterr().err


def test_eval_writes_the_calculators_descriptors_when_asked(tmp_path, data):
    run = train(tmp_path, data, "desc", "--max_num_epochs", "1")
    out = tmp_path / "pred.xyz"
    args = ["eval", "--configs", str(data), "--model", str(run / "desc.model"), "--output", str(out), "--batch_size"]
    assert main([*args, "4", "--descriptors"]) == 0
    calc = GauntCalculator(run / "desc.model")
    width = calc.model.config.num_interactions * calc.model.config.num_channels
    for atoms, written in zip(ase.io.read(data, index=":"), ase.io.read(out, index=":"), strict=True):
        assert written.arrays["gaunt_descriptors"].shape == (len(atoms), width)
        np.testing.assert_allclose(written.arrays["gaunt_descriptors"], calc.get_descriptors(atoms), atol=1e-7)
    assert main([*args, "4"]) == 0  # not asked: not written
    assert "gaunt_descriptors" not in ase.io.read(out, index=0).arrays


def test_eval_refuses_outputs_it_could_not_write_before_any_work(tmp_path, data, capsys):
    """An output name extxyz can take, in a folder that exists, and a usable device, checked first: each a
    one-line error (status 2) before the model or the data is read (here: neither exists)."""
    base = ["eval", "--configs", str(tmp_path / "none.xyz"), "--model", str(tmp_path / "none.model")]
    for extra, message in (
        (["--output", str(tmp_path / "out.traj")], "written as extxyz, so it must end in .xyz or .extxyz"),
        (["--output", str(tmp_path / "no" / "out.xyz")], "no such folder"),
        (["--output", str(tmp_path / "out.xyz"), "--device", "gpu"], "device must be a torch device"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err and err.count("\n") == 1, (extra, err)
    assert not list(tmp_path.iterdir())


def test_eval_keeps_the_inputs_keys_and_writes_compressed_extxyz(tmp_path, data, capsys):
    """A --prefix whose keys the input holds (its labels), that ASE reads back as labels, or that is no extxyz key
    is refused before the model runs; one the input does not use is fine whatever the label flags say; ``.xyz.gz``
    is extxyz too."""
    model = train(tmp_path, data, "prefix", "--max_num_epochs", "1") / "prefix.model"
    frames = ase.io.read(data, index=":3")
    for atoms in frames:
        atoms.info["DFT_energy"], atoms.arrays["DFT_forces"] = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
    labelled = tmp_path / "dft.xyz"
    ase.io.write(labelled, frames)
    base = ["eval", "--configs", str(labelled), "--model", str(model), "--energy_key", "DFT_energy",
            "--forces_key", "DFT_forces"]  # fmt: skip
    for prefix, taken in (("DFT_", "['DFT_energy', 'DFT_forces']"), ("", "['energies', 'energy', 'forces', 'stress']")):
        assert main([*base, "--output", str(tmp_path / "no.xyz"), "--prefix", prefix]) == 2
        assert f"would write over the keys {taken} of the input" in capsys.readouterr().err
    for prefix in ("a b_", "x:", "e=", "1st_"):  # no extxyz keys: ASE would write a file that reads back garbled
        assert main([*base, "--output", str(tmp_path / "no.xyz"), "--prefix", prefix]) == 2
        assert f"--prefix {prefix!r}: letters, digits and underscores only" in capsys.readouterr().err
    assert not (tmp_path / "no.xyz").exists()
    out = tmp_path / "pred.XYZ.gz"
    assert main([*base, "--output", str(out), "--info_prefix", "REF_"]) == 0  # MACE's name; REF_ keys unused here
    written = ase.io.read(out, index=":", format="extxyz")
    assert [a.info["DFT_energy"] for a in written] == pytest.approx([a.info["DFT_energy"] for a in frames])
    assert all(np.isfinite(a.info["REF_energy"]) and a.arrays["REF_forces"].shape == (9, 3) for a in written)


def test_eval_reads_rmd17_npz_and_writes_its_labels_in_ev(tmp_path, data, shared_data):
    run = train(tmp_path, data, "npz", "--max_num_epochs", "1")
    with np.load(shared_data / "rmd17" / "rmd17_ethanol_test_01.npz") as full:
        small = tmp_path / "ethanol_slice.npz"
        np.savez(small, **{k: full[k][:7] if k != "nuclear_charges" else full[k] for k in full.files})
    out = tmp_path / "pred.xyz"
    assert main(["eval", "--configs", str(small), "--model", str(run / "npz.model"), "--output", str(out)]) == 0
    written, configs = ase.io.read(out, index=":"), read_any(small)
    assert len(written) == 7
    for atoms, config in zip(written, configs, strict=True):
        assert atoms.info["REF_energy"] == pytest.approx(config.energy, rel=1e-12)  # eV, not kcal/mol
        np.testing.assert_allclose(atoms.arrays["REF_forces"], config.forces, atol=1e-7)
        assert atoms.arrays["gaunt_forces"].shape == (9, 3) and np.isfinite(atoms.info["gaunt_energy"])
