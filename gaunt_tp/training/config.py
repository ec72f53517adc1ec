"""Training configuration: one frozen dataclass, filled from a YAML file and/or MACE-style flags."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from gaunt_tp.data.e0s import SCALINGS, e0s_from_text
from gaunt_tp.devices import torch_device
from gaunt_tp.dtypes import DTYPES
from gaunt_tp.errors import InputError
from gaunt_tp.nn.distance_transform import DISTANCE_TRANSFORMS
from gaunt_tp.nn.model import CONV_BLOCKS, PRODUCT_BLOCKS, ModelConfig
from gaunt_tp.training.mace_options import (
    ALIASES,
    MACE_BOOLEANS,
    MACE_MODELS,
    MACE_SPELLINGS,
    PLAIN_BLOCK,
    check_mace_blocks,
    translate_mace_spellings,
)
from gaunt_tp.training.metrics import LossWeights
from gaunt_tp.training.option_values import boolean, float_or_none, typed

__all__ = ["MODEL_OPTIONS", "OptionParser", "TrainConfig", "build_parser", "config_from_args"]

# MACE's error tables that gaunt-tp reports: energy per atom or per configuration (Total), RMSE or MAE
ERROR_TABLES = ("PerAtomRMSE", "PerAtomMAE", "TotalRMSE", "TotalMAE", "PerAtomRMSEstressvirials",
                "PerAtomMAEstressvirials")  # fmt: skip

# the --E0s value that keeps the E0s of the --foundation_model
FOUNDATION_E0S = "foundation"

# the options with a fixed set of values (listed by --help, checked by TrainConfig)
CHOICES = {
    "conv_blocks": CONV_BLOCKS,
    "product_blocks": PRODUCT_BLOCKS,
    "loss": ("weighted", "stress", "virials", "huber", "universal"),
    "model": MACE_MODELS,
    "scaling": SCALINGS,
    "distance_transform": tuple(DISTANCE_TRANSFORMS),
    "optimizer": ("adam", "adamw"),
    "scheduler": ("ReduceLROnPlateau", "ExponentialLR"),
    "default_dtype": DTYPES,
    "error_table": ERROR_TABLES,
}


# numeric options outside what PyTorch or the model accept: (name, lower bound, upper bound or None); the names in
# _POSITIVE exclude their lower bound, the others include it; upper bounds are excluded
_RANGES = (
    ("r_max", 0.0, None), ("lr", 0.0, None), ("swa_lr", 0.0, None), ("weight_decay", 0.0, None),
    ("lr_factor", 0.0, 1.0), ("lr_scheduler_gamma", 0.0, 1.0), ("ema_decay", 0.0, 1.0), ("seed", 0, None),
    ("scheduler_patience", 0, None),
    ("energy_weight", 0.0, None), ("forces_weight", 0.0, None), ("stress_weight", 0.0, None),
    ("virials_weight", 0.0, None), ("swa_energy_weight", 0.0, None), ("swa_forces_weight", 0.0, None),
    ("swa_stress_weight", 0.0, None), ("swa_virials_weight", 0.0, None), ("huber_delta", 0.0, None),
)  # fmt: skip
# the lower bound excluded for these (a learning rate of 0 freezes the weights: tests use it)
_POSITIVE = {"r_max", "lr_factor", "lr_scheduler_gamma", "huber_delta"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; field names follow MACE's command line."""

    train_file: str
    name: str = "gaunt_model"
    work_dir: str = "."
    valid_file: str | None = None
    valid_fraction: float = 0.1
    test_file: str | None = None
    E0s: str = "average"
    foundation_model: str | None = None  # a trained model to start from (fine-tuning): its architecture and weights
    energy_key: str = "REF_energy"
    forces_key: str = "REF_forces"
    stress_key: str = "REF_stress"
    virials_key: str = "REF_virials"
    r_max: float = 5.0
    max_ell: int = 3
    num_channels: int = 64
    max_L: int = 1
    correlation: int = 3
    num_interactions: int = 2
    num_radial_basis: int = 8
    num_cutoff_basis: int = 5
    radial_mlp: tuple[int, ...] = (64, 64, 64)
    readout_hidden: int = 16
    conv_blocks: str = "gaunt"
    radial_per_input: bool = False
    num_products: int = 1
    product_blocks: str = "gaunt"
    separate_paths: bool = False
    # MACE's model names: "ScaleShiftMACE" shifts the site energies by the training set's mean interaction energy per
    # atom; "MACE" (mace-torch's default) does not, and its first layer has no self-connection, as in mace-torch
    model: str = "ScaleShiftMACE"
    scaling: str = "rms_forces_scaling"  # MACE's scale of the network's output (gaunt_tp.data.shift_and_scale)
    first_self_connection: bool | None = None  # None: the model's (False for "MACE", True for "ScaleShiftMACE")
    pair_repulsion: bool = False  # MACE's ZBL repulsion of atoms closer than their covalent radii
    distance_transform: str = "None"  # MACE's transform of the lengths the radial basis sees
    density_normalization: bool = False  # messages over 1 + a learnt density of neighbours (MACE's density blocks)
    batch_size: int = 5
    valid_batch_size: int = 10
    max_num_epochs: int = 100
    lr: float = 0.01
    weight_decay: float = 5e-7
    amsgrad: bool = True
    optimizer: str = "adam"
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    # "weighted": energies and forces; "stress": also the stress of the configurations that have one; "virials":
    # their virials per atom instead; "huber": energies, forces and stress through Huber's function; "universal":
    # "huber" with a smaller delta for atoms under large reference forces (MACE's names)
    loss: str = "weighted"
    stress_weight: float = 1.0
    virials_weight: float = 1.0
    huber_delta: float = 0.01
    # loss weight per config_type (JSON, e.g. '{"Default": 1.0, "bulk": 10}'; a mapping in YAML), times each
    # configuration's own weight (config_weight); types not named keep 1
    config_type_weights: str | None = None
    # MACE's stage two (formerly "SWA"): after start_swa epochs (default 3/4 of max_num_epochs), train with
    # these loss weights at learning rate swa_lr, without the learning-rate schedule
    swa: bool = False
    start_swa: int | None = None
    swa_lr: float = 1e-3
    swa_energy_weight: float = 1000.0
    swa_forces_weight: float = 100.0
    swa_stress_weight: float = 1.0
    swa_virials_weight: float = 1.0
    # learning-rate schedule before stage two (MACE's names): "ReduceLROnPlateau" multiplies it by lr_factor after
    # scheduler_patience evaluations without a better validation loss; "ExponentialLR" by lr_scheduler_gamma after
    # every epoch
    scheduler: str = "ReduceLROnPlateau"
    scheduler_patience: int = 50
    lr_scheduler_gamma: float = 0.9993
    patience: int = 2048  # evaluations without a better validation loss before stopping (or starting stage two)
    clip_grad: float | None = 10.0  # gradient norm clipping (MACE's default); 0 or None: no clipping
    lr_factor: float = 0.8
    ema: bool = True
    ema_decay: float = 0.99
    eval_interval: int = 1
    error_table: str = "PerAtomRMSE"
    max_time_minutes: float | None = None  # stop after the epoch that crosses this wall-clock budget
    device: str = "cpu"
    cuda_graph: bool = False  # replay each training step from a captured CUDA graph (training/step.py)
    default_dtype: str = "float64"
    seed: int = 123
    restart_latest: bool = False
    keep_checkpoints: bool = False
    plots: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # YAML values (``lr: 1e-3`` is a string to YAML) as the flags take them
            object.__setattr__(self, f.name, typed(f.name, f.type, getattr(self, f.name)))
        for name, allowed in CHOICES.items():  # before any data is read
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be {' or '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if self.first_self_connection is None:
            object.__setattr__(self, "first_self_connection", self.model != "MACE")
        if self.E0s.lstrip().startswith("{"):  # a mapping is checked before any data is read
            e0s_from_text(self.E0s)
        if self.E0s == FOUNDATION_E0S and not self.foundation_model:
            raise InputError(f"--E0s {FOUNDATION_E0S} keeps the E0s of a --foundation_model, and none is given")
        for name, low, high in _RANGES:
            value = getattr(self, name)
            if not (value > low if name in _POSITIVE else value >= low) or (high is not None and not value < high):
                bounds = f"{'>' if name in _POSITIVE else '>='} {low}" + (f" and < {high}" if high is not None else "")
                raise InputError(f"{name} must be {bounds}, got {value}")
        if not 0 < self.valid_fraction < 1:
            raise InputError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if not self.name or self.name in (".", "..") or "/" in self.name or "\\" in self.name:
            raise InputError(f"--name {self.name!r}: a name for the run folder and model file, not a path (the "
                             "folder goes under --work_dir)")  # fmt: skip
        if self.max_time_minutes is not None and not self.max_time_minutes > 0:  # NaN too: it would never stop
            raise InputError(f"max_time_minutes must be > 0, got {self.max_time_minutes}")
        if self.clip_grad is not None and not self.clip_grad >= 0:
            raise InputError(f"clip_grad must be >= 0 (0: no clipping), got {self.clip_grad}")
        if isinstance(self.config_type_weights, dict):  # from YAML: kept as JSON, like the flag
            object.__setattr__(self, "config_type_weights", json.dumps(self.config_type_weights))
        self.type_weights  # noqa: B018 (checks the mapping)
        for name in ("batch_size", "valid_batch_size", "max_num_epochs", "eval_interval", "patience"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cuda_graph and not self.device.startswith("cuda"):
            raise InputError(f"cuda_graph replays CUDA graphs: it needs a CUDA --device, got {self.device!r}")
        if self.swa and self.start_swa is not None and not 0 <= self.start_swa < self.max_num_epochs:
            raise InputError(
                f"start_swa must be in 0..max_num_epochs-1={self.max_num_epochs - 1} "
                f"(stage two starts after that many epochs), got {self.start_swa}"
            )
        # the model options, checked before any data is read (one element and placeholder normalisation here)
        self.model_config((1,), (0.0,), avg_num_neighbors=1.0, energy_shift=0.0, energy_scale=1.0)

    def model_config(
        self,
        atomic_numbers: tuple[int, ...],
        e0s: tuple[float, ...],
        *,
        avg_num_neighbors: float,
        energy_shift: float,
        energy_scale: float,
    ) -> ModelConfig:
        """The model these options describe (:data:`MODEL_OPTIONS`), for the elements ``atomic_numbers`` with their
        ``e0s`` (eV) and the normalisation the training data gives."""
        return ModelConfig(
            atomic_numbers=atomic_numbers,
            e0s=e0s,
            avg_num_neighbors=avg_num_neighbors,
            energy_shift=energy_shift,
            energy_scale=energy_scale,
            **{name: getattr(self, name) for name in MODEL_OPTIONS},
        )

    @property
    def stage_two_after(self) -> int | None:
        """The number of epochs after which stage two starts (None without ``swa``); MACE's default
        ``max(1, max_num_epochs // 4 * 3)``."""
        if not self.swa:
            return None
        return self.start_swa if self.start_swa is not None else max(1, self.max_num_epochs // 4 * 3)

    @property
    def type_weights(self) -> dict[str, float]:
        """``config_type_weights`` as a mapping (empty when not given): JSON, or a Python literal as mace-torch reads
        it (``"{'Default': 1.0}"``)."""
        if self.config_type_weights is None:
            return {}
        try:
            weights = json.loads(self.config_type_weights)
        except json.JSONDecodeError:
            try:
                weights = ast.literal_eval(self.config_type_weights)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise InputError(
                    f"config_type_weights must be a JSON (or Python) mapping, got {self.config_type_weights!r}"
                ) from None
        if not isinstance(weights, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf for v in weights.values()
        ):
            raise InputError(
                f"config_type_weights must map config types to weights >= 0, got {self.config_type_weights!r}"
            )
        return {str(k): float(v) for k, v in weights.items()}

    def loss_weights(self, stage_two: bool, stress_labels: bool = True) -> LossWeights:
        """Energy, force, stress and virials weights of the loss and Huber's delta, as
        :func:`gaunt_tp.training.metrics.weighted_loss` takes them, in stage two or not: stress 0 unless ``loss`` is
        ``"stress"`` or, where the data has ``stress_labels``, ``"huber"`` or ``"universal"``; virials 0 unless
        ``"virials"``; delta 0 (squared errors) unless ``"huber"`` or ``"universal"``."""
        if stage_two:
            e, f, s, v = self.swa_energy_weight, self.swa_forces_weight, self.swa_stress_weight, self.swa_virials_weight
        else:
            e, f, s, v = self.energy_weight, self.forces_weight, self.stress_weight, self.virials_weight
        robust = self.loss in ("huber", "universal")
        stress = self.loss == "stress" or (robust and stress_labels)
        huber = self.huber_delta if robust else 0.0
        virials = v if self.loss == "virials" else 0.0
        return LossWeights(e, f, s if stress else 0.0, virials, huber, universal=self.loss == "universal")

    @property
    def run_dir(self) -> Path:
        return Path(self.work_dir) / self.name

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


# the model's hyperparameters among the training options: those named alike in ModelConfig and TrainConfig
MODEL_OPTIONS = frozenset(f.name for f in dataclasses.fields(ModelConfig)) & {
    f.name for f in dataclasses.fields(TrainConfig)
}


class OptionParser(argparse.ArgumentParser):
    """argparse whose errors (an unknown flag, a value of the wrong type) are an :class:`InputError`: one line
    on stderr and exit status 2 from ``gaunt-tp``, like every other bad input, instead of the usage text."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (gaunt-tp {self.prog.split()[-1]} --help lists the options)")


def build_parser() -> argparse.ArgumentParser:
    """``gaunt-tp train`` flags: one per TrainConfig field, in MACE-like groups, plus ``--config`` (YAML; flags
    override it)."""
    parser = OptionParser(
        prog="gaunt-tp train",
        description="Train a gaunt-tp interatomic potential. Every option may also be given in the --config YAML file.",
    )
    parser.add_argument("--config", help="YAML file with any of the options below; flags given here override it")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for title, helps in _HELP_GROUPS:
        group = parser.add_argument_group(title)
        for name, text in helps.items():
            f = fields[name]
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            names = [f"--{name}"] + ([f"--{ALIASES[name]}"] if name in ALIASES else [])
            shown = "required" if f.default is dataclasses.MISSING else f"default {f.default}"
            common = {"dest": name, "default": argparse.SUPPRESS, "help": f"{text} ({shown})"}  # absent unless given
            if name in CHOICES:  # listed here, checked by TrainConfig like the YAML file's values
                group.add_argument(*names, type=str, metavar="{" + ",".join(CHOICES[name]) + "}", **common)
            elif "tuple" in kind:  # a list, as text: converted by TrainConfig like the YAML file's values
                group.add_argument(*names, type=str, metavar="[W, ...]", **common)
            elif "bool" in kind:
                group.add_argument(*names, type=boolean, nargs="?", const=True, metavar="BOOL", **common)
            elif "int" in kind and "float" not in kind:  # "None" too where None is allowed, converted by TrainConfig
                group.add_argument(*names, type=str if "None" in kind else int, **common)
            elif "float" in kind:
                group.add_argument(*names, type=float_or_none if "None" in kind else float, **common)
            else:
                group.add_argument(*names, type=str, **common)
    group = parser.add_argument_group("MACE's spellings (translated or checked, not stored)")
    for name, text in MACE_SPELLINGS.items():
        kind = {"type": boolean, "nargs": "?", "const": True, "metavar": "BOOL"} if name in MACE_BOOLEANS else {}
        group.add_argument(f"--{name}", dest=name, default=argparse.SUPPRESS, help=text, **kind)
    return parser


# (group title, {field: help}) for every TrainConfig field, in the order --help lists them
_HELP_GROUPS: list[tuple[str, dict[str, str]]] = [
    ("data", {
        "train_file": "training configurations: extxyz (or any ASE format) or an rMD17 .npz",
        "valid_file": "validation configurations; without it --valid_fraction of the training file is held out",
        "valid_fraction": "fraction of the training file held out for validation when no --valid_file is given",
        "test_file": "test configurations, evaluated with the best model at the end",
        "E0s": "isolated-atom energies: 'average' (the training file's IsolatedAtom configurations if it has "
               "any, as in MACE, else least squares over the training set), an extxyz of isolated "
               "atoms (energies under --energy_key), MACE's JSON file, or a mapping such as '{1: -13.6, 8: -2041.9}' "
               "or \"{'H': -13.6}\" (element: eV); 'foundation': the --foundation_model's (with one, 'average' fits "
               "what that model leaves unexplained)",
        "energy_key": "info key of the reference energy (eV), also looked for among the results of the calculator "
                      "ASE attaches (free_energy); ASE's calculator energy is read when it is absent",
        "forces_key": "arrays key of the reference forces (eV/A); ASE's calculator forces are read when absent",
        "stress_key": "info key of the reference stress (eV/A^3; used where the cell spans a volume)",
        "virials_key": "info key of reference virials (eV), read as the stress -virials/volume where a "
                       "configuration has no stress label",
        "config_type_weights": "loss weight per config_type as JSON, e.g. '{\"Default\": 1.0, \"bulk\": 10}'",
    }),
    ("model", {
        "foundation_model": "a gaunt-tp .model to start from (fine-tuning): its architecture, elements and weights; "
                            "the data gives new E0s unless --E0s foundation",
        "r_max": "cutoff radius (A)",
        "max_ell": "largest degree of the edges' spherical harmonics",
        "num_channels": "channels per irrep of the hidden features",
        "max_L": "largest degree of the hidden features (hidden irreps num_channels x (0e + 1o + ... ))",
        "correlation": "body order minus one of the many-body block",
        "num_interactions": "message-passing layers",
        "num_radial_basis": "Bessel functions of the radial basis",
        "num_cutoff_basis": "power p of the polynomial cutoff",
        "radial_mlp": "hidden widths of the radial network, e.g. '[64, 64, 64]' (MACE's spelling --radial_MLP)",
        "readout_hidden": "width of the last interaction's nonlinear readout (MACE's --MLP_irreps 'Nx0e')",
        "conv_blocks": "convolution: 'gaunt' (Gaunt products) or 'e3nn' (MACE's per-path Clebsch-Gordan convolution)",
        "radial_per_input": "Gaunt convolution: one radial weight per input irrep as well",
        "num_products": "Gaunt many-body block: products summed per block",
        "product_blocks": "many-body block: 'gaunt' (Gaunt products) or 'symmetric' (MACE's function space)",
        "model": "'ScaleShiftMACE' (site energies shifted by the training set's mean interaction energy per atom) or "
                 "'MACE' (mace-torch's default: no shift, and no self-connection in the first layer)",
        "scaling": "scale of the network's output (MACE's): 'rms_forces_scaling' (the training set's RMS force "
                   "component), 'std_scaling' (the deviation of its interaction energies per atom) or 'no_scaling' "
                   "(1)",
        "first_self_connection": "whether the first layer has an element-dependent self-connection like the later "
                                 "ones (default: true, false with --model MACE; MACE's spelling: --interaction_first)",
        "separate_paths": "with --conv_blocks e3nn, keep each path's messages apart for the next linear layer "
                          "(MACE's irreps_mid and parameter count)",
        "pair_repulsion": "add MACE's ZBL pair repulsion (screened Coulomb, cut off at the sum of covalent radii) to "
                          "the site energies: atoms kept apart where the training data has no close contacts",
        "distance_transform": "transform of the edge lengths the radial basis sees, by the atoms' covalent radii "
                              "(MACE's): 'None', 'Agnesi' or 'Soft'",
        "density_normalization": "divide each layer's messages by 1 + a learnt density of neighbours instead of the "
                                 "average number of neighbours (MACE's RealAgnosticDensity*InteractionBlock)",
    }),
    ("training", {
        "batch_size": "configurations per training step (the global batch under torchrun)",
        "valid_batch_size": "configurations per evaluation batch",
        "max_num_epochs": "epochs to train",
        "lr": "learning rate",
        "weight_decay": "weight decay of the optimiser",
        "amsgrad": "AMSGrad variant of Adam",
        "optimizer": "optimiser",
        "energy_weight": "weight of the energy term (per atom, squared) of the loss",
        "forces_weight": "weight of the forces term of the loss",
        "loss": "'weighted' (energies and forces), 'stress' (and stresses), 'virials' (and virials per atom), "
                "'huber' (energies, forces and, where labelled, stresses through Huber's function) or 'universal' "
                "('huber' with the forces' delta times 0.7, 0.4, 0.1 where the reference force is from 100, 200, 300 "
                "eV/A on)",
        "stress_weight": "weight of the stress term with --loss stress, huber or universal",
        "virials_weight": "weight of the virials term with --loss virials",
        "huber_delta": "with --loss huber or universal: errors beyond it count linearly (eV per atom, eV/A, eV/A^3)",
        "swa": "MACE's stage two: other loss weights and learning rate for the last epochs",
        "start_swa": "epochs before stage two starts (default: three quarters of --max_num_epochs)",
        "swa_lr": "learning rate in stage two",
        "swa_energy_weight": "energy weight in stage two",
        "swa_forces_weight": "forces weight in stage two",
        "swa_stress_weight": "stress weight in stage two",
        "swa_virials_weight": "virials weight in stage two",
        "scheduler": "learning-rate schedule before stage two: 'ReduceLROnPlateau' (falls by --lr_factor when the "
                     "validation loss stops improving) or 'ExponentialLR' (times --lr_scheduler_gamma every epoch)",
        "scheduler_patience": "evaluations without a better validation loss before the learning rate falls",
        "lr_factor": "factor of each learning-rate fall",
        "lr_scheduler_gamma": "factor of the learning rate after every epoch with --scheduler ExponentialLR",
        "patience": "evaluations without a better validation loss before training stops (or stage two starts)",
        "clip_grad": "largest gradient norm (0 or None: no clipping)",
        "ema": "evaluate and export an exponential moving average of the weights",
        "ema_decay": "decay of that average, reached as in MACE (torch_ema): min(decay, (1 + n) / (10 + n)) at the "
                     "n-th update",
        "eval_interval": "epochs between evaluations on the validation set",
        "error_table": "errors in each evaluation's log line: energy per atom (PerAtom*) or per configuration "
                       "(Total*) and force RMSE or MAE (metrics.csv and the final tables hold them all)",
        "max_time_minutes": "stop after the epoch that crosses this much training time (counted from the start "
                            "of this command, also when it restarts a run)",
    }),
    ("run", {
        "name": "run name: the run folder and the model file's stem",
        "work_dir": "folder that holds the run folder",
        "device": "torch device: cpu, cuda, cuda:1, ...",
        "cuda_graph": "on a GPU, capture each training step (forward, loss, backward) once as a CUDA graph and "
                      "replay it, batches padded to one size: far fewer kernel launches (one process)",
        "default_dtype": "precision of the model and the training",
        "seed": "seed of the split, the initial weights and the batch order",
        "restart_latest": "resume from the run folder's latest checkpoint",
        "keep_checkpoints": "keep the checkpoint of every evaluated epoch, not only the last two",
        "plots": "write the learning curve and parity plots (PNG)",
    }),
]  # fmt: skip


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """Parse flags (and the YAML file named by ``--config``) into a :class:`TrainConfig`."""
    args = vars(build_parser().parse_args(argv))
    values: dict = {}
    explicit_first = "first_self_connection" in args  # not implied by MACE's --interaction_first
    blocks: dict[str, str] = {}  # MACE's interaction_first and interaction, as given (the flags over the file)
    config_path = args.pop("config")
    if config_path:
        import yaml

        path = Path(config_path)
        if not path.is_file():
            raise InputError(f"{path}: no such config file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise InputError(f"{path}: expected a mapping of options, got {type(loaded).__name__}")
        names = {alias: name for name, alias in ALIASES.items()}  # MACE's stage_two names, as on the command line
        doubled = sorted(alias for alias, name in names.items() if alias in loaded and name in loaded)
        if doubled:
            raise InputError(f"{path}: {doubled} given under both of their names")
        loaded = {names.get(key, key): value for key, value in loaded.items()}
        known = {f.name for f in dataclasses.fields(TrainConfig)} | set(MACE_SPELLINGS)
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise InputError(f"{path}: unknown options {unknown}")
        explicit_first = explicit_first or "first_self_connection" in loaded
        blocks.update(translate_mace_spellings(loaded))
        values.update(loaded)
    blocks.update(translate_mace_spellings(args))  # each source on its own: flags override the file's hidden_irreps too
    values.update(args)  # only the flags given (the others are absent: argparse.SUPPRESS)
    if "train_file" not in values:
        raise InputError("--train_file is required (on the command line or in the --config file)")
    if values.get("model") == "MACE" and values.get("first_self_connection") and not explicit_first:  # as mace-torch
        logging.getLogger("gaunt_tp.train").warning(
            "--model MACE: the first layer has no self-connection (mace-torch's --model MACE builds its first block "
            "as %s whatever --interaction_first says); --model ScaleShiftMACE keeps it",
            PLAIN_BLOCK,
        )
        values["first_self_connection"] = False
    config = TrainConfig(**values)
    check_mace_blocks(blocks, config.model)
    torch_device(config.device)  # usable here: checked before the run folder is made
    return config
