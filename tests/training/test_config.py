"""The options of ``gaunt-tp train``: flags, YAML files, MACE's spellings, ranges; no training runs."""

import dataclasses
import json
import re

import pytest

from gaunt_tp.training.config import _HELP_GROUPS, TrainConfig, build_parser, config_from_args


def test_every_option_is_described_once_and_fixed_choices_are_listed_and_checked():
    described = [name for _, helps in _HELP_GROUPS for name in helps]
    assert sorted(described) == sorted(f.name for f in dataclasses.fields(TrainConfig))  # each field, once
    assert all(text.strip() for _, helps in _HELP_GROUPS for text in helps.values())
    help_text = " ".join(build_parser().format_help().split())
    for title, _ in _HELP_GROUPS:
        assert f"{title}:" in help_text
    assert "--conv_blocks {gaunt,e3nn}" in help_text and "(default gaunt)" in help_text
    with pytest.raises(ValueError, match="product_blocks must be 'gaunt' or 'symmetric', got 'mace'"):
        config_from_args(["--train_file", "a.xyz", "--product_blocks", "mace"])
    with pytest.raises(ValueError, match="default_dtype must be 'float32' or 'float64', got 'float16'"):
        TrainConfig(train_file="a.xyz", default_dtype="float16")  # as from a YAML file


def test_yaml_config_and_flags(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("train_file: a.xyz\nlr: 0.02\nmax_num_epochs: 7\n")
    config = config_from_args(["--config", str(yaml_file), "--lr", "0.001", "--ema", "false"])
    assert (config.train_file, config.lr, config.max_num_epochs, config.ema) == ("a.xyz", 0.001, 7, False)
    yaml_file.write_text("train_file: a.xyz\nlearning_rate: 0.02\n")
    with pytest.raises(ValueError, match="unknown options"):
        config_from_args(["--config", str(yaml_file)])
    with pytest.raises(ValueError, match="train_file is required"):
        config_from_args(["--lr", "0.1"])
    # YAML reads 5e-7 and None as text, a quoted "no" as text: taken as the flags take them
    yaml_file.write_text('train_file: a.xyz\nweight_decay: 5e-7\nclip_grad: None\nrestart_latest: "no"\n'
                         "start_swa: '3'\nE0s: {1: -13.6, 8: -2041}\nname: 2024\n")  # fmt: skip
    config = config_from_args(["--config", str(yaml_file)])
    assert (config.weight_decay, config.clip_grad, config.restart_latest, config.start_swa) == (5e-7, None, False, 3)
    assert (config.E0s, config.name) == ("{1: -13.6, 8: -2041.0}", "2024")
    yaml_file.write_text("train_file: a.xyz\nstage_two: true\nstart_stage_two: 2\nstage_two_lr: 0.002\n")  # aliases
    config = config_from_args(["--config", str(yaml_file)])
    assert (config.swa, config.start_swa, config.swa_lr) == (True, 2, 0.002)
    yaml_file.write_text("train_file: a.xyz\nswa_lr: 0.002\nstage_two_lr: 0.003\n")
    with pytest.raises(ValueError, match=r"\['stage_two_lr'\] given under both of their names"):
        config_from_args(["--config", str(yaml_file)])
    # what a flag takes, YAML takes too, and the other way round
    yaml_file.write_text("train_file: a.xyz\nswa: 1\nema: 0\nradial_mlp: 32\nstart_swa: None\n")
    config = config_from_args(["--config", str(yaml_file)])
    flags = config_from_args(["--train_file", "a.xyz", "--swa", "1", "--ema", "0", "--radial_mlp", "32",
                              "--start_swa", "None"])  # fmt: skip
    assert config == flags
    assert (config.swa, config.ema, config.radial_mlp, config.start_swa) == (True, False, (32,), None)
    with pytest.raises(ValueError, match="start_swa must be an integer or None, got 'soon'"):
        config_from_args(["--train_file", "a.xyz", "--start_swa", "soon"])
    for line, message in (("lr: [0.1]", "lr must be a number, got [0.1]"), ("ema: maybe", "ema must be true or false"),
                          ("swa: 2", "swa must be true or false, got 2"),
                          ("max_num_epochs: 2.5", "max_num_epochs must be an integer, got 2.5"),
                          ("clip_grad: ten", "clip_grad must be a number or None, got 'ten'")):  # fmt: skip
        yaml_file.write_text(f"train_file: a.xyz\n{line}\n")
        with pytest.raises(ValueError, match=re.escape(message)):
            config_from_args(["--config", str(yaml_file)])


MACE_README_EXAMPLE = [  # MACE's README command line, word for word but for the files and the device
    "--name=MACE_model", "--train_file=train.xyz", "--valid_fraction=0.05", "--test_file=test.xyz",
    "--config_type_weights={\"Default\":1.0}",
    "--E0s={1:-13.663181292231226, 6:-1029.2809654211628, 7:-1484.1187695035828, 8:-2042.0330099956639}",
    "--model=MACE", "--hidden_irreps=128x0e + 128x1o", "--r_max=5.0", "--batch_size=10", "--max_num_epochs=1500",
    "--stage_two", "--start_stage_two=1200", "--ema", "--ema_decay=0.99", "--amsgrad", "--restart_latest",
    "--save_cpu", "--error_table=PerAtomMAE",
]  # fmt: skip


def test_mace_command_lines_and_yaml_files_are_read_with_their_spellings(tmp_path):
    """MACE's example runs unchanged: hidden_irreps becomes num_channels and max_L; save_cpu is checked and not
    stored; the same from YAML; irreps gaunt-tp cannot build, another model or a contradiction are errors."""
    config = config_from_args(MACE_README_EXAMPLE)
    assert (config.num_channels, config.max_L, config.swa, config.start_swa) == (128, 1, True, 1200)
    assert config.error_table == "PerAtomMAE" and "hidden_irreps" not in json.loads(config.to_json())
    assert config_from_args(["--train_file=a.xyz", "--hidden_irreps", "32x1o+32x0e+32x2e"]).max_L == 2
    assert config_from_args(["--train_file=a.xyz", "--hidden_irreps=16x0e", "--num_channels=16"]).num_channels == 16
    yaml_file = tmp_path / "mace.yaml"
    yaml_file.write_text("train_file: a.xyz\nmodel: ScaleShiftMACE\nhidden_irreps: 64x0e + 64x1o + 64x2e\n")
    config = config_from_args(["--config", str(yaml_file)])
    assert (config.num_channels, config.max_L) == (64, 2)
    config = config_from_args(["--config", str(yaml_file), "--num_channels", "32", "--error_table",
                               "PerAtomMAEstressvirials"])  # fmt: skip
    assert (config.num_channels, config.max_L) == (32, 2)  # a flag overrides the file's hidden_irreps
    yaml_file.write_text("train_file: a.xyz\nmax_L: 1\nsave_cpu: maybe\n")
    with pytest.raises(ValueError, match="save_cpu must be true or false"):
        config_from_args(["--config", str(yaml_file)])
    for flags, message in ((["--hidden_irreps=128x0e + 128x1e"], "one number of channels over the degrees 0..max_L"),
                           (["--hidden_irreps=128x0e + 64x1o"], "one number of channels"),
                           (["--hidden_irreps=128x0e + 128x2e"], "one number of channels"),
                           (["--hidden_irreps=128y0e"], "is not an irreps string"),
                           (["--hidden_irreps=8x0e+8x1o", "--max_L=2"], "has max_L 1, but max_L is 2"),
                           (["--model=NequIP"], "model must be 'ScaleShiftMACE' or 'MACE'"),
                           (["--error_table=DipoleRMSE"], "error_table must be 'PerAtomRMSE' or")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)):
            config_from_args(["--train_file=a.xyz", *flags])


