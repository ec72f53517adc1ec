"""mace-torch models converted by ``gaunt_tp.interop.mace``, against mace-torch's own predictions (written with the
models by ``benchmarks/mace_fixture.py`` in mace-torch's environment: mace-torch itself is not needed here)."""

import dataclasses
import json
import re
import sys
import types
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from gaunt_tp.calculator import GauntCalculator
from gaunt_tp.data import ElementTable, collate, read_configurations, to_graph
from gaunt_tp.interop.mace import _options_of, model_from_mace, read_mace_model
from gaunt_tp.nn.activation import silu_factor
from gaunt_tp.nn.serialization import load_model, save_model
from gaunt_tp.training.cli import main

FIXTURE = Path(__file__).with_name("mace_small.npz")


def _fixture(name: str) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """The state dict and options of the fixture's model ``name`` ('plain' or 'residual' first block) and
    mace-torch's energies ``[3]`` and forces ``[27, 3]`` on the first three ethanol configurations."""
    data = np.load(FIXTURE)
    prefix = f"{name}/state/"
    state = {k[len(prefix) :]: torch.from_numpy(data[k]) for k in data.files if k.startswith(prefix)}
    return state, json.loads(str(data["meta"]))[name], data[f"{name}/energy"], data[f"{name}/forces"]


def _predict(model, shared_data) -> dict:
    configs = read_configurations(shared_data / "ethanol" / "train.xyz", index=":3")
    table = ElementTable(model.config.atomic_numbers)
    return model(collate([to_graph(c, table, model.config.r_max) for c in configs]))


@pytest.mark.parametrize("name", ["plain", "residual"])
def test_converted_models_give_mace_torchs_energies_and_forces(name, shared_data, tmp_path):
    """Both first blocks (mace-torch's --model MACE has the plain one): energies to 1e-9 eV of ~4200, forces to
    1e-10 eV/A, float64; the same after a round trip through a gaunt-tp model file and from the ASE calculator, with
    its Hessian and invariant descriptors equal to mace-torch's. With
    gaunt-tp's exact SiLU normalisation instead of the model's e3nn estimate the energies move by meV."""
    state, options, energy, forces = _fixture(name)
    model = model_from_mace(state, options)
    config = model.config
    # mace_run_train saves one head's E0s, scale and shift with a head axis: the same model
    headed = {
        **state,
        "atomic_energies_fn.atomic_energies": state["atomic_energies_fn.atomic_energies"][None],
        "scale_shift.scale": state["scale_shift.scale"][None],
        "scale_shift.shift": state["scale_shift.shift"][None],
    }
    assert model_from_mace(headed, options).config == config
    assert (config.conv_blocks, config.product_blocks, config.separate_paths) == ("e3nn", "symmetric", True)
    assert config.first_self_connection == (name == "residual") and config.silu_scale == options["silu_scale"]
    assert (config.num_channels, config.max_L, config.max_ell, config.correlation) == (4, 1, 2, 3)
    out = _predict(model, shared_data)
    np.testing.assert_allclose(out["energy"].detach().numpy(), energy, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out["forces"].detach().numpy(), forces, rtol=0, atol=1e-10)
    save_model(model, tmp_path / "converted.model")
    atoms = ase.io.read(shared_data / "ethanol" / "train.xyz", index=2)
    atoms.calc = GauntCalculator(tmp_path / "converted.model")
    assert atoms.get_potential_energy() == pytest.approx(float(energy[2]), abs=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), forces[18:27], rtol=0, atol=1e-10)
    # what mace-torch's calculator adds: its Hessian (compute_hessian) and invariant descriptors (get_descriptors)
    fixture = np.load(FIXTURE)
    np.testing.assert_allclose(atoms.calc.get_hessian(atoms), fixture[f"{name}/hessian"], rtol=0, atol=1e-10)
    frames = ase.io.read(shared_data / "ethanol" / "train.xyz", index=":3")
    for invariants_only, key, first_layer in ((True, "descriptors", 4), (False, "node_feats", 16)):
        for num_layers, width in ((-1, None), (1, first_layer)):  # MACE's arguments: its numbers, its columns
            got = np.concatenate([atoms.calc.get_descriptors(f, invariants_only, num_layers) for f in frames])
            np.testing.assert_allclose(got, fixture[f"{name}/{key}"][:, :width], rtol=0, atol=1e-12)
    exact = model_from_mace(state, {**options, "silu_scale": silu_factor()})
    assert np.abs(_predict(exact, shared_data)["energy"].detach().numpy() - energy).max() > 1e-4


