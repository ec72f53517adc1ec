"""Each option of the model (MACE's blocks, the first layer without a self-connection, the ZBL repulsion, distance
transforms, density blocks, ...) gives a valid model: forces as minus the gradient, invariance with inversion in
float64 and float32, batching, and the option's own property."""

import dataclasses
import json

import pytest
import torch
from model_checks import CONFIG, assert_float32_invariance, assert_forces_and_invariance, graph, moved

from gaunt_tp.data import collate
from gaunt_tp.nn import GauntMACE, ModelConfig
from gaunt_tp.testing import random_rotation


def test_e3nn_convolution_blocks_give_a_valid_model(ethanol):
    torch.manual_seed(1)
    model = GauntMACE(dataclasses.replace(CONFIG, conv_blocks="e3nn")).double()
    assert type(model.layers[0].conv).__name__ == "CGConvolution"
    config = ethanol[2]
    out = model(graph(config))
    h = 1e-5
    plus, minus = config.positions.copy(), config.positions.copy()
    plus[4, 1] += h
    minus[4, 1] -= h
    numeric = -(model(graph(moved(config, plus)))["energy"] - model(graph(moved(config, minus)))["energy"]) / (2 * h)
    assert float(numeric) == pytest.approx(float(out["forces"][4, 1]), abs=1e-6)
    rot = random_rotation(generator=torch.Generator().manual_seed(5)).numpy()
    rotated = model(graph(moved(config, config.positions @ rot.T)))
    assert float(rotated["energy"]) == pytest.approx(float(out["energy"]), abs=1e-10)
    with pytest.raises(ValueError, match="conv_blocks"):
        dataclasses.replace(CONFIG, conv_blocks="cg")


def test_radial_per_input_gives_a_valid_model(ethanol):
    torch.manual_seed(4)
    config = dataclasses.replace(CONFIG, radial_per_input=True)
    assert ModelConfig.from_json(config.to_json()) == config
    model = GauntMACE(config).double()
    assert model.layers[1].conv.radial_per_input and model.layers[1].conv.radial_inputs == 2  # 0e + 1o in
    assert_forces_and_invariance(model, ethanol[1], atom=2, axis=0, seed=6)
    with pytest.raises(ValueError, match="radial_per_input"):
        dataclasses.replace(CONFIG, conv_blocks="e3nn", radial_per_input=True)


def test_num_products_gives_a_valid_model(ethanol):
    torch.manual_seed(7)
    config = dataclasses.replace(CONFIG, num_products=3)
    assert ModelConfig.from_json(config.to_json()) == config
    model = GauntMACE(config).double()
    assert all(layer.product.num_products == 3 for layer in model.layers)
    with torch.no_grad():
        for layer in model.layers:
            layer.product.factor.normal_()  # three different products
    assert_forces_and_invariance(model, ethanol[1], atom=4, axis=1, seed=8)
    with pytest.raises(ValueError, match="num_products"):
        dataclasses.replace(CONFIG, num_products=0)


def test_symmetric_product_blocks_give_a_valid_model(ethanol):
    torch.manual_seed(9)
    config = dataclasses.replace(CONFIG, product_blocks="symmetric")
    assert ModelConfig.from_json(config.to_json()) == config
    model = GauntMACE(config).double()
    assert all(type(layer.product).__name__ == "SymmetricContraction" for layer in model.layers)
    assert_forces_and_invariance(model, ethanol[1], atom=3, axis=2, seed=10)
    with pytest.raises(ValueError, match="product_blocks"):
        dataclasses.replace(CONFIG, product_blocks="mace")
    with pytest.raises(ValueError, match="num_products"):
        dataclasses.replace(CONFIG, product_blocks="symmetric", num_products=2)


@pytest.mark.parametrize("separate_paths", [False, True])
def test_cg_convolution_with_symmetric_blocks_gives_a_valid_model(separate_paths, ethanol):
    """MACE's blocks (the layers in the rows layout end to end): forces, invariance with inversion in float64,
    and in float32 to its rounding."""
    torch.manual_seed(11)
    config = dataclasses.replace(CONFIG, conv_blocks="e3nn", product_blocks="symmetric", separate_paths=separate_paths)
    model = GauntMACE(config).double()
    assert all(layer.product.out_layout == "rows" for layer in model.layers)
    assert_forces_and_invariance(model, ethanol[1], atom=5, axis=0, seed=12)
    assert_float32_invariance(model.float(), ethanol[3], seed=13)


