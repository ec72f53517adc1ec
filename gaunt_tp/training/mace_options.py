"""MACE's spellings of gaunt-tp's options: second flag names, and MACE options translated into fields or checked
and dropped (``hidden_irreps``, ``MLP_irreps``, ``interaction_first``, ``gate``, ...)."""

from __future__ import annotations

import logging
import os

from gaunt_tp.errors import InputError
from gaunt_tp.training.option_values import typed

__all__ = ["ALIASES", "BLOCKS", "MACE_BOOLEANS", "MACE_MODELS", "MACE_SPELLINGS", "PLAIN_BLOCK", "RESIDUAL_BLOCK",
           "check_mace_blocks", "hidden_irreps_shape", "translate_mace_spellings"]  # fmt: skip

# MACE's model names (TrainConfig.model): both scale by the RMS force; "ScaleShiftMACE" shifts by the training set's
# mean interaction energy per atom, "MACE" (mace-torch's default) does not and, in mace-torch 0.3.16, builds its first
# interaction block without a self-connection whatever --interaction_first says
MACE_MODELS = ("ScaleShiftMACE", "MACE")

# MACE's names of the interaction blocks gaunt-tp's layers are: with an element-dependent self-connection (every layer
# by default) and without (the first layer with first_self_connection false)
RESIDUAL_BLOCK = "RealAgnosticResidualInteractionBlock"
PLAIN_BLOCK = "RealAgnosticInteractionBlock"
# each block as (first_self_connection, density_normalization): MACE's --interaction_first and --interaction, the
# blocks of a mace-torch model (those without a self-connection come first only)
BLOCKS = {
    RESIDUAL_BLOCK: (True, False),
    PLAIN_BLOCK: (False, False),
    "RealAgnosticDensityResidualInteractionBlock": (True, True),
    "RealAgnosticDensityInteractionBlock": (False, True),
}

# second flag names, as in MACE's command line (which renamed "SWA" to "stage two")
ALIASES = {
    "swa": "stage_two",
    "start_swa": "start_stage_two",
    "swa_lr": "stage_two_lr",
    "swa_energy_weight": "stage_two_energy_weight",
    "swa_forces_weight": "stage_two_forces_weight",
    "swa_stress_weight": "stage_two_stress_weight",
    "swa_virials_weight": "stage_two_virials_weight",
    "radial_mlp": "radial_MLP",
}

# MACE's options that are not fields: translated into fields (hidden_irreps), or checked and dropped (model, save_cpu)
MACE_SPELLINGS = {
    "hidden_irreps": "MACE's form of --num_channels and --max_L: 'C x 0e + C x 1o + ... + C x (max_L)', e.g. "
                     "'128x0e + 128x1o'",
    "save_cpu": "accepted for MACE's command lines: the exported model always loads on a CPU",
    "MLP_irreps": "MACE's form of --readout_hidden: 'N x 0e'",
    "gate": "MACE's readout nonlinearity: 'silu', the one gaunt-tp has",
    "radial_type": "MACE's radial basis: 'bessel', the one gaunt-tp has",
    "interaction": f"MACE's interaction block after the first: '{RESIDUAL_BLOCK}' (an element-dependent "
                   "self-connection added to each layer's many-body features) or "
                   "'RealAgnosticDensityResidualInteractionBlock' (the same, --density_normalization true)",
    "interaction_first": f"MACE's first interaction block: '{RESIDUAL_BLOCK}' (--first_self_connection true) or "
                         f"'{PLAIN_BLOCK}' (false), or their density versions 'RealAgnosticDensityResidualInteraction"
                         "Block' and 'RealAgnosticDensityInteractionBlock' (--density_normalization true)",
    "compute_avg_num_neighbors": "accepted as true (MACE's default): the average is always taken from the training set",
    "enable_cueq": "accepted as false: gaunt-tp runs its own C kernels on CPUs and PyTorch on GPUs, not cuEquivariance",
    "distributed": "accepted for MACE's command lines: data-parallel training follows from torchrun's environment "
                   "(torchrun --nproc_per_node N -m gaunt_tp.training.cli train ...); --batch_size is then the global "
                   "batch (mace-torch's is each process's)",
    "num_workers": "accepted for MACE's command lines: graphs are built once and kept in memory, no loader workers",
    "pin_memory": "accepted for MACE's command lines (no data loader)",
}  # fmt: skip

# MACE's spellings that are checked and dropped: the values gaunt-tp's one model has (None: any value of the type)
MACE_FIXED = {"save_cpu": None, "gate": "silu", "radial_type": "bessel",
              "compute_avg_num_neighbors": True, "enable_cueq": False, "distributed": None, "num_workers": None,
              "pin_memory": None}  # fmt: skip
MACE_BOOLEANS = {"save_cpu", "compute_avg_num_neighbors", "enable_cueq", "distributed", "pin_memory"}


def hidden_irreps_shape(text: str) -> tuple[int, int]:
    """``(num_channels, max_L)`` of MACE's ``hidden_irreps``: one multiplicity over the degrees 0..max_L with
    natural parity (``"128x0e + 128x1o"`` is (128, 1)); anything else is an InputError."""
    from e3nn import o3

    try:
        irreps = o3.Irreps(text).sort().irreps.simplify()
    except (ValueError, AssertionError) as err:
        raise InputError(f"hidden_irreps {text!r} is not an irreps string ({err})") from None
    wanted = [(irreps[0].mul, (l, (-1) ** l)) for l in range(len(irreps))] if len(irreps) else None
    if not irreps or [(mul, (ir.l, ir.p)) for mul, ir in irreps] != wanted:
        raise InputError(
            f"hidden_irreps {text!r}: gaunt-tp's hidden features are one number of channels over the degrees "
            "0..max_L of natural parity, e.g. '128x0e + 128x1o + 128x2e'"
        )
    return irreps[0].mul, irreps[-1].ir.l