@pytest.mark.parametrize(
    "name, transform", [("zbl", "None"), ("agnesi", "Agnesi"), ("soft", "Soft"), ("density", "Agnesi")]
)
def test_a_model_with_the_zbl_repulsion_gives_mace_torchs_energies_and_forces(name, transform, shared_data, tmp_path):
    """mace-torch's --pair_repulsion, without and with each --distance_transform, and with the density-normalised
    blocks (all three as in MACE-MPA-0), on ethanol squeezed to 75% (where the repulsion adds eV): energies to 1e-9 eV,
    forces to 1e-10 eV/A, also through a model file; without the repulsion the energies are eV away."""
    state, options, energy, forces = _fixture(name)
    model = model_from_mace(state, options)
    assert model.config.pair_repulsion and model.config.first_self_connection == (name != "density")
    assert model.config.distance_transform == transform and model.config.density_normalization == (name == "density")
    positions = np.load(FIXTURE)["zbl/positions"].reshape(3, -1, 3)
    configs = read_configurations(shared_data / "ethanol" / "train.xyz", index=":3")
    squeezed = [dataclasses.replace(c, positions=p) for c, p in zip(configs, positions)]
    batch = collate([to_graph(c, ElementTable(model.config.atomic_numbers), model.config.r_max) for c in squeezed])
    save_model(model, tmp_path / "zbl.model")
    for m in (model, load_model(tmp_path / "zbl.model")):
        out = m(batch)
        np.testing.assert_allclose(out["energy"].detach().numpy(), energy, rtol=0, atol=1e-9)
        np.testing.assert_allclose(out["forces"].detach().numpy(), forces, rtol=0, atol=1e-10)
    model.pair_repulsion = None
    assert np.abs(model(batch)["energy"].detach().numpy() - energy).min() > 1.0


def test_each_head_of_a_model_of_two_converts_to_its_own_predictions(shared_data):
    """A mace-torch model of two heads (E0s, scale, shift and readouts of their own; the rest shared): the model of
    each head gives that head's energies to 1e-9 eV and forces to 1e-10 eV/A; no head or an unknown one is refused
    with the heads' names."""
    data = np.load(FIXTURE)
    state = {k[len("heads/state/") :]: torch.from_numpy(data[k]) for k in data.files if k.startswith("heads/state/")}
    options = json.loads(str(data["meta"]))["heads"]
    assert options["heads"] == ["h0", "h1"]
    energies = []
    for i, head in enumerate(options["heads"]):
        model = model_from_mace(state, options, head=head)
        assert model.config.energy_scale == pytest.approx(float(state["scale_shift.scale"][i]), abs=0)
        out = _predict(model, shared_data)
        np.testing.assert_allclose(out["energy"].detach().numpy(), data["heads/energy"][i], rtol=0, atol=1e-9)
        np.testing.assert_allclose(out["forces"].detach().numpy(), data["heads/forces"][i], rtol=0, atol=1e-10)
        energies.append(out["energy"].detach().numpy())
    assert np.abs(energies[0] - energies[1]).min() > 1.0  # two different models
    with pytest.raises(ValueError, match=re.escape("has 2 heads ['h0', 'h1']: choose one (--head)")):
        model_from_mace(state, options)
    with pytest.raises(ValueError, match=re.escape("no head 'pbe' in this mace-torch model (its heads: ['h0', 'h1'])")):
        model_from_mace(state, options, head="pbe")


