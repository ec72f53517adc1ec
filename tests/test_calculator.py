import dataclasses

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from gaunt_tp.calculator import CommitteeCalculator, GauntCalculator
from gaunt_tp.nn import GauntMACE, ModelConfig, load_model, save_model
from gaunt_tp.testing import random_rotation, wigner_matrix

CONFIG = ModelConfig(
    atomic_numbers=(1, 6, 8, 13),
    e0s=(-13.6, -1025.0, -2035.0, -50.0),
    r_max=4.0,
    max_ell=2,
    num_channels=6,
    max_L=1,
    num_interactions=2,
    radial_mlp=(16,),
    avg_num_neighbors=6.0,
)


def _saved_model(config: ModelConfig, seed: int, path):
    """A model of ``config`` with its initial weights perturbed (seeded), written to ``path``."""
    torch.manual_seed(seed)
    model = GauntMACE(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return _saved_model(CONFIG, 0, tmp_path_factory.mktemp("model") / "tiny.model")


def test_forces_pass_ase_finite_difference_check(model_file):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=3)
    atoms.calc = GauntCalculator(model_file)
    forces = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    np.testing.assert_allclose(forces, numeric, atol=1e-6)
    assert atoms.get_potential_energy() == pytest.approx(atoms.get_potential_energies().sum())
    assert atoms.get_potential_energy() == atoms.calc.results["free_energy"]


def test_stress_passes_ase_finite_difference_check(model_file):
    atoms = bulk("Al", "fcc", a=4.05) * (2, 1, 1)
    atoms.rattle(0.05, seed=4)
    atoms.calc = GauntCalculator(model_file)
    stress = atoms.get_stress()
    numeric = calculate_numerical_stress(atoms, eps=1e-5)
    np.testing.assert_allclose(stress, numeric, atol=1e-7)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-4), atol=1e-6)


@pytest.mark.parametrize("case", ["slab", "molecule_in_box"])
def test_stress_wherever_the_cell_spans_a_volume(model_file, case):
    """A slab with vacuum in its cell and a molecule in a box have a stress, as ASE's EMT gives them (ASE's
    convention: the cell's volume, periodic or not); ASE's finite-difference check passes for both."""
    from ase.build import fcc111

    if case == "slab":
        atoms = fcc111("Al", (2, 2, 3), vacuum=4.0)  # periodic in x and y, vacuum along z
    else:
        atoms = molecule("CH3CH2OH", cell=[7.0, 8.0, 9.0])  # pbc False: no images, a box that sets the volume
    atoms.rattle(0.05, seed=5)
    assert atoms.pbc.tolist() == ([True, True, False] if case == "slab" else [False] * 3)
    atoms.calc = GauntCalculator(model_file)
    stress = atoms.get_stress()
    assert np.abs(stress).max() > 1e-4  # a real stress, not the zero of a missing volume
    np.testing.assert_allclose(stress, calculate_numerical_stress(atoms, eps=1e-5), atol=1e-7)


def test_no_stress_where_the_cell_has_a_zero_vector(model_file):
    from ase.build import graphene
    from ase.calculators.calculator import PropertyNotImplementedError

    for atoms in (molecule("CH3CH2OH"), graphene(size=(2, 2, 1))):  # ASE leaves the cell (or its z vector) zero
        atoms.calc = GauntCalculator(model_file)
        assert np.isfinite(atoms.get_forces()).all()
        with pytest.raises(PropertyNotImplementedError):
            atoms.get_stress()


def test_float64_weights_load_back_bit_for_bit(tmp_path):
    """A float64 model's weights come back from its file unrounded (they were once loaded into a float32 model
    first, which moved a float64 model's energies by ~1e-7 relative)."""
    torch.manual_seed(1)
    model = GauntMACE(CONFIG).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) / 3)
    save_model(model, tmp_path / "f64.model")
    loaded = load_model(tmp_path / "f64.model")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert load_model(tmp_path / "f64.model", dtype=torch.float32).layers[0].linear_up.weight.dtype == torch.float32


