"""Fine-tuning from a trained model (--foundation_model): its architecture, elements, weights and E0s."""

import ase
import ase.io
import pytest
import torch
from small_runs import SMALL as TINY

from gaunt_tp.data.readers import read_configurations
from gaunt_tp.nn.serialization import load_model
from gaunt_tp.training.cli import main
from gaunt_tp.training.config import config_from_args
from gaunt_tp.training.predict import predict

SMALL = [*TINY, "--max_num_epochs", "1"]


@pytest.fixture(scope="module")
def foundation(shared_data, tmp_path_factory):
    """A model trained one epoch on 12 ethanol configurations, and 12 others to fine-tune it on."""
    folder = tmp_path_factory.mktemp("foundation")
    frames = ase.io.read(shared_data / "ethanol" / "train.xyz", index=":24")
    ase.io.write(folder / "first.xyz", frames[:12])
    ase.io.write(folder / "more.xyz", frames[12:])
    args = ["train", "--train_file", str(folder / "first.xyz"), "--work_dir", str(folder), "--name", "first"]
    assert main([*args, *SMALL]) == 0
    return folder / "first" / "first.model", folder / "more.xyz"


def _fine_tune(tmp_path, foundation, name, *extra):
    model, data = foundation
    args = ["train", "--train_file", str(data), "--work_dir", str(tmp_path), "--name", name, *SMALL]
    assert main([*args, "--foundation_model", str(model), *extra]) == 0
    return tmp_path / name


@pytest.mark.parametrize("e0s", ["foundation", "{1: -13.0, 6: -1025.0, 8: -2035.0}"])
def test_fine_tuning_starts_from_the_foundation_weights_and_architecture(tmp_path, foundation, e0s):
    """At a learning rate of 1e-12 one epoch leaves the weights where they started: the foundation's, in its
    architecture (asking for 8 channels is overridden, with a log line); E0s the foundation's or the given ones."""
    run = _fine_tune(tmp_path, foundation, "tuned", "--num_channels", "8", "--lr", "1e-12", "--E0s", e0s)
    first, tuned = load_model(foundation[0]), load_model(run / "tuned.model")
    assert tuned.config.num_channels == 4 and '"num_channels": 4' in (run / "config.json").read_text()
    assert "its options replace: num_channels 8 -> 4" in (run / "train.log").read_text()
    want = first.config.e0s if e0s == "foundation" else (-13.0, -1025.0, -2035.0)
    assert tuned.config.e0s == pytest.approx(want, abs=0)
    assert torch.equal(tuned.e0s, torch.tensor(want, dtype=torch.float64))
    weights = {k: v for k, v in first.state_dict().items() if k != "e0s"}
    assert weights.keys() == {k for k in tuned.state_dict() if k != "e0s"}
    for key, value in weights.items():
        torch.testing.assert_close(tuned.state_dict()[key], value, rtol=0, atol=1e-9, msg=key)


def test_fine_tuning_moves_the_weights_and_restarts_only_from_its_foundation(tmp_path, foundation, capsys):
    run = _fine_tune(tmp_path, foundation, "moved", "--max_num_epochs", "2")
    first, tuned = load_model(foundation[0]), load_model(run / "moved.model")
    moved = max(float((tuned.state_dict()[k] - v).abs().max()) for k, v in first.state_dict().items() if k != "e0s")
    assert moved > 1e-4
    args = ["train", "--train_file", str(foundation[1]), "--work_dir", str(tmp_path), "--name", "moved", *SMALL]
    assert main([*args, "--max_num_epochs", "3", "--restart_latest"]) == 2  # resumed without its foundation
    assert "--foundation_model" in capsys.readouterr().err


def test_fine_tuning_refuses_elements_the_foundation_does_not_know(tmp_path, foundation, shared_data, capsys):
    nitrogen = tmp_path / "3bpa.xyz"
    ase.io.write(nitrogen, ase.io.read(shared_data / "3bpa" / "train_300K.xyz", index=":4"))
    args = ["train", "--train_file", str(nitrogen), "--work_dir", str(tmp_path), "--name", "n", *SMALL]
    assert main([*args, "--foundation_model", str(foundation[0])]) == 2
    message = capsys.readouterr().err
    assert "elements Z=[7] of the data are not among the foundation model's elements [1, 6, 8]" in message


def test_foundation_e0s_need_a_foundation_model():
    with pytest.raises(ValueError, match="--E0s foundation keeps the E0s of a --foundation_model, and none is given"):
        config_from_args(["--train_file=a.xyz", "--E0s=foundation"])


def test_average_e0s_of_a_fine_tuning_run_absorb_an_offset_of_the_new_labels(tmp_path, foundation):
    """Labels shifted by 3 eV per molecule (another level of theory): --E0s average fits the E0s to what the
    foundation model leaves unexplained, so at a learning rate of 1e-12 the tuned model's mean energy error on its
    training configurations is zero: its E0s sum to the foundation's less the foundation's mean error there."""
    model, data = foundation
    shifted = tmp_path / "shifted.xyz"
    frames = []
    for c in read_configurations(data):
        atoms = ase.Atoms(numbers=c.atomic_numbers, positions=c.positions)
        atoms.info["REF_energy"], atoms.arrays["REF_forces"] = c.energy + 3.0, c.forces
        frames.append(atoms)
    ase.io.write(shifted, frames)
    args = ["train", "--train_file", str(shifted), "--work_dir", str(tmp_path), "--name", "shifted", *SMALL]
    assert main([*args, "--foundation_model", str(model), "--lr", "1e-12", "--valid_fraction", "0.0001"]) == 0
    first, tuned = load_model(model), load_model(tmp_path / "shifted" / "shifted.model")
    log = (tmp_path / "shifted" / "train.log").read_text()
    assert "E0s fitted to the energies the foundation model leaves unexplained" in log
    configs = read_configurations(shifted)
    errors = [p.energy - c.energy for p, c in zip(predict(tuned, configs)[0], configs)]
    before = [p.energy - c.energy for p, c in zip(predict(first, configs)[0], configs)]
    ethanol = {1: 6, 6: 2, 8: 1}
    total = lambda m: sum(n * dict(zip(m.config.atomic_numbers, m.config.e0s))[z] for z, n in ethanol.items())  # noqa: E731
    assert abs(sum(before) / len(before)) > 2.0  # the offset the fit must absorb
    assert abs(sum(errors) / len(errors)) < 0.05  # the training part's mean is zero; one held-out configuration
    assert total(tuned) - total(first) == pytest.approx(-sum(before) / len(before), abs=0.1)  # the offset, in E0s


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fine_tuning_model_keeps_the_foundations_dtype_and_predictions(foundation, dtype):
    """Whatever the default dtype of the moment, the copy has the foundation's dtype; with the foundation's own
    E0s it predicts what the foundation predicts."""
    from gaunt_tp.training.foundation import fine_tuning_model

    model = load_model(foundation[0], dtype=dtype)
    configs = read_configurations(foundation[1])[:3]
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == torch.float32 else torch.float32)
    try:
        copy = fine_tuning_model(model, [1, 6, 8], None)
    finally:
        torch.set_default_dtype(before)
    assert {p.dtype for p in copy.parameters()} == {dtype}
    for mine, theirs in zip(predict(copy, configs)[0], predict(model, configs)[0]):
        assert mine.energy == pytest.approx(theirs.energy, rel=0, abs=1e-9)
        assert mine.forces == pytest.approx(theirs.forces, rel=0, abs=1e-9)