def test_models_gaunt_tp_cannot_read_are_refused_by_name():
    state, options, _, _ = _fixture("plain")
    last_readout_only = {  # mace-torch's --use_last_readout_only: one readout, the last layer's, as readouts.0
        **{k: None for k in state if k.startswith("readouts.")},
        **{k.replace("readouts.1.", "readouts.0."): v for k, v in state.items() if k.startswith("readouts.1.")},
    }
    cases = [
        ({}, {"avg_num_neighbors": None}, "options missing: ['avg_num_neighbors']"),
        ({}, {"model": "MACELES"}, "mace-torch model 'MACELES'"),
        ({}, {"interaction": "RealAgnosticAttResidualInteractionBlock"}, "interaction block"),
        ({}, {"interaction": "RealAgnosticDensityResidualInteractionBlock"}, "by a density of neighbours and of"),
        ({"scale_shift.scale": torch.ones(2)}, {}, "scale (2,) and shift () do not match its 1 heads"),
        ({"atomic_energies_fn.atomic_energies": torch.ones(2, 3)}, {}, "E0s (2, 3) do not match its heads ['Default']"),
        ({"atomic_energies_fn.atomic_energies": torch.ones(2, 3)}, {"heads": None}, "has 2 heads: choose one"),
        ({"num_interactions": torch.tensor(1)}, {}, "one interaction layer"),
        ({"radial_embedding.distance_transform.a": torch.ones(())}, {}, "distance transform gaunt-tp does not know"),
        ({"pair_repulsion_fn.p": torch.tensor(6)}, {}, "envelope power other than its radial basis's"),
        ({"readouts.1.extra.weight": torch.ones(3)}, {}, "parts gaunt-tp does not: ['readouts.1.extra.weight']"),
        ({"radial_embedding.bessel_fn.bessel_weights": torch.ones(4)}, {}, "no Bessel radial basis"),
        ({"atomic_numbers": None}, {}, "not the state dict of a mace-torch MACE model gaunt-tp reads: no 'atomic_numb"),
        ({"interactions.1.linear_up.weight": torch.ones(5)}, {}, "interactions.1.linear_up.weight: expected shape"),
        ({"atomic_numbers": torch.tensor([8, 1, 6])}, {}, "atomic_numbers [8, 1, 6] are not in increasing order"),
        (
            {"products.1.symmetric_contractions.contractions.0.weights.1": None},
            {},
            "correlation differs by layer [3, 2]",
        ),
        (last_readout_only, {}, "--use_last_readout_only True"),
        ({"products.1.linear.weight": torch.ones(32)}, {}, "--keep_last_layer_irreps True"),
        ({"products.0.linear.weight": torch.ones(40)}, {}, "maps to other hidden irreps than 4 channels per degree"),
    ]
    for changed, other, message in cases:
        options_here = {k: v for k, v in {**options, **other}.items() if v is not None}
        state_here = {k: v for k, v in {**state, **changed}.items() if v is not None}
        with pytest.raises(ValueError, match=re.escape(message)):
            model_from_mace(state_here, options_here)


def _module(kind: str, **attributes) -> torch.nn.Module:
    """A module of the class name ``kind`` (as mace-torch's and e3nn's, which read_mace_model goes by) holding
    ``attributes``."""
    module = type(kind, (torch.nn.Module,), {})()
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


def _mace_like(gate=torch.nn.functional.silu, neighbours=(5.0, 5.0), hidden="4x0e + 4x1o", **attributes):
    """What read_mace_model reads of a mace-torch ScaleShiftMACE, in stand-ins: the blocks' classes, the SiLUs of the
    radial networks and of the readout (e3nn's normalize2mom), the hidden irreps and the model's flags."""
    silu = lambda: _module("normalize2mom", f=torch.nn.functional.silu, cst=1.68)  # noqa: E731
    blocks = [_module(name, avg_num_neighbors=n, radial=silu()) for name, n in
              zip(("RealAgnosticInteractionBlock", "RealAgnosticResidualInteractionBlock"), neighbours)]  # fmt: skip
    gate = None if gate is None else _module("normalize2mom", f=gate, cst=1.68)
    readout = _module("NonLinearReadoutBlock", non_linearity=_module("Activation", acts=torch.nn.ModuleList([gate])))
    return _module("ScaleShiftMACE", interactions=torch.nn.ModuleList(blocks),
                   products=[types.SimpleNamespace(linear=types.SimpleNamespace(irreps_out=hidden))],
                   readouts=torch.nn.ModuleList([_module("LinearReadoutBlock"), readout]),
                   spherical_harmonics=types.SimpleNamespace(_lmax=2), **attributes)  # fmt: skip