def test_saved_model_round_trip_and_bad_files(model_file, tmp_path):
    model = load_model(model_file)
    assert model.config == CONFIG and model.e0s.dtype == torch.float64
    assert (model_file.parent / (model_file.name + ".json")).is_file()
    broken = tmp_path / "broken.model"
    broken.write_bytes(model_file.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable gaunt-tp model"):
        load_model(broken)
    with pytest.raises(ValueError, match="no such model file"):
        load_model(tmp_path / "missing.model")
    with pytest.raises(ValueError, match="device must be a torch device such as 'cpu'.*got 'gpu'"):
        load_model(model_file, device="gpu")
    payload = torch.load(model_file, weights_only=True)
    payload["format"] = "gaunt-tp-model/1"  # the same weights meant another function then
    torch.save(payload, tmp_path / "old.model")
    with pytest.raises(ValueError, match="earlier gaunt-tp.*retrain"):
        load_model(tmp_path / "old.model")
    payload["format"] = "gaunt-tp-model/2"  # Gaunt models of /2 compute the same function
    torch.save(payload, tmp_path / "v2.model")
    torch.testing.assert_close(load_model(tmp_path / "v2.model").state_dict(), model.state_dict())
    payload["config"] = payload["config"].replace('"conv_blocks": "gaunt"', '"conv_blocks": "e3nn"')
    assert '"e3nn"' in payload["config"]
    torch.save(payload, tmp_path / "v2_cg.model")
    with pytest.raises(ValueError, match="CG convolution.*earlier gaunt-tp.*retrain"):
        load_model(tmp_path / "v2_cg.model")
    payload = torch.load(model_file, weights_only=True)
    del payload["state_dict"]
    torch.save(payload, tmp_path / "no_weights.model")
    with pytest.raises(ValueError, match="no_weights.model: a gaunt-tp model file without its state_dict"):
        load_model(tmp_path / "no_weights.model")


def test_checkpoints_other_versions_and_misfit_weights_are_clear_errors(model_file, tmp_path):
    payload = torch.load(model_file, weights_only=True)
    torch.save({"epoch": 7, "model": payload["state_dict"], "optimizer": {}}, tmp_path / "epoch-7.pt")
    with pytest.raises(ValueError, match=r"a training checkpoint \(epoch 7\), not a model; use the \.model file"):
        load_model(tmp_path / "epoch-7.pt")
    newer = dict(payload, config=payload["config"].replace("{", '{"option_of_the_future": 3,', 1))
    torch.save(newer, tmp_path / "newer.model")
    with pytest.raises(ValueError, match="newer.model: model options that this gaunt-tp cannot read.*option_of_the"):
        load_model(tmp_path / "newer.model")
    bad = dict(payload, config=payload["config"].replace('"max_L": 1', '"max_L": 7'))
    torch.save(bad, tmp_path / "bad.model")
    with pytest.raises(ValueError, match="bad.model: invalid model options: max_L must be in 0..max_ell"):
        load_model(tmp_path / "bad.model")
    wider = dict(payload, config=payload["config"].replace('"num_channels": 6', '"num_channels": 8'))
    torch.save(wider, tmp_path / "wider.model")
    with pytest.raises(ValueError, match="wider.model: the weights do not fit the model its options describe"):
        load_model(tmp_path / "wider.model")


def test_calculator_options_are_checked(model_file):
    with pytest.raises(TypeError, match="dtype"):
        GauntCalculator(model_file, dtype="float32")  # MACE's and gaunt-tp's name is default_dtype
    with pytest.raises(ValueError, match="device must be a torch device such as 'cpu'.*got 'gpu'"):
        GauntCalculator(model_file, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda': torch .* sees no CUDA GPU here"):
            GauntCalculator(model_file, device="cuda")
    else:
        with pytest.raises(ValueError, match="device 'cuda:99': only"):
            GauntCalculator(model_file, device="cuda:99")
    assert GauntCalculator(model_file, directory="somewhere", label="x").label == "somewhere/x"
    water = molecule("H2O")
    calc = GauntCalculator(model_file, atoms=water)  # ASE's way of attaching at construction
    assert water.calc is calc and np.isfinite(water.get_potential_energy())


def test_unknown_element_is_a_clear_error(model_file):
    atoms = molecule("NH3")
    atoms.calc = GauntCalculator(model_file)
    with pytest.raises(ValueError, match=r"Z=\[7\]"):
        atoms.get_potential_energy()


def test_calculator_leaves_the_model_it_is_given_as_it_was(model_file):
    model = load_model(model_file, dtype=torch.float32).train()
    calc = GauntCalculator(model)  # float64, frozen, eval mode: its own copy
    molecule("H2O").calc = calc
    assert calc.model is not model and not calc.model.training
    assert all(p.dtype == torch.float64 for p in calc.model.parameters())
    assert model.training
    assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())


def test_unknown_precision_is_a_clear_error(model_file):
    with pytest.raises(ValueError, match="default_dtype must be 'float32' or 'float64', got 'bfloat16'"):
        GauntCalculator(model_file, default_dtype="bfloat16")


def test_cg_convolution_model_loads_files_with_the_former_tensor_product_entries(tmp_path):
    """Models with ``conv_blocks="e3nn"`` saved while the CG convolution held an e3nn TensorProduct (an empty
    weight and an output mask per layer, nothing trained) load, and compute the same energies."""
    torch.manual_seed(1)
    model = GauntMACE(dataclasses.replace(CONFIG, conv_blocks="e3nn"))
    path = tmp_path / "cg.model"
    save_model(model, path)
    payload = torch.load(path, weights_only=True)
    for i in range(len(model.layers)):
        payload["state_dict"][f"layers.{i}.conv.tp.weight"] = torch.zeros(0)
        payload["state_dict"][f"layers.{i}.conv.tp.output_mask"] = torch.ones(3)
    torch.save(payload, path)
    loaded = load_model(path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value.double(), rtol=0, atol=0)


def _random_orthogonal(seed: int) -> np.ndarray:
    """A random rotation times the inversion (det -1), so that tests cover reflections too."""
    return -random_rotation(generator=torch.Generator().manual_seed(seed)).numpy()


@pytest.mark.parametrize("case", ["molecule", "bulk"])
def test_hessian_matches_finite_differences_of_the_forces(model_file, case):
    """The Hessian against central differences of the calculator's own forces (float64), symmetric, with rows that
    sum to zero over the atoms (translation invariance)."""
    atoms = molecule("CH3CH2OH") if case == "molecule" else bulk("Al", "fcc", a=4.05) * (2, 1, 1)
    atoms.rattle(0.05, seed=6)
    atoms.calc = GauntCalculator(model_file)
    hessian = atoms.calc.get_hessian(atoms)
    n = 3 * len(atoms)
    assert hessian.shape == (n, n) and hessian.dtype == np.float64
    assert np.abs(hessian).max() > 1e-2  # a real curvature
    eps, numeric = 1e-4, np.empty((n, n))
    for k in range(n):
        columns = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[k // 3, k % 3] += sign * eps
            moved.calc = atoms.calc
            columns.append(moved.get_forces().reshape(-1))
        numeric[:, k] = -(columns[0] - columns[1]) / (2 * eps)
    np.testing.assert_allclose(hessian, numeric, atol=1e-6)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)
    np.testing.assert_allclose(hessian.reshape(n, -1, 3).sum(axis=1), 0.0, atol=1e-11)


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-12), ("float32", 2e-6)])
def test_hessian_turns_with_the_atoms(model_file, dtype, atol):
    """Rotated and reflected atoms: H' = Q H Q^T with Q the block-diagonal of the orthogonal map, per atom."""
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=7)
    calc = GauntCalculator(model_file, default_dtype=dtype)
    q = _random_orthogonal(8)
    turned = atoms.copy()
    turned.positions = atoms.positions @ q.T + np.array([0.3, -1.2, 2.0])
    big_q = np.kron(np.eye(len(atoms)), q)
    expected = big_q @ calc.get_hessian(atoms) @ big_q.T
    np.testing.assert_allclose(calc.get_hessian(turned), expected, atol=atol)