@pytest.mark.parametrize("blocks", [{}, {"conv_blocks": "e3nn", "product_blocks": "symmetric"}])
def test_first_layer_without_self_connection_gives_a_valid_model(blocks, ethanol):
    """MACE's RealAgnosticInteractionBlock as the first layer: no self-connection there, an element-dependent map of
    the convolution's output before the many-body block instead (the later layers unchanged). Forces, invariance
    with inversion in float64 and float32, batching, and configs written before the option existed."""
    torch.manual_seed(13)
    config = dataclasses.replace(CONFIG, first_self_connection=False, **blocks)
    assert ModelConfig.from_json(config.to_json()) == config
    model = GauntMACE(config).double()
    first, second = model.layers
    assert first.skip is None and first.element_mix is not None
    assert second.skip is not None and second.element_mix is None
    with torch.no_grad():  # the element maps away from their initial values, per element
        first.element_mix.weight.normal_()
    assert_forces_and_invariance(model, ethanol[1], atom=6, axis=1, seed=14)
    one_by_one = torch.cat([model(graph(c))["energy"] for c in ethanol])
    torch.testing.assert_close(model(collate([graph(c) for c in ethanol]))["energy"], one_by_one, rtol=0, atol=1e-10)
    assert_float32_invariance(model.float(), ethanol[3], seed=15)
    old = json.loads(CONFIG.to_json())
    del old["first_self_connection"]  # a model file of an earlier gaunt-tp
    assert ModelConfig.from_json(json.dumps(old)).first_self_connection


def test_pair_repulsion_gives_a_valid_model(ethanol):
    """The ZBL repulsion (on molecules squeezed to 70%, where bonds are shorter than the covalent radii): forces,
    invariance with inversion in float64 and float32, batching; the energy is the model's without it plus the
    repulsion times the scale; configs written before the option existed read as without."""
    torch.manual_seed(16)
    config = dataclasses.replace(CONFIG, pair_repulsion=True, energy_scale=1.7, energy_shift=-0.2)
    assert ModelConfig.from_json(config.to_json()) == config
    assert config.optional_parts() == ["ZBL pair repulsion"] and CONFIG.optional_parts() == []
    model = GauntMACE(config).double()
    plain = GauntMACE(dataclasses.replace(config, pair_repulsion=False)).double()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("pair_repulsion.")})
    squeezed = [moved(c, 0.7 * c.positions) for c in ethanol]
    assert_forces_and_invariance(model, squeezed[1], atom=4, axis=2, seed=17)
    one_by_one = torch.cat([model(graph(c))["energy"] for c in squeezed])
    torch.testing.assert_close(model(collate([graph(c) for c in squeezed]))["energy"], one_by_one, rtol=0, atol=1e-9)
    g = graph(squeezed[0])
    sender, receiver = g.edge_index
    lengths = (g.positions[receiver] + g.shifts - g.positions[sender]).norm(dim=1)
    repulsion = model.pair_repulsion(lengths, g.species, g.edge_index).sum()
    assert float(repulsion) > 1.0  # it acts here
    difference = model(g, compute_forces=False)["energy"] - plain(g, compute_forces=False)["energy"]
    assert float(difference) == pytest.approx(1.7 * float(repulsion), rel=1e-12)
    unsqueezed = graph(ethanol[0])  # at equilibrium bonds are about the sums of the radii: the repulsion is small
    small = model(unsqueezed, compute_forces=False)["energy"] - plain(unsqueezed, compute_forces=False)["energy"]
    assert abs(float(small)) < 0.05 * float(difference)
    old = json.loads(CONFIG.to_json())
    del old["pair_repulsion"], old["distance_transform"], old["density_normalization"]  # of an earlier gaunt-tp
    assert not ModelConfig.from_json(json.dumps(old)).pair_repulsion and GauntMACE(CONFIG).pair_repulsion is None
    assert ModelConfig.from_json(json.dumps(old)).distance_transform == "None"
    assert not ModelConfig.from_json(json.dumps(old)).density_normalization
    assert_float32_invariance(model.float(), squeezed[3], seed=18)


@pytest.mark.parametrize("blocks", [{}, {"conv_blocks": "e3nn", "product_blocks": "symmetric"}])
def test_density_normalisation_gives_a_valid_model(blocks, ethanol):
    """Messages divided by 1 + a learnt density of neighbours (MACE's density blocks) instead of the average number:
    forces, invariance with inversion in float64 and float32, batching; avg_num_neighbors no longer matters, and an
    atom's message is that of the same model without the normalisation divided by its 1 + density."""
    torch.manual_seed(22)
    config = dataclasses.replace(CONFIG, density_normalization=True, **blocks)
    assert ModelConfig.from_json(config.to_json()) == config
    model = GauntMACE(config).double()
    with torch.no_grad():
        for layer in model.layers:
            layer.density.weights[0].normal_()
    assert_forces_and_invariance(model, ethanol[1], atom=3, axis=1, seed=23)
    one_by_one = torch.cat([model(graph(c))["energy"] for c in ethanol])
    torch.testing.assert_close(model(collate([graph(c) for c in ethanol]))["energy"], one_by_one, rtol=0, atol=1e-10)
    other = GauntMACE(dataclasses.replace(config, avg_num_neighbors=7.0)).double()
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other(graph(ethanol[0]))["energy"], one_by_one[:1], rtol=0, atol=1e-12)
    # the first layer's messages against the unnormalised layer's, divided per atom by 1 + sum_edges tanh(w . f)^2
    g, layer = graph(ethanol[0]), model.layers[0]
    captured = {}
    layer.linear_a.register_forward_hook(lambda module, inputs, output: captured.update(a=output))
    layer.product.register_forward_pre_hook(lambda module, inputs: captured.update(normalised=inputs[0]))
    model(g, compute_forces=False)
    sender, receiver = g.edge_index
    lengths = (g.positions[receiver] + g.shifts - g.positions[sender]).norm(dim=1)
    feats = model.bessel(lengths) * model.cutoff(lengths)[:, None]
    density = torch.zeros(g.positions.shape[0], dtype=torch.float64).index_add(
        0, receiver, torch.tanh((feats @ layer.density.weights[0] / feats.shape[1] ** 0.5).squeeze(-1) ** 2)
    )
    expected = captured["a"] / (1 + density)[:, None]
    if layer.element_mix is not None:
        expected = layer.element_mix(expected, (g.species[:, None] == torch.arange(3)).double())
    torch.testing.assert_close(captured["normalised"], expected, rtol=1e-12, atol=1e-12)  # fmt: skip
    assert_float32_invariance(model.float(), ethanol[3], seed=24)