def test_more_of_maces_flags_translate_or_are_checked(tmp_path, monkeypatch, caplog):
    """--radial_MLP and --MLP_irreps set the radial network's widths and the readout's; the options of MACE's that
    name what gaunt-tp's one model has (silu gate, Bessel basis, no cuEquivariance) or that steer
    its data loader are accepted with those values and not stored; --distributed needs torchrun's environment and
    warns that the batch is global, not per process as in mace-torch."""
    mace = ["--train_file=a.xyz", "--radial_MLP=[32, 16]", "--MLP_irreps=8x0e", "--gate=silu", "--num_workers=4",
            "--scaling=rms_forces_scaling", "--radial_type=bessel", "--pin_memory", "--enable_cueq=False",
            "--compute_avg_num_neighbors=True", "--interaction=RealAgnosticResidualInteractionBlock",
            "--interaction_first=RealAgnosticResidualInteractionBlock", "--pair_repulsion",
            "--distance_transform=Agnesi"]  # fmt: skip
    config = config_from_args(mace)
    assert (config.radial_mlp, config.readout_hidden) == ((32, 16), 8)
    assert config.pair_repulsion and not config_from_args(["--train_file=a.xyz"]).pair_repulsion
    assert config.distance_transform == "Agnesi" and not config.density_normalization
    density = config_from_args(["--train_file=a.xyz", "--interaction_first=RealAgnosticDensityInteractionBlock",
                                "--interaction=RealAgnosticDensityResidualInteractionBlock"])  # fmt: skip
    assert density.density_normalization and not density.first_self_connection
    assert not {"gate", "num_workers", "MLP_irreps", "radial_MLP", "interaction"} & set(json.loads(config.to_json()))
    assert config.first_self_connection
    plain = config_from_args(["--train_file=a.xyz", "--interaction_first=RealAgnosticInteractionBlock"])
    assert not plain.first_self_connection and plain.model == "ScaleShiftMACE"
    # mace-torch builds a block not given as its residual block, and under --model MACE a first block with a
    # self-connection as its plain one: a density block on one side only would normalise only some layers
    density_first = "--interaction_first=RealAgnosticDensityInteractionBlock"
    density_later = "--interaction=RealAgnosticDensityResidualInteractionBlock"
    for flags, message in (([density_first], "build the first layer as RealAgnosticDensityInteractionBlock and the "
                                             "others as RealAgnosticResidualInteractionBlock, normalising the "
                                             "messages of only the first"),
                           ([density_later], "normalising the messages of only the others"),
                           (["--model=MACE", density_later, "--interaction_first=RealAgnosticDensityResidualInteraction"
                             "Block"], "would build the first layer as RealAgnosticInteractionBlock and the others"),
                           (["--model=MACE", density_later], "(with --model MACE)")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)):
            config_from_args(["--train_file=a.xyz", *flags])
    under_mace = config_from_args(["--train_file=a.xyz", "--model=MACE", density_first, density_later])
    assert under_mace.density_normalization and not under_mace.first_self_connection
    split = tmp_path / "split.yaml"  # one block in the file, the other on the command line: both count
    split.write_text("train_file: a.xyz\ninteraction_first: RealAgnosticDensityInteractionBlock\n")
    assert config_from_args(["--config", str(split), density_later]).density_normalization
    with pytest.raises(ValueError, match="normalising the messages of only the first"):
        config_from_args(["--config", str(split)])
    assert config_from_args(["--train_file=a.xyz", "--radial_mlp", "4,4,4"]).radial_mlp == (4, 4, 4)
    yaml_file = tmp_path / "mace.yaml"
    yaml_file.write_text("train_file: a.xyz\nradial_MLP: [16, 16]\nMLP_irreps: 4x0e\ngate: silu\ndistributed: false\n")
    config = config_from_args(["--config", str(yaml_file)])
    assert (config.radial_mlp, config.readout_hidden) == ((16, 16), 4)
    for flags, message in ((["--gate=tanh"], "gate 'tanh': gaunt-tp has 'silu' alone"),
                           (["--scaling=rms_energies"], "scaling must be 'rms_forces_scaling' or 'std_scaling' or"),
                           (["--enable_cueq"], "enable_cueq True: gaunt-tp has False alone"),
                           (["--interaction_first=RealAgnosticAttResidualInteractionBlock"],
                            "interaction_first must be 'RealAgnosticResidualInteractionBlock' or "
                            "'RealAgnosticInteractionBlock' or 'RealAgnosticDensityResidualInteractionBlock' or "
                            "'RealAgnosticDensityInteractionBlock', got 'RealAgnosticAttResidualInteractionBlock'"),
                           (["--interaction=RealAgnosticInteractionBlock"],
                            "interaction must be 'RealAgnosticResidualInteractionBlock' or "
                            "'RealAgnosticDensityResidualInteractionBlock', got 'RealAgnosticInteractionBlock'"),
                           (["--interaction_first=RealAgnosticResidualInteractionBlock",
                             "--interaction=RealAgnosticDensityResidualInteractionBlock"],
                            "interaction 'RealAgnosticDensityResidualInteractionBlock' has density_normalization True, "
                            "but density_normalization is False"),
                           (["--interaction_first=RealAgnosticInteractionBlock", "--first_self_connection"],
                            "has first_self_connection False, but first_self_connection is True"),
                           (["--compute_avg_num_neighbors=False"], "compute_avg_num_neighbors False"),
                           (["--distance_transform=agnesi"], "distance_transform must be 'None' or 'Agnesi' or"),
                           (["--MLP_irreps=16x1o"], "readout has hidden scalars alone"),
                           (["--MLP_irreps=16x0e", "--readout_hidden=8"], "readout_hidden 16, but readout_hidden is 8"),
                           (["--radial_MLP=[64, 0]"], "radial_mlp must be a list of integers >= 1"),
                           (["--radial_MLP=[]"], "radial_mlp must be a list of integers >= 1"),
                           (["--num_workers=many"], "num_workers must be an integer"),
                           (["--distributed"], "start the processes with torchrun")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)):
            config_from_args([*flags, "--train_file=a.xyz"])
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun
    with caplog.at_level("WARNING", logger="gaunt_tp.train"):
        assert config_from_args(["--train_file=a.xyz", "--distributed"]).train_file == "a.xyz"
    assert "--batch_size is the global batch, split between the 2 processes; mace-torch's is each" in caplog.text