def test_hessian_of_an_atom_alone_and_without_atoms(model_file):
    calc = GauntCalculator(model_file)
    np.testing.assert_array_equal(calc.get_hessian(Atoms("O", positions=[[0.0, 0.0, 0.0]])), np.zeros((3, 3)))
    assert calc.get_hessian(Atoms()).shape == (0, 0)  # an empty Atoms, as its energy (0) and forces ([0, 3]) work
    committee = CommitteeCalculator([model_file, model_file])
    assert committee.get_potential_energy(Atoms()) == 0.0 and committee.get_hessian(Atoms()).shape == (0, 0)
    with pytest.raises(ValueError, match="no atoms: pass them"):
        GauntCalculator(model_file).get_hessian()


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-13), ("float32", 1e-6)])
def test_descriptors_are_invariant_and_permute_with_the_atoms(model_file, dtype, atol):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=9)
    atoms.calc = GauntCalculator(model_file, default_dtype=dtype)
    atoms.get_potential_energy()
    descriptors = atoms.calc.get_descriptors()  # of the atoms last computed
    assert descriptors.shape == (len(atoms), CONFIG.num_interactions * CONFIG.num_channels)
    assert descriptors.dtype == np.float64 and np.abs(descriptors).max() > 1e-2
    turned = atoms.copy()
    turned.positions = atoms.positions @ _random_orthogonal(10).T + np.array([1.0, 2.0, -0.5])
    np.testing.assert_allclose(atoms.calc.get_descriptors(turned), descriptors, atol=atol)
    order = np.random.default_rng(11).permutation(len(atoms))
    np.testing.assert_allclose(atoms.calc.get_descriptors(atoms[order]), descriptors[order], atol=atol)