@pytest.mark.parametrize("transform", ["Agnesi", "Soft"])
def test_distance_transforms_give_a_valid_model(transform, ethanol):
    """MACE's distance transforms of the radial basis's lengths: forces, invariance with inversion in float64 and
    float32, batching; the same weights without the transform give other energies; unknown names are refused."""
    torch.manual_seed(19)
    config = dataclasses.replace(CONFIG, distance_transform=transform, density_normalization=True)
    assert ModelConfig.from_json(config.to_json()) == config
    assert config.optional_parts() == [
        f"{transform} distance transform",
        "messages over a learnt density of neighbours",
    ]
    config = dataclasses.replace(config, density_normalization=False)
    model = GauntMACE(config).double()
    plain = GauntMACE(dataclasses.replace(config, distance_transform="None")).double()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("distance_transform.")})
    assert_forces_and_invariance(model, ethanol[1], atom=1, axis=1, seed=20)
    one_by_one = torch.cat([model(graph(c))["energy"] for c in ethanol])
    torch.testing.assert_close(model(collate([graph(c) for c in ethanol]))["energy"], one_by_one, rtol=0, atol=1e-10)
    assert (one_by_one - plain(collate([graph(c) for c in ethanol]))["energy"]).abs().min() > 1e-3
    assert_float32_invariance(model.float(), ethanol[3], seed=21)
    with pytest.raises(ValueError, match="distance_transform must be 'None' or 'Agnesi' or 'Soft', got 'agnesi'"):
        dataclasses.replace(CONFIG, distance_transform="agnesi")


@pytest.mark.parametrize(
    "max_L, first_self_connection, expected",
    [(1, True, 219_984), (2, True, 304_208), (1, False, 269_136), (2, False, 353_360)],
)
def test_separate_paths_give_mace_its_parameter_count(max_L, first_self_connection, expected):
    """With the symmetric block and the CG convolution's paths kept apart, the model has exactly the
    parameters of mace-torch 0.3.16's ScaleShiftMACE of the same size (64 channels, max_ell 3, correlation 3,
    two layers, radial MLP [64, 64, 64], H C N O: counted by ``benchmarks/compare_training.py``'s models), with its
    first block RealAgnosticResidualInteractionBlock or, without the first self-connection,
    RealAgnosticInteractionBlock (counted with mace-torch 0.3.16 in its own environment, docs/benchmark-log.md
    "mace-torch models converted"); the paths are grouped by output irrep, each group one block of the next linear
    layer."""
    config = ModelConfig(atomic_numbers=(1, 6, 7, 8), e0s=(0.0,) * 4, max_ell=3, num_channels=64, max_L=max_L,
                         correlation=3, num_interactions=2, radial_mlp=(64, 64, 64), readout_hidden=16,
                         conv_blocks="e3nn", product_blocks="symmetric", separate_paths=True,
                         first_self_connection=first_self_connection)  # fmt: skip
    model = GauntMACE(config)
    assert sum(p.numel() for p in model.parameters()) == expected
    conv = model.layers[1].conv
    paths = [conv.irreps_out[io].ir for _, _, io in conv.paths]
    assert paths == sorted(paths) and len(conv.irreps_out) == len(paths)  # one output block per path, grouped
    assert [ir for _, ir in model.layers[1].linear_a.irreps_in] == sorted(set(paths))
    summed = GauntMACE(dataclasses.replace(config, separate_paths=False)).layers[1].conv
    assert len(summed.paths) == len(paths) and len(summed.irreps_out) == len(set(paths))
    with pytest.raises(ValueError, match="separate_paths applies to the CG convolution"):
        dataclasses.replace(config, conv_blocks="gaunt")