def test_maces_model_names_choose_the_shift_and_the_first_block(caplog, tmp_path):
    """``--model ScaleShiftMACE`` (gaunt-tp's default) keeps the first layer's self-connection; ``--model MACE``
    (mace-torch's default) drops it, as mace-torch 0.3.16 does, also when MACE's --interaction_first names the
    residual block (with a warning); gaunt-tp's --first_self_connection wins with either model."""
    assert config_from_args(["--train_file=a.xyz"]).first_self_connection
    assert config_from_args(["--train_file=a.xyz", "--model=ScaleShiftMACE"]).first_self_connection
    mace = config_from_args(MACE_README_EXAMPLE)
    assert mace.model == "MACE" and mace.first_self_connection is False
    assert "first layer has no self-connection" not in caplog.text
    with caplog.at_level("WARNING", logger="gaunt_tp.train"):
        forced = config_from_args(["--train_file=a.xyz", "--model=MACE",
                                   "--interaction_first=RealAgnosticResidualInteractionBlock"])  # fmt: skip
    assert forced.first_self_connection is False and "--model MACE: the first layer has no self-connection" in (
        caplog.text
    )
    assert TrainConfig(train_file="a.xyz", model="MACE", first_self_connection=True).first_self_connection
    assert TrainConfig(train_file="a.xyz", model="MACE").first_self_connection is False
    caplog.clear()
    with caplog.at_level("WARNING", logger="gaunt_tp.train"):  # gaunt-tp's own flag, or a saved config.json, wins
        chosen = config_from_args(["--train_file=a.xyz", "--model=MACE", "--first_self_connection", "true"])
        saved = tmp_path / "config.json"
        saved.write_text(chosen.to_json())
        assert config_from_args(["--config", str(saved)]) == chosen
    assert chosen.first_self_connection is True and "no self-connection" not in caplog.text


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr", "-0.1"], "lr must be >= 0.0, got -0.1"),
        (["--lr_factor", "1.5"], "lr_factor must be > 0.0 and < 1.0, got 1.5"),
        (["--ema_decay", "1.5"], "ema_decay must be >= 0.0 and < 1.0, got 1.5"),
        (["--seed", "-1"], "seed must be >= 0, got -1"),
        (["--weight_decay", "-1"], "weight_decay must be >= 0.0, got -1.0"),
        (["--r_max", "0"], "r_max must be > 0.0, got 0.0"),
        (["--forces_weight", "nan"], "forces_weight must be >= 0.0, got nan"),
        (["--E0s", "{'H': -13.6, 'Q': 1}"], "E0s: 'Q' is neither an atomic number nor an element symbol"),
        (["--num_cutoff_basis", "1"], "num_cutoff_basis must be >= 2, got 1"),  # the model's options too
        (["--correlation", "0"], "correlation must be >= 1, got 0"),
        (["--max_L", "3", "--max_ell", "2"], "max_L must be in 0..max_ell=2, got 3"),
        (["--r_max", "inf"], "r_max must be a number > 0, got inf"),
        (["--max_time_minutes", "nan"], "max_time_minutes must be > 0, got nan"),
        (["--clip_grad", "nan"], "clip_grad must be >= 0 (0: no clipping), got nan"),
        (["--name", "sub/run"], "--name 'sub/run': a name for the run folder and model file, not a path"),
        (["--name", ".."], "--name '..': a name for the run folder"),
    ],
)
def test_options_out_of_range_are_refused_before_any_data_is_read(flags, message):
    """Values PyTorch or the model would reject after the data was read (or would take silently: a negative
    weight) are an InputError naming the option, from TrainConfig itself."""
    with pytest.raises(ValueError, match=re.escape(message)):
        config_from_args(["--train_file", "a.xyz", *flags])


@pytest.mark.parametrize("loss", ["weighted", "stress", "virials", "huber", "universal"])
def test_each_loss_names_its_terms(loss):
    """The loss weights each of MACE's losses gives ``weighted_loss``, in stage one and stage two, with and without
    stress labels in the data."""
    config = TrainConfig(train_file="x.xyz", loss=loss, stress_weight=3.0, virials_weight=4.0, swa_stress_weight=5.0,
                         swa_virials_weight=6.0, huber_delta=0.02)  # fmt: skip
    robust = loss in ("huber", "universal")
    for stage_two, (stress, virials) in ((False, (3.0, 4.0)), (True, (5.0, 6.0))):
        weights = config.loss_weights(stage_two)
        assert weights.stress == (stress if loss in ("stress", "huber", "universal") else 0.0)
        assert weights.virials == (virials if loss == "virials" else 0.0)
        assert weights.huber_delta == (0.02 if robust else 0.0)
        assert weights.universal == (loss == "universal")
        assert config.loss_weights(stage_two, stress_labels=False).stress == (stress if loss == "stress" else 0.0)