def test_descriptors_are_what_the_readouts_map_to_site_energies(model_file):
    """Each layer's block of columns, through that layer's readout, gives its site energies: their sum, scaled and
    shifted, plus the E0s, is the calculator's per-atom energies."""
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=12)
    atoms.calc = GauntCalculator(model_file)
    model, c = atoms.calc.model, CONFIG.num_channels
    blocks = torch.from_numpy(atoms.calc.get_descriptors(atoms)).split(c, dim=1)
    with torch.no_grad():
        sites = sum(layer.readout(block).squeeze(-1) for layer, block in zip(model.layers, blocks, strict=True))
    table = {z: e for z, e in zip(model.config.atomic_numbers, model.config.e0s)}
    expected = np.array([table[z] for z in atoms.numbers]) + CONFIG.energy_shift + CONFIG.energy_scale * sites.numpy()
    np.testing.assert_allclose(atoms.get_potential_energies(), expected, atol=1e-10)


@pytest.fixture(scope="module")
def second_model_file(tmp_path_factory):
    """Another model, with another cutoff (committee members may differ in anything)."""
    return _saved_model(dataclasses.replace(CONFIG, r_max=4.5), 5, tmp_path_factory.mktemp("model") / "second.model")


@pytest.mark.parametrize("case", ["molecule", "bulk"])
def test_committee_gives_the_members_mean_and_spread(model_file, second_model_file, case):
    atoms = molecule("CH3CH2OH") if case == "molecule" else bulk("Al", "fcc", a=4.05) * (2, 1, 1)
    atoms.rattle(0.05, seed=13)
    each = []
    for path in (model_file, second_model_file):
        single = atoms.copy()
        single.calc = GauntCalculator(path)
        each.append(single)
    atoms.calc = CommitteeCalculator([model_file, second_model_file])
    energies = np.array([a.get_potential_energy() for a in each])
    forces = np.stack([a.get_forces() for a in each])
    assert atoms.get_potential_energy() == pytest.approx(energies.mean(), abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), forces.mean(0), atol=1e-12)
    np.testing.assert_allclose(atoms.get_potential_energies(), np.mean([a.get_potential_energies() for a in each], 0))
    results = atoms.calc.results
    assert results["energy_var"] == pytest.approx(((energies - energies.mean()) ** 2).mean(), rel=1e-9)
    assert results["energy_var"] > 1e-6  # two different models disagree
    np.testing.assert_allclose(results["forces_var"], ((forces - forces.mean(0)) ** 2).mean(0), atol=1e-12)
    np.testing.assert_allclose(results["forces_comm"], forces, atol=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-4), atol=1e-6)
    np.testing.assert_allclose(
        atoms.calc.get_hessian(atoms), np.mean([a.calc.get_hessian(a) for a in each], 0), atol=1e-12
    )
    if case == "bulk":
        stresses = np.stack([a.get_stress() for a in each])
        np.testing.assert_allclose(atoms.get_stress(), stresses.mean(0), atol=1e-12)
        np.testing.assert_allclose(results["stress_var"], stresses.var(0), atol=1e-15)
        np.testing.assert_allclose(atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-5), atol=1e-7)
    else:
        assert "stress_var" not in results


