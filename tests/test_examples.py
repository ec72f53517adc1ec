import importlib.util
import sys
from pathlib import Path

import torch

from gaunt_tp.nn import GauntMACE, ModelConfig, save_model

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_md_example_runs_and_conserves_energy(tmp_path, shared_data):
    """On its default data (3BPA in ../shared beside the repository, wherever it is run from)."""
    torch.manual_seed(0)
    config = ModelConfig(atomic_numbers=(1, 6, 7, 8), e0s=(0.0, 0.0, 0.0, 0.0), num_channels=4, max_ell=1, max_L=0,
                         num_interactions=1, radial_mlp=(8,), avg_num_neighbors=10.0)  # fmt: skip
    save_model(GauntMACE(config), tmp_path / "m.model")
    result = load("md_3bpa").main(
        [
            "--model",
            str(tmp_path / "m.model"),
            "--relax_steps",
            "5",
            "--md_steps",
            "40",
            "--timestep_fs",
            "0.25",
        ]  # fmt: skip
    )
    assert len(result["totals"]) == 41
    assert abs(result["drift_eV_per_atom"]) < 1e-4  # velocity Verlet with exact forces
    frequencies = result["frequencies_cm1"]  # 3 x 27, from the Hessian: translations are exact zero modes
    assert len(frequencies) == 81 and (abs(frequencies) < 0.1).sum() >= 3 and abs(frequencies).max() > 100


def test_default_dataset_is_shipped_and_readable():
    from gaunt_tp.data import read_configurations

    train = read_configurations(ROOT / "gaunt_tp" / "datasets" / "ethanol_xtb_train.xyz")
    test = read_configurations(ROOT / "gaunt_tp" / "datasets" / "ethanol_xtb_test.xyz")
    isolated = read_configurations(ROOT / "gaunt_tp" / "datasets" / "ethanol_xtb_isolated.xyz", require_forces=False)
    assert (len(train), len(test), len(isolated)) == (250, 50, 3)
    assert {c.config_type for c in train} == {"md_800K"}
