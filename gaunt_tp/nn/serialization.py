"""Saving and loading models: weights and JSON hyperparameters, no pickled code."""

from __future__ import annotations

from pathlib import Path

import torch

from gaunt_tp.devices import torch_device
from gaunt_tp.errors import InputError
from gaunt_tp.files import replace_durably
from gaunt_tp.nn.model import GauntMACE, ModelConfig

__all__ = ["load_model", "save_model"]

# /2: messages normalised per degree, radial MLP and readout parametrised like e3nn's (2026-12-01);
# the same weights compute a different function under /1.
# /3: the CG convolution (conv_blocks="e3nn") takes component-normalised edge harmonics, as MACE does;
# /2 files of Gaunt models mean the same function and load, those of CG models are refused.
FORMAT = "gaunt-tp-model/3"


def save_model(model: GauntMACE, path: str | Path) -> None:
    """Write ``path`` (a ``.pt`` with the JSON config and the float64 weights) and ``path.json``.

    Both are written to temporary files first and moved into place, so a crash never leaves a
    half-written model.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": model.config.to_json(),
        "state_dict": {
            k: v.detach().to("cpu", torch.float64 if v.is_floating_point() else v.dtype)
            for k, v in model.state_dict().items()
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    replace_durably(tmp, path)
    side = path.with_name(path.name + ".json")
    tmp_side = side.with_name(side.name + ".tmp")
    tmp_side.write_text(model.config.to_json())
    replace_durably(tmp_side, side)


def load_model(
    path: str | Path, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> GauntMACE:
    """Rebuild a model saved by :func:`save_model` (``weights_only`` loading: no code is unpickled), on ``device``
    (an InputError for one this machine lacks or torch does not parse) in ``dtype``."""
    device = torch_device(device)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(  # torch.load's own message is long and suggests unsafe loading: kept only as the cause
            f"{path}: not a readable gaunt-tp model (torch.load raised {type(err).__name__}); expected a .model "
            "file written by gaunt-tp train or save_model"
        ) from err
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found == "gaunt-tp-model/1":
        raise InputError(
            f"{path}: written by an earlier gaunt-tp (format 'gaunt-tp-model/1'), whose layers are parametrised "
            f"differently; retrain the model with this version"
        )
    if found is None and isinstance(payload, dict) and {"model", "epoch"} <= payload.keys():
        raise InputError(
            f"{path}: a training checkpoint (epoch {payload['epoch']}), not a model; use the .model file that "
            "gaunt-tp train writes in the run folder (<work_dir>/<name>/<name>.model)"
        )
    if found not in (FORMAT, "gaunt-tp-model/2"):
        raise InputError(f"{path}: not a gaunt-tp model file (format {found!r}, expected {FORMAT!r})")
    if missing := sorted({"config", "state_dict"} - payload.keys()):
        raise InputError(f"{path}: a gaunt-tp model file without its {' and '.join(missing)} (damaged?)")
    try:
        config = ModelConfig.from_json(payload["config"])
    except TypeError as err:  # an option unknown here or one missing: written by another gaunt-tp
        raise InputError(
            f"{path}: model options that this gaunt-tp cannot read ({err}); written by another version?"
        ) from None
    except ValueError as err:
        raise InputError(f"{path}: invalid model options: {err}") from None
    if found == "gaunt-tp-model/2" and config.conv_blocks != "gaunt":
        raise InputError(
            f"{path}: a model with the CG convolution written by an earlier gaunt-tp (format 'gaunt-tp-model/2'), "
            f"whose edge harmonics were normalised differently; retrain the model with this version"
        )
    model = GauntMACE(config).to(torch.float64)  # the saved float64 weights kept whole, then cast to ``dtype``
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:  # missing, unexpected or misshapen weights
        raise InputError(f"{path}: the weights do not fit the model its options describe: {err}") from None
    return model.to(device=device, dtype=dtype)
