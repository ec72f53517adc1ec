import copy
import dataclasses

import numpy as np
import pytest
import torch
from model_checks import CONFIG, TABLE, assert_float32_invariance, graph, moved

from gaunt_tp.data import Configuration, ElementTable, collate, read_configurations, to_graph
from gaunt_tp.nn import GauntMACE, ModelConfig
from gaunt_tp.nn.linear import EquivariantLinear
from gaunt_tp.testing import random_rotation


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GauntMACE(CONFIG).double()
    with torch.no_grad():  # weights away from their initial symmetric values
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def test_forces_are_minus_the_gradient(model, ethanol):
    config = ethanol[0]
    forces = model(graph(config))["forces"]
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (8, 2)]:
        plus, minus = config.positions.copy(), config.positions.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        e_plus = model(graph(moved(config, plus)), compute_forces=False)["energy"]
        e_minus = model(graph(moved(config, minus)), compute_forces=False)["energy"]
        assert float(-(e_plus - e_minus) / (2 * h)) == pytest.approx(float(forces[atom, axis]), abs=1e-6)


def test_invariant_under_rotation_inversion_translation_and_permutation(model, ethanol):
    config = ethanol[1]
    ref = model(graph(config))
    rot = -random_rotation(generator=torch.Generator().manual_seed(3)).numpy()  # a roto-inversion
    perm = np.random.default_rng(0).permutation(config.num_atoms)
    new_positions = (config.positions @ rot.T + np.array([0.3, -1.2, 2.0]))[perm]
    changed = dataclasses.replace(config, positions=new_positions, atomic_numbers=config.atomic_numbers[perm])
    out = model(graph(changed))
    assert float(out["energy"]) == pytest.approx(float(ref["energy"]), abs=1e-10)
    torch.testing.assert_close(out["forces"], (ref["forces"] @ torch.from_numpy(rot).T)[perm], rtol=0, atol=1e-10)


def test_energy_is_smooth_at_the_cutoff(model):
    def dimer(r: float) -> dict:
        config = Configuration(atomic_numbers=np.array([1, 8]), positions=np.array([[0.0, 0, 0], [r, 0, 0]]))
        return model(graph(config))

    def atom(z: int) -> float:
        config = Configuration(atomic_numbers=np.array([z]), positions=np.zeros((1, 3)))
        return float(model(graph(config), compute_forces=False)["energy"].detach())

    isolated = atom(1) + atom(8)
    beyond = dimer(CONFIG.r_max + 1e-3)
    assert float(beyond["energy"].detach()) == pytest.approx(isolated, abs=1e-12)
    inside = dimer(CONFIG.r_max - 1e-3)
    far_inside = dimer(CONFIG.r_max - 0.5)
    far_force = float(far_inside["forces"].abs().max())
    far_energy = abs(float(far_inside["energy"].detach()) - isolated)
    assert far_force > 0 and far_energy > 0  # the checks below are not vacuous
    # continuous energy and force: the envelope and its first two derivatives vanish at r_max
    assert abs(float(inside["energy"].detach()) - isolated) < 1e-6 * far_energy
    assert float(inside["forces"].abs().max()) < 1e-4 * far_force


def test_batch_equals_one_at_a_time(model, ethanol):
    batch = collate([graph(c) for c in ethanol])
    out = model(batch, compute_descriptors=True)
    for i, config in enumerate(ethanol):
        single = model(graph(config), compute_descriptors=True)
        assert float(out["energy"][i]) == pytest.approx(float(single["energy"]), abs=1e-10)
        torch.testing.assert_close(out["forces"][9 * i : 9 * (i + 1)], single["forces"], rtol=0, atol=1e-10)
        torch.testing.assert_close(out["node_feats"][9 * i : 9 * (i + 1)], single["node_feats"], rtol=0, atol=1e-12)
    assert "node_feats" not in model(batch)