def test_what_a_mace_torch_model_holds_beyond_its_state_dict_is_read_or_refused_by_name():
    """Flags of mace_run_train that its state dict does not show (a cutoff after the radial network, SO(3)
    couplings, one readout, another readout gate, hidden irreps of other parities, a per-layer neighbour count)
    are refused, naming them, rather than converted into another function."""
    assert _options_of(_mace_like(), Path("m.model")) == {
        "model": "ScaleShiftMACE", "interaction_first": "RealAgnosticInteractionBlock",
        "interaction": "RealAgnosticResidualInteractionBlock", "max_ell": 2, "avg_num_neighbors": 5.0,
        "silu_scale": 1.68,
    }  # fmt: skip
    gate = "m.model: the readout's nonlinearity (mace_run_train's --gate) is"
    for model, message in ((_mace_like(apply_cutoff=False), "built with --apply_cutoff False: gaunt-tp computes"),
                           (_mace_like(use_so3=True, use_last_readout_only=True),
                            "built with --use_so3 True, --use_last_readout_only True"),
                           (_mace_like(gate=None), f"{gate} ['NoneType']"),
                           (_mace_like(gate=torch.tanh), f"{gate} ['tanh']: gaunt-tp has 'silu' alone"),
                           (_mace_like(hidden="4x0e + 4x1o + 4x1e"), "hidden_irreps '4x0e + 4x1o + 4x1e': gaunt-tp's"),
                           (_mace_like(neighbours=(5.0, 9.0)), "different average numbers of neighbours")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)):
            _options_of(model, Path("m.model"))


def test_import_mace_command_needs_mace_torch_and_a_file(tmp_path, monkeypatch, capsys):
    """``gaunt-tp import-mace`` reads pickled mace-torch models, so it needs mace-torch: without it (or without the
    file) one line on stderr and status 2."""
    assert main(["import-mace", "--model", str(tmp_path / "none.model"), "--output", str(tmp_path / "o.model")]) == 2
    assert "none.model: no such mace-torch model file" in capsys.readouterr().err
    (tmp_path / "m.model").write_bytes(b"not a model")
    monkeypatch.setitem(sys.modules, "mace", None)  # as where mace-torch is not installed
    with pytest.raises(ValueError, match="needs mace-torch"):
        read_mace_model(tmp_path / "m.model")
    assert main(["import-mace", "--model", str(tmp_path / "m.model"), "--output", str(tmp_path / "o.model")]) == 2
    assert "reading a mace-torch model file needs mace-torch" in capsys.readouterr().err
    assert not (tmp_path / "o.model").exists()
    monkeypatch.setitem(sys.modules, "mace", types.ModuleType("mace"))  # as if installed: files of other kinds
    with warnings.catch_warnings():  # torch.jit.script is deprecated in recent torch; mace-torch still exports so
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(torch.nn.Linear(2, 2)).save(tmp_path / "compiled.model")
    with warnings.catch_warnings():  # recognised without loading it (torch.load would warn twice)
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="a TorchScript export .* give the plain .model file"):
            read_mace_model(tmp_path / "compiled.model")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "linear.model")
    with pytest.raises(ValueError, match=r"not a mace-torch MACE model \(a Linear\)"):
        read_mace_model(tmp_path / "linear.model")


@pytest.mark.parametrize("name", ["plain", "zbl"])
def test_a_converted_model_fine_tunes_as_a_foundation(name, tmp_path, shared_data):
    """``--foundation_model`` takes a converted model: its architecture (MACE's blocks, the first block's
    self-connection or not, the ZBL repulsion or not, e3nn's SiLU constant) is adopted and training runs from its
    weights."""
    state, options, _, _ = _fixture(name)
    save_model(model_from_mace(state, options), tmp_path / "mace.model")
    data = tmp_path / "few.xyz"
    ase.io.write(data, ase.io.read(shared_data / "ethanol" / "train.xyz", index=":6"))
    assert main(["train", "--train_file", str(data), "--work_dir", str(tmp_path), "--name", "tuned", "--plots",
                 "false", "--foundation_model", str(tmp_path / "mace.model"), "--max_num_epochs", "1",
                 "--batch_size", "3"]) == 0  # fmt: skip
    tuned = load_model(tmp_path / "tuned" / "tuned.model").config
    assert tuned.first_self_connection == (name == "zbl") and tuned.pair_repulsion == (name == "zbl")
    assert tuned.silu_scale == options["silu_scale"]
    assert (tuned.conv_blocks, tuned.product_blocks, tuned.separate_paths) == ("e3nn", "symmetric", True)