def translate_mace_spellings(values: dict) -> dict[str, str]:
    """Turn MACE's ``hidden_irreps`` into ``num_channels`` and ``max_L``, ``MLP_irreps`` into ``readout_hidden``,
    ``interaction_first`` into ``first_self_connection`` and ``density_normalization``, and ``interaction`` into
    ``density_normalization`` (an error where those are also given and differ), check the options of ``MACE_FIXED``
    and drop them, in place. Returns the interaction blocks given (``{"interaction_first": ..., ...}``), for
    :func:`check_mace_blocks` once every source of options is read."""
    for name, fixed in MACE_FIXED.items():  # checked, as a YAML file may hold anything, and dropped
        if name not in values:
            continue
        kind = "bool" if name in MACE_BOOLEANS else "int" if name == "num_workers" else "str"
        value = typed(name, kind, values.pop(name))
        if fixed is not None and value != fixed:
            raise InputError(f"{name} {value!r}: gaunt-tp has {fixed!r} alone ({MACE_SPELLINGS[name]})")
        if name == "distributed" and value and "WORLD_SIZE" not in os.environ:
            raise InputError("--distributed: start the processes with torchrun (torchrun --nproc_per_node N -m "
                             "gaunt_tp.training.cli train ...); each process reads its rank from torchrun")  # fmt: skip
        if name == "distributed" and value:
            logging.getLogger("gaunt_tp.train").warning(
                "--distributed: gaunt-tp's --batch_size is the global batch, split between the %s processes; "
                "mace-torch's is each process's (pass %s times mace-torch's for the same training)",
                os.environ["WORLD_SIZE"],
                os.environ["WORLD_SIZE"],
            )
    mlp = values.pop("MLP_irreps", None)
    if mlp is not None:
        _translate(values, "MLP_irreps", str(mlp), {"readout_hidden": _scalar_width(str(mlp))})
    blocks = {}
    for name in ("interaction_first", "interaction"):
        block = values.pop(name, None)
        if block is None:
            continue
        blocks[name] = str(block)
        allowed = [b for b, (connected, _) in BLOCKS.items() if name == "interaction_first" or connected]
        if block not in allowed:
            raise InputError(f"{name} must be {' or '.join(map(repr, allowed))}, got {block!r}")
        connected, density = BLOCKS[block]
        implied = {"density_normalization": density}
        if name == "interaction_first":
            implied["first_self_connection"] = connected
        _translate(values, name, str(block), implied)
    text = values.pop("hidden_irreps", None)
    if text is not None:
        _translate(
            values, "hidden_irreps", str(text), dict(zip(("num_channels", "max_L"), hidden_irreps_shape(str(text))))
        )
    return blocks


def check_mace_blocks(blocks: dict[str, str], model: str) -> None:
    """An InputError where MACE's ``interaction_first`` and ``interaction`` (``blocks``, those given, after
    :func:`translate_mace_spellings` checked them) make mace-torch 0.3.16 normalise the messages of the first layer
    one way and of the others the other way: gaunt-tp's ``density_normalization`` is one for all layers. mace-torch
    takes RESIDUAL_BLOCK for a block not given, and under ``--model MACE`` a first block with a self-connection is
    its PLAIN_BLOCK (no density normalisation)."""
    if not blocks:
        return
    first, later = blocks.get("interaction_first", RESIDUAL_BLOCK), blocks.get("interaction", RESIDUAL_BLOCK)
    built_first = PLAIN_BLOCK if model == "MACE" and BLOCKS[first][0] else first
    if BLOCKS[built_first][1] != BLOCKS[later][1]:
        given = ", ".join(f"--{name} {block}" for name, block in blocks.items())
        raise InputError(
            f"{given} (with --model {model}): mace-torch would build the first layer as {built_first} and the others "
            f"as {later}, normalising the messages of only {'the first' if BLOCKS[built_first][1] else 'the others'} "
            "by a density of neighbours; gaunt-tp normalises all layers one way: give both blocks with or both "
            "without 'Density' (under --model MACE the first as RealAgnosticDensityInteractionBlock)"
        )


def _translate(values: dict, spelling: str, text: str, implied: dict) -> None:
    """``values`` updated with the fields ``implied`` by MACE's option ``spelling`` (its value ``text``); an error
    where a field is also given with another value."""
    for name, value in implied.items():
        if name in values and str(values[name]) != str(value) and values[name] != value:
            raise InputError(f"{spelling} {text!r} has {name} {value}, but {name} is {values[name]}")
        values[name] = value


def _scalar_width(text: str) -> int:
    """N of MACE's ``MLP_irreps`` ``'N x 0e'`` (its readout's hidden scalars); anything else is an InputError."""
    from e3nn import o3

    try:
        irreps = o3.Irreps(text).simplify()
    except (ValueError, AssertionError) as err:
        raise InputError(f"MLP_irreps {text!r} is not an irreps string ({err})") from None
    if len(irreps) != 1 or irreps[0].ir != o3.Irrep("0e"):
        raise InputError(f"MLP_irreps {text!r}: gaunt-tp's readout has hidden scalars alone, e.g. '16x0e'")
    return irreps[0].mul