def test_radial_functions_once_per_edge_pair_change_nothing(model, ethanol):
    """The radial MLP runs once per undirected pair; with every edge its own pair the result is the same."""
    periodic = Configuration(
        atomic_numbers=np.array([1, 8, 6]),
        positions=np.array([[0.1, 0.2, 0.3], [1.0, 1.1, 0.4], [2.0, 0.3, 1.6]]),
        cell=np.diag([3.1, 3.3, 3.6]),
        pbc=(True, True, True),
    )
    for batch in (collate([graph(c) for c in ethanol[:2]]), graph(periodic)):
        assert batch.pair_edge.shape[0] < batch.edge_pair.shape[0]
        every = dataclasses.replace(
            batch, edge_pair=torch.arange(batch.edge_pair.shape[0]), pair_edge=torch.arange(batch.edge_pair.shape[0])
        )
        stress = bool(batch.cell.abs().sum() > 0)
        a, b = model(batch, compute_stress=stress), model(every, compute_stress=stress)
        for key in ("energy", "forces", "stress") if stress else ("energy", "forces"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-11)


@pytest.mark.parametrize("conv_blocks", ["gaunt", "e3nn", "e3nn-separate"])
@pytest.mark.parametrize("layer", [0, 1])
def test_messages_have_unit_second_moment_at_initialisation(layer, conv_blocks):
    """The convolution's output, times the layer's scale for the Gaunt convolution: unit second moment per
    component for unit inputs (one edge per receiver), as e3nn's normalisation gives MACE's messages, with either
    convolution (the CG layers' 1 / avg_num_neighbors: next test)."""
    torch.manual_seed(1)
    separate = conv_blocks == "e3nn-separate"
    config = dataclasses.replace(CONFIG, conv_blocks=conv_blocks.split("-")[0], separate_paths=separate)
    block = GauntMACE(config).double().layers[layer]
    n = 6000
    x = torch.randn(n, block.conv.irreps_node.dim, dtype=torch.float64)
    radial = torch.randn(n, block.conv.weight_numel, dtype=torch.float64)
    edges = torch.stack([torch.randperm(n), torch.arange(n)])
    out = block.conv(x, torch.randn(n, 3, dtype=torch.float64), edges, radial)
    if conv_blocks == "gaunt":
        out = out * block.conv_scale * CONFIG.avg_num_neighbors
    for (mul, ir), sl in zip(block.conv.irreps_out, block.conv.irreps_out.slices()):
        assert float(out[:, sl].square().mean()) == pytest.approx(1.0, rel=0.1), ir


@pytest.mark.parametrize("layer", [0, 1])
def test_cg_layers_average_the_messages_over_the_neighbours(layer):
    """With the CG convolution the sum over neighbours is divided by avg_num_neighbors before the convolution
    (it is linear), in the weights of the map that feeds it: that map is EquivariantLinear's, divided."""
    config = dataclasses.replace(CONFIG, conv_blocks="e3nn", product_blocks="symmetric", avg_num_neighbors=7.5)
    block = GauntMACE(config).double().layers[layer]
    plain = EquivariantLinear(block.linear_up.irreps_in, block.linear_up.irreps_out).double()
    plain.load_state_dict(block.linear_up.state_dict())
    h = torch.randn(5, plain.irreps_in.dim, dtype=torch.float64)
    rows = block.linear_up(h)  # [N, R, C]: component-major, one block per irrep
    c = config.num_channels
    want = torch.cat([plain(h)[:, sl].view(5, c, ir.dim).transpose(1, 2) for (_, ir), sl in
                      zip(plain.irreps_out, plain.irreps_out.slices())], dim=1)  # fmt: skip
    torch.testing.assert_close(rows * 7.5, want, rtol=1e-13, atol=1e-13)