def test_committee_of_one_model_twice_has_no_spread_and_fewer_is_refused(model_file):
    atoms = molecule("CH3CH2OH")
    atoms.calc = CommitteeCalculator([model_file, model_file], default_dtype="float32")
    assert atoms.calc.members[1].dtype == torch.float32
    atoms.get_potential_energy()
    assert atoms.calc.results["energy_var"] == 0.0 and not atoms.calc.results["forces_var"].any()
    for models in (model_file, [model_file], []):
        with pytest.raises(ValueError, match="a committee needs two or more models, got [01]: use GauntCalculator"):
            CommitteeCalculator(models)
    atoms.calc = CommitteeCalculator(path for path in (model_file, model_file))  # any iterable
    assert atoms.get_potential_energy() == pytest.approx(float(atoms.calc.results["energy_comm"][0]))


def test_descriptors_of_every_feature_are_equivariant_and_layers_can_be_chosen(model_file):
    """``invariants_only=False``: the first layer's whole output (6x0e + 6x1o) turns with a rotation-reflection
    (``gaunt_tp.testing.wigner_matrix``, exact), the last layer's (6x0e) stays; ``num_layers`` keeps the first
    layers' columns."""
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=15)
    calc = GauntCalculator(model_file)
    q = _random_orthogonal(16)
    turned = atoms.copy()
    turned.positions = atoms.positions @ q.T
    features = calc.get_descriptors(atoms, invariants_only=False)
    hidden = "6x0e + 6x1o"
    assert features.shape == (len(atoms), 24 + 6) and np.abs(features[:, 6:24]).max() > 1e-2
    d = wigner_matrix(hidden, torch.from_numpy(-q), inversion=True).numpy()  # q is a rotation times the inversion
    expected = np.concatenate([features[:, :24] @ d.T, features[:, 24:]], axis=1)
    np.testing.assert_allclose(calc.get_descriptors(turned, invariants_only=False), expected, atol=1e-12)
    np.testing.assert_array_equal(calc.get_descriptors(atoms, False, num_layers=1), features[:, :24])
    np.testing.assert_array_equal(calc.get_descriptors(atoms, num_layers=1), features[:, :6])
    for bad in (0, 3, -2):
        with pytest.raises(ValueError, match=r"num_layers must be -1 \(all\) or in 1..2, got"):
            calc.get_descriptors(atoms, num_layers=bad)