def test_radial_mlp_and_activation_keep_unit_variance():
    from gaunt_tp.nn.activation import NormalizedSiLU, silu_second_moment
    from gaunt_tp.nn.radial import RadialMLP

    z = torch.randn(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert silu_second_moment() == pytest.approx(float(torch.nn.functional.silu(z).square().mean()), rel=0.01)
    assert float(NormalizedSiLU()(z).square().mean()) == pytest.approx(1.0, rel=0.01)
    torch.manual_seed(0)
    mlp = RadialMLP(8, (64, 64), 32).double()
    out = mlp(torch.randn(20_000, 8, dtype=torch.float64))
    assert float(out.square().mean()) == pytest.approx(1.0, rel=0.25)  # one draw of the weights
    assert mlp(torch.zeros(3, 8, dtype=torch.float64)).abs().max() == 0  # no biases


def test_stress_is_the_strain_derivative(model):
    rng = np.random.default_rng(1)
    cell = np.diag([3.2, 3.5, 3.8]) + 0.1 * rng.standard_normal((3, 3))
    frac = rng.random((4, 3))
    config = Configuration(
        atomic_numbers=np.array([1, 1, 8, 6]), positions=frac @ cell, cell=cell, pbc=(True, True, True)
    )
    stress = model(graph(config), compute_stress=True)["stress"][0]
    h, volume = 1e-5, abs(np.linalg.det(cell))
    for i, j in [(0, 0), (1, 2), (2, 1), (0, 1)]:
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[i, j] += sign * h / 2
            strain[j, i] += sign * h / 2
            energies.append(float(model(graph(moved(config, config.positions @ strain, cell @ strain)))["energy"]))
        assert (energies[0] - energies[1]) / (2 * h) / volume == pytest.approx(float(stress[i, j]), abs=1e-7)


def test_config_round_trip_and_errors():
    assert ModelConfig.from_json(CONFIG.to_json()) == CONFIG
    with pytest.raises(ValueError, match="one E0 per element"):
        ModelConfig(atomic_numbers=(1, 6), e0s=(0.0,))
    with pytest.raises(ValueError, match="max_L"):
        dataclasses.replace(CONFIG, max_L=3)
    with pytest.raises(ValueError, match=r"distinct, got \(1, 1\)"):
        ModelConfig(atomic_numbers=(1, 1), e0s=(0.0, 0.0))
    # numpy numbers and lists, in any element order: plain sorted tuples, so the config hashes and goes to JSON
    loose = ModelConfig(atomic_numbers=list(np.array([8, 6, 1])), e0s=np.array([-2035.0, -1025.0, -13.6]),
                        r_max=np.float64(4.0), max_ell=np.int64(2), num_channels=6, num_radial_basis=6,
                        radial_mlp=[16, 16], avg_num_neighbors=8.0)  # fmt: skip
    assert loose == CONFIG and hash(loose) == hash(CONFIG) and type(loose.max_ell) is int
    assert ModelConfig.from_json(loose.to_json()) == CONFIG
    with pytest.raises(ValueError, match="num_channels must be an integer, got 2.5"):
        dataclasses.replace(CONFIG, num_channels=2.5)
    with pytest.raises(ValueError, match="readout_hidden must be >= 1, got 0"):
        dataclasses.replace(CONFIG, readout_hidden=0)
    with pytest.raises(ValueError, match=r"radial_mlp widths must be >= 1, got \(16, 0\)"):
        dataclasses.replace(CONFIG, radial_mlp=(16, 0))
    e3nn_silu = dataclasses.replace(CONFIG, silu_scale=1.6791767923989418)  # a MACE model's SiLU constant
    assert ModelConfig.from_json(e3nn_silu.to_json()) == e3nn_silu and CONFIG.silu_scale is None
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="silu_scale must be a number > 0 or None"):
            dataclasses.replace(CONFIG, silu_scale=bad)
    # what a hand-edited JSON file may hold: each refused by name rather than computing something else
    for changed, message in (({"atomic_numbers": (1.7, 6, 8)}, r"atomic_numbers must be integers >= 1, got \(1.7"),
                             ({"atomic_numbers": (0, 6, 8)}, "atomic_numbers must be integers >= 1"),
                             ({"e0s": (-13.6, float("nan"), -2035.0)}, "e0s must be finite numbers"),
                             ({"pair_repulsion": "false"}, "pair_repulsion must be true or false, got 'false'"),
                             ({"density_normalization": 1}, "density_normalization must be true or false, got 1"),
                             ({"avg_num_neighbors": 0.0}, "avg_num_neighbors must be a number > 0, got 0.0"),
                             ({"avg_num_neighbors": -8.0}, "avg_num_neighbors must be a number > 0"),
                             ({"energy_scale": float("inf")}, "energy_scale must be a number > 0, got inf"),
                             ({"energy_shift": float("-inf")}, "energy_shift must be a finite number, got -inf"),
                             ({"product_blocks": "symmetric", "max_ell": 3, "max_L": 1, "correlation": 4},
                              "correlation 4: polynomials in 3876 monomials, more than the 3000")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(CONFIG, **changed)
    assert dataclasses.replace(CONFIG, product_blocks="symmetric", max_ell=4, correlation=3).correlation == 3


def test_float32_invariance(ethanol):
    torch.manual_seed(2)
    assert_float32_invariance(GauntMACE(CONFIG).float(), ethanol[3], seed=7)


def test_a_model_runs_in_the_dtype_torch_built_it_in(ethanol):
    """GauntMACE(config) under torch's default float32, with no .float(): its float64 constants (the messages'
    normalisation) follow the features, and it gives its float64 copy's energies and forces to float32 rounding."""
    torch.manual_seed(2)
    fresh = GauntMACE(CONFIG)
    assert {p.dtype for p in fresh.parameters()} == {torch.float32}
    double = copy.deepcopy(fresh).double()
    out32 = fresh(to_graph(ethanol[0], TABLE, CONFIG.r_max, torch.float32))
    out64 = double(graph(ethanol[0]))
    assert out32["forces"].dtype == torch.float32
    assert abs(float(out32["energy"] - out64["energy"])) < 1e-4
    assert torch.allclose(out32["forces"].double(), out64["forces"], atol=1e-5)


def test_float32_model_adds_the_energy_shift_in_float64(ethanol):
    """The shift is added to each site energy: rounded to float32 (1.7e-7 eV here) it would add up over the atoms,
    1.7 meV over 10^4 of them. With a vanishing scale each site energy is its E0 plus the shift, in float64."""
    shift = -4.123456789
    single = GauntMACE(dataclasses.replace(CONFIG, energy_shift=shift, energy_scale=1e-30)).float()
    out = single(to_graph(ethanol[0], TABLE, CONFIG.r_max, torch.float32))
    sites = out["node_energy"] - single.e0s[to_graph(ethanol[0], TABLE, CONFIG.r_max).species]
    assert out["node_energy"].dtype == torch.float64
    assert float((sites - shift).abs().max()) < 1e-12


def test_forces_and_stress_under_no_grad_and_inference_mode(model, ethanol):
    """torch.no_grad() around an evaluation gives the same forces and stress (detached), not zeros;
    torch.inference_mode(), where no gradient can be taken, is an error when they are asked for."""
    boxed = moved(ethanol[0], ethanol[0].positions, cell=8.0 * np.eye(3))
    reference = model(graph(boxed), compute_stress=True)
    with torch.no_grad():
        quiet = model(graph(boxed), compute_stress=True)
    for key in ("energy", "forces", "stress"):
        assert not quiet[key].requires_grad
        torch.testing.assert_close(quiet[key], reference[key].detach(), rtol=0, atol=1e-12)
    assert float(quiet["forces"].abs().max()) > 1e-3
    with torch.inference_mode():
        energy = model(graph(boxed), compute_forces=False)["energy"]
        with pytest.raises(RuntimeError, match="torch.inference_mode.. forbids"):
            model(graph(boxed))
    torch.testing.assert_close(energy, reference["energy"].detach(), rtol=0, atol=1e-9)


def test_species_outside_the_model_are_a_clear_error_before_any_part_indexes_them(ethanol):
    """The ZBL repulsion and the distance transforms index by species before the many-body blocks' check."""
    g = graph(ethanol[0])
    g.species = g.species.clone()
    g.species[3] = 5
    for parts in ({}, {"pair_repulsion": True}, {"distance_transform": "Agnesi"}):
        with pytest.raises(ValueError, match=r"species holds element index 5, outside 0..2 \(the model's elements\)"):
            GauntMACE(dataclasses.replace(CONFIG, **parts)).double()(g)


def test_float32_model_keeps_total_energies_to_float64_precision(model, shared_data):
    """3BPA's E0s sum to ~1.7e4 eV, where float32 steps by 2 meV: the E0s stay float64 under .float() and are
    added in float64, so a float32 copy of a float64 model gives its total energy to the float32 rounding of the
    interaction energy alone (~1e-6 eV here), and float32 graphs keep float64 energy labels."""
    config = read_configurations(shared_data / "3bpa" / "train_300K.xyz", index="0")[0]
    table = ElementTable([1, 6, 7, 8])
    torch.manual_seed(3)
    exact = GauntMACE(dataclasses.replace(CONFIG, atomic_numbers=(1, 6, 7, 8), e0s=(-13.663181292231226,
                      -1029.2809654211628, -1484.1187695035828, -2042.0330099956639))).double()  # fmt: skip
    single = GauntMACE(exact.config).float()
    single.load_state_dict(exact.state_dict())
    assert single.e0s.dtype == torch.float64 and torch.equal(single.e0s, exact.e0s)
    old_float32 = {**exact.state_dict(), "e0s": exact.e0s.float()}  # as saved before the E0s stayed float64
    restored = GauntMACE(exact.config).float()
    restored.load_state_dict(old_float32)
    assert torch.equal(restored.e0s, exact.e0s)
    g32, g64 = (to_graph(config, table, CONFIG.r_max, dtype) for dtype in (torch.float32, torch.float64))
    assert g32.energy.dtype == torch.float64 and float(g32.energy) == config.energy
    e32, e64 = single(g32)["energy"], exact(g64)["energy"]
    assert e32.dtype == torch.float64 and abs(float(e64)) > 1e4
    assert abs(float(e32 - e64)) < 2e-5  # the float32 step at 1.7e4 eV is 2e-3


MACE_PARTS = {"pair_repulsion": True, "distance_transform": "Agnesi", "density_normalization": True}


@pytest.mark.parametrize(
    "blocks", [("gaunt", "gaunt", False, True), ("e3nn", "gaunt", False, True), ("gaunt", "symmetric", False, True),
               ("e3nn", "symmetric", True, True), ("gaunt", "gaunt", False, False), ("e3nn", "symmetric", True, False),
               ("e3nn", "symmetric", True, False, MACE_PARTS)]
)  # fmt: skip
def test_forces_are_twice_differentiable(blocks, ethanol):
    """gradcheck of forces(positions), the double backward that force training runs (with and without the first
    layer's self-connection; with the ZBL repulsion, a distance transform and density blocks, on ethanol squeezed to
    75% where the repulsion acts)."""
    torch.manual_seed(3)
    parts = blocks[4] if len(blocks) > 4 else {}
    config = dataclasses.replace(CONFIG, conv_blocks=blocks[0], product_blocks=blocks[1], separate_paths=blocks[2],
                                 first_self_connection=blocks[3], num_channels=3, **parts)  # fmt: skip
    model = GauntMACE(config).double()
    g = graph(moved(ethanol[0], 0.75 * ethanol[0].positions) if parts else ethanol[0])

    def forces(positions):
        batch = dataclasses.replace(g, positions=positions)
        return model(batch, training=True)["forces"]

    positions = g.positions.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(forces, (positions,), atol=1e-6)


def test_repr_shows_each_block_with_its_irreps():
    text = repr(GauntMACE(CONFIG))
    for line in (
        "(conv): GauntConvolution(6x0e x 1x0e+1x1o+1x2e -> 6x0e+6x1o+6x2e)",
        "(product): GauntManyBody(6x0e+6x1o+6x2e -> 6x0e+6x1o, correlation=3, num_elements=3)",
        "(skip): ElementLinear(6x0e -> 6x0e+6x1o, num_elements=3)",
    ):
        assert line in text, text
    cg = repr(GauntMACE(dataclasses.replace(CONFIG, conv_blocks="e3nn", product_blocks="symmetric")))
    assert "CGConvolution(6x0e x 1x0e+1x1o+1x2e -> " in cg and "SymmetricContraction(6x0e+6x1o+6x2e -> " in cg


@pytest.mark.parametrize("blocks", [{}, {"product_blocks": "symmetric", "conv_blocks": "e3nn"}])
def test_whole_model_compiles_to_the_same_energy_forces_and_stress(blocks, ethanol):
    """torch.compile of the whole model (AOT autograd without code generation, so no compiler is needed)
    traces the forward and the forces' backward and gives eager's numbers, stress included."""
    torch.manual_seed(14)
    model = GauntMACE(dataclasses.replace(CONFIG, **blocks)).double()
    boxed = dataclasses.replace(ethanol[0], cell=np.diag([9.0, 10.0, 11.0]))  # a molecule in a box: a stress
    batch = collate([graph(boxed), graph(ethanol[1])])
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    got, want = compiled(batch, compute_stress=True), model(batch, compute_stress=True)
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-12)
    assert want["stress"][0].abs().max() > 0
    torch._dynamo.reset()
