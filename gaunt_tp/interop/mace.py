"""mace-torch models as gaunt-tp models: the same function, MACE's blocks in gaunt-tp's kernels.

A trained mace-torch ``MACE`` or ``ScaleShiftMACE`` (RealAgnostic interaction blocks, Bessel radial basis, SiLU,
with or without the ZBL pair repulsion and a distance transform; one head, or one head of several) becomes a
:class:`gaunt_tp.nn.GauntMACE` with ``conv_blocks="e3nn"``, ``product_blocks="symmetric"`` and
``separate_paths=True``, MACE's own blocks, whose weights map onto mace-torch's tensor by tensor (the constants of the
ZBL repulsion and of the distance transforms too):

- the linear maps, radial networks, self-connections (``skip_tp``) and readouts are the same parametrisations (e3nn's
  ``Linear``, ``FullyConnectedNet`` and ``FullyConnectedTensorProduct``): copied as they are;
- the SiLU of the radial networks and of the readout is normalised with the constant the model carries (e3nn's
  Monte Carlo estimate, :attr:`gaunt_tp.nn.ModelConfig.silu_scale`);
- the many-body weights are per coupling chain in both, but made symmetric the chains are not the same one for one
  (mace-torch's generalised Clebsch-Gordan tensors ``U`` against gaunt-tp's couplings: another order, and a sign
  that can differ where a coupling is parity-odd, which gaunt-tp fixes its own way). Each of mace-torch's chains is
  written in gaunt-tp's polynomial basis from its ``U`` tensor (kept in the state dict) and the weights are carried
  over through that basis: exact, as both span the same polynomials.

:func:`model_from_mace` works on the state dict and a few options, with plain tensors (no mace-torch needed);
:func:`read_mace_model` reads them from a mace-torch model file, which needs mace-torch (its pickled classes). What
gaunt-tp does not compute is refused by name, in the state dict (unsorted elements, a correlation per layer, one
readout, all hidden irreps kept in the last layer) or in the model file (``apply_cutoff``, ``use_so3``, another
``gate``, hidden irreps of other parities, a neighbour count per layer).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from gaunt_tp.errors import InputError
from gaunt_tp.math.symmetric_powers import equivariant_polynomials, monomials, symmetriser
from gaunt_tp.nn.model import GauntMACE, ModelConfig
from gaunt_tp.training.mace_options import BLOCKS, hidden_irreps_shape

__all__ = ["HEADS_OPTION", "MACE_OPTIONS", "model_from_mace", "read_mace_model"]

# what a mace-torch model holds outside its state dict, as read_mace_model returns it
MACE_OPTIONS = {
    "model": "class name: 'MACE' or 'ScaleShiftMACE'",
    "interaction_first": "class of the first interaction block",
    "interaction": "class of the other interaction blocks",
    "max_ell": "largest degree of the edge harmonics",
    "avg_num_neighbors": "the messages' normalisation",
    "silu_scale": "the factor on SiLU in its radial networks and readout (e3nn's normalize2mom constant)",
}
# optional: the names of a model's heads (mace-torch's ``model.heads``), by which a head is chosen
HEADS_OPTION = "heads"
# buffers of mace-torch that gaunt-tp computes itself (the radial basis's constants, e3nn's masks and coupling tables)
_RECOMPUTED = ("bessel_fn.r_max", "bessel_fn.prefactor", "_zeroed", "output_mask", "._w3j_")


def model_from_mace(
    state: Mapping[str, torch.Tensor], options: Mapping[str, object], head: str | None = None
) -> GauntMACE:
    """The GauntMACE (float64) that computes the mace-torch model with state dict ``state`` and
    :data:`MACE_OPTIONS` ``options``; an InputError names what gaunt-tp does not have (other blocks, other
    radial bases, ...). Sizes are read from the state dict's tensors.

    A model of several heads (mace-torch's multi-head fine-tuning; ``options[HEADS_OPTION]`` names them) becomes the
    model of one, ``head``: its E0s, scale, shift and readout weights; everything else is shared by the heads."""
    missing = sorted(set(MACE_OPTIONS) - set(options))
    if missing:
        raise InputError(f"mace-torch model options missing: {missing}")
    if options["model"] not in ("MACE", "ScaleShiftMACE"):
        raise InputError(f"mace-torch model {options['model']!r}: gaunt-tp reads MACE and ScaleShiftMACE")
    for key in ("interaction_first", "interaction"):
        if options[key] not in BLOCKS or (key == "interaction" and not BLOCKS[options[key]][0]):
            raise InputError(f"mace-torch {key} block {options[key]!r}: gaunt-tp has {', '.join(BLOCKS)} (the ones "
                             "without 'Residual' first only)")  # fmt: skip
    if BLOCKS[options["interaction_first"]][1] != BLOCKS[options["interaction"]][1]:
        raise InputError("this mace-torch model normalises the messages of some layers by a density of neighbours and "
                         "of others by their average number: gaunt-tp has one of the two for all")  # fmt: skip
    state = {k: v.detach().to("cpu", torch.float64) if v.is_floating_point() else v for k, v in state.items()}
    try:
        index, count = _head(state, options, head)
        config = _config(state, options, index, count)
        model = GauntMACE(config).to(torch.float64)
        ours, used = _weights(state, config, model, index, count)
    except KeyError as err:
        raise InputError(f"not the state dict of a mace-torch MACE model gaunt-tp reads: no {err}") from None
    unread = sorted(k for k in set(state) - used if state[k].numel() and not any(p in k for p in _RECOMPUTED))
    if unread:
        raise InputError(f"this mace-torch model has parts gaunt-tp does not: {unread[:6]}")
    model.load_state_dict(ours)
    return model


def read_mace_model(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """The state dict and :data:`MACE_OPTIONS` (and the heads' names) of the mace-torch model file ``path`` (a pickled
    model, as ``mace_run_train`` writes it; loading it runs mace-torch's code, so it needs mace-torch and a trusted
    file)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such mace-torch model file")
    try:
        import mace  # noqa: F401 (the pickled classes)
    except ImportError as err:
        raise InputError(f"{path}: reading a mace-torch model file needs mace-torch ({err})") from None
    if _is_torchscript(path):  # torch.load would hand it to the deprecated torch.jit.load, with warnings
        raise InputError(f"{path}: a TorchScript export (as mace_run_train's *_compiled.model): give the plain .model "
                         "file written beside it")  # fmt: skip
    model = torch.load(path, map_location="cpu", weights_only=False)
    options = _options_of(model, path)
    return dict(model.state_dict()), options


# mace-torch's model attributes with the one value gaunt-tp computes (their flags of mace_run_train)
_FIXED_ATTRIBUTES = {"apply_cutoff": True, "use_so3": False, "use_last_readout_only": False}


def _options_of(model: object, path: Path) -> dict[str, object]:
    """:data:`MACE_OPTIONS` (and the heads' names) of the mace-torch model ``model`` read from ``path``; an InputError
    names what it has that gaunt-tp's GauntMACE does not compute (and its state dict would not show)."""
    if not hasattr(model, "interactions") or not hasattr(model, "products"):
        raise InputError(f"{path}: not a mace-torch MACE model (a {type(model).__name__})")
    other = {k: getattr(model, k) for k, ours in _FIXED_ATTRIBUTES.items() if getattr(model, k, ours) != ours}
    if other:
        flags = ", ".join(f"--{k} {v}" for k, v in other.items())
        raise InputError(f"{path}: a mace-torch model built with {flags}: gaunt-tp computes the model of the defaults "
                         f"({', '.join(f'{k} {v}' for k, v in _FIXED_ATTRIBUTES.items())})")  # fmt: skip
    readout = getattr(model.readouts[-1], "non_linearity", None)
    gates = [getattr(act, "f", act) for act in getattr(readout, "acts", [None])]
    names = sorted({_function_name(f) for f in gates})
    if names != ["silu"]:  # e3nn wraps each activation in a normalize2mom holding the function as ``f``
        raise InputError(f"{path}: the readout's nonlinearity (mace_run_train's --gate) is {names}: gaunt-tp has "
                         "'silu' alone")  # fmt: skip
    acts = [m for m in model.modules() if type(m).__name__ == "normalize2mom"]
    constants = {float(m.cst) for m in acts}
    functions = sorted({_function_name(m.f) for m in acts})
    if len(constants) != 1 or functions != ["silu"]:
        raise InputError(f"{path}: expected SiLU with one normalisation in the model, found {functions} with "
                         f"{sorted(constants)}")  # fmt: skip
    hidden_irreps_shape(str(model.products[0].linear.irreps_out))  # an InputError for other hidden irreps
    first = {type(model.interactions[0]).__name__}
    later = {type(block).__name__ for block in model.interactions[1:]} or {"RealAgnosticResidualInteractionBlock"}
    if len(later) != 1:
        raise InputError(f"{path}: interaction blocks of several kinds after the first: {sorted(later)}")
    neighbours = sorted({float(block.avg_num_neighbors) for block in model.interactions})
    if len(neighbours) != 1:
        raise InputError(f"{path}: the layers normalise their messages by different average numbers of neighbours "
                         f"{neighbours}: gaunt-tp has one for all")  # fmt: skip
    options = {
        "model": type(model).__name__,
        "interaction_first": first.pop(),
        "interaction": later.pop(),
        "max_ell": int(model.spherical_harmonics._lmax),
        "avg_num_neighbors": neighbours[0],
        "silu_scale": constants.pop(),
    }
    if getattr(model, "heads", None) is not None:
        options[HEADS_OPTION] = [str(h) for h in model.heads]
    return options


def _function_name(f: object) -> str:
    """An activation's name as mace-torch's ``gate_dict`` holds it (``silu``, ``tanh``; ``NoneType`` for none)."""
    return getattr(f, "__name__", type(f).__name__)


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive: a zip file holding compiled code (``<root>/code/...``) and
    ``<root>/constants.pkl``, which ``torch.save``'s zip files do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:  # not a zip file, or a damaged one: torch.load says what it is
        return False
    return any(n.split("/", 1)[-1] == "constants.pkl" for n in names) and any("/code/" in n for n in names)


def _head(state: dict[str, torch.Tensor], options: Mapping[str, object], head: str | None) -> tuple[int, int]:
    """The index of ``head`` among the model's heads, and their number (the rows of its E0s)."""
    e0s = state["atomic_energies_fn.atomic_energies"]  # [elements], or [heads, elements] as mace_run_train saves it
    count = e0s.shape[0] if e0s.dim() == 2 else 1
    names = options.get(HEADS_OPTION)
    if e0s.dim() > 2 or (names is not None and len(names) != count):
        raise InputError(f"this mace-torch model's E0s {tuple(e0s.shape)} do not match its heads {names}")
    if head is None:
        if count > 1:
            named = f" {names}" if names else ""
            raise InputError(f"this mace-torch model has {count} heads{named}: choose one (--head)")
        return 0, 1
    if names is None or head not in names:
        raise InputError(f"no head {head!r} in this mace-torch model (its heads: {names})")
    return list(names).index(head), count


def _config(state: dict[str, torch.Tensor], options: Mapping[str, object], head: int, heads: int) -> ModelConfig:
    """The ModelConfig of head ``head`` of the mace-torch model (``heads`` of them), sizes from its tensors."""
    pair = any(k.startswith("pair_repulsion_fn.") for k in state)
    if pair and int(state["pair_repulsion_fn.p"]) != int(state["radial_embedding.cutoff_fn.p"]):
        raise InputError("this mace-torch model's pair repulsion has an envelope power other than its radial basis's")
    zs = [int(z) for z in state["atomic_numbers"].tolist()]
    if zs != sorted(set(zs)):  # the per-element rows would follow gaunt-tp's sorted table, not the model's
        raise InputError(f"this mace-torch model's atomic_numbers {zs} are not in increasing order, as mace_run_train "
                         "writes them: gaunt-tp converts such models only")  # fmt: skip
    e0s = state["atomic_energies_fn.atomic_energies"].reshape(heads, -1)[head]
    scale, shift = state.get("scale_shift.scale", torch.ones(heads)), state.get("scale_shift.shift", torch.zeros(heads))
    if scale.numel() != heads or shift.numel() != heads:
        raise InputError(f"this mace-torch model's scale {tuple(scale.shape)} and shift {tuple(shift.shape)} do not "
                         f"match its {heads} heads")  # fmt: skip
    scale, shift = scale.reshape(-1)[head], shift.reshape(-1)[head]
    num_layers = int(state["num_interactions"])
    if num_layers < 2:  # mace-torch's one layer keeps every hidden irrep and reads them out linearly
        raise InputError("this mace-torch model has one interaction layer: gaunt-tp converts two or more")
    c = state["node_embedding.linear.weight"].numel() // len(zs)
    widths = [state[f"interactions.0.conv_tp_weights.layer{k}.weight"].shape for k in range(_count(state, 0))]
    # the first many-body block's output map: one C x C matrix per hidden degree 0..max_L (scalars alone if it is last)
    max_l = state["products.0.linear.weight"].numel() // c**2 - 1
    if state["products.0.linear.weight"].numel() != (max_l + 1) * c**2:
        raise InputError(f"this mace-torch model's first many-body block maps to other hidden irreps than {c} channels "
                         "per degree 0..max_L")  # fmt: skip
    correlations = [
        1 + sum(1 for k in state if k.startswith(f"products.{i}.symmetric_contractions.contractions.0.weights."))
        for i in range(num_layers)
    ]
    if len(set(correlations)) != 1:
        raise InputError(f"this mace-torch model's correlation differs by layer {correlations}: gaunt-tp has one for "
                         "all layers")  # fmt: skip
    last = num_layers - 1
    if f"readouts.{last}.linear_2.weight" not in state and "readouts.0.linear_2.weight" in state:
        raise InputError("this mace-torch model reads out the last layer alone (mace_run_train's "
                         "--use_last_readout_only True): gaunt-tp reads out every layer")  # fmt: skip
    if state[f"products.{last}.linear.weight"].numel() != c**2:
        raise InputError("this mace-torch model keeps all hidden irreps in its last layer (mace_run_train's "
                         "--keep_last_layer_irreps True): gaunt-tp's last layer has the scalars alone")  # fmt: skip
    return ModelConfig(
        atomic_numbers=tuple(zs), e0s=tuple(float(e) for e in e0s), r_max=float(state["r_max"]),
        max_ell=int(options["max_ell"]), num_channels=c, max_L=max_l, correlation=correlations[0],
        num_interactions=num_layers, num_radial_basis=int(widths[0][0]),
        num_cutoff_basis=int(state["radial_embedding.cutoff_fn.p"]), radial_mlp=tuple(int(w[1]) for w in widths[:-1]),
        avg_num_neighbors=float(options["avg_num_neighbors"]), energy_shift=float(shift), energy_scale=float(scale),
        readout_hidden=state[f"readouts.{num_layers - 1}.linear_2.weight"].numel() // heads**2, conv_blocks="e3nn",
        product_blocks="symmetric", separate_paths=True, silu_scale=float(options["silu_scale"]),
        first_self_connection=BLOCKS[options["interaction_first"]][0], pair_repulsion=pair,
        density_normalization=BLOCKS[options["interaction"]][1],
        distance_transform=_distance_transform(state),
    )  # fmt: skip


# mace-torch's distance transforms by the buffers they hold, and those buffers in gaunt-tp's order of constants
_TRANSFORM_CONSTANTS = {"Agnesi": ("a", "q", "p"), "Soft": ("alpha",)}
_TRANSFORM_PREFIX = "radial_embedding.distance_transform."


def _distance_transform(state: dict[str, torch.Tensor]) -> str:
    """The name of the model's distance transform ('None' without one)."""
    held = {k.removeprefix(_TRANSFORM_PREFIX) for k in state if k.startswith(_TRANSFORM_PREFIX)}
    if not held:
        return "None"
    for name, constants in _TRANSFORM_CONSTANTS.items():
        if held == {*constants, "covalent_radii"}:
            return name
    raise InputError(f"this mace-torch model has a distance transform gaunt-tp does not know (buffers {sorted(held)})")


def _count(state: dict[str, torch.Tensor], layer: int) -> int:
    return sum(1 for k in state if k.startswith(f"interactions.{layer}.conv_tp_weights.layer"))


def _weights(
    state: dict[str, torch.Tensor], config: ModelConfig, model: GauntMACE, head: int, heads: int
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """GauntMACE's state dict with mace-torch's weights (the readouts' of head ``head`` of ``heads``), and the keys of
    ``state`` it read; a shape mismatch is an InputError."""
    ours = dict(model.state_dict())
    bessel = state.get("radial_embedding.bessel_fn.bessel_weights")
    if bessel is None or not torch.allclose(bessel, ours["bessel.frequencies"], rtol=1e-6, atol=0):
        raise InputError("this mace-torch model has no Bessel radial basis of frequencies n pi / r_max (another "
                         "radial_type, or trained frequencies): gaunt-tp has that basis alone")  # fmt: skip
    copy = {"embedding.weight": "node_embedding.linear.weight"}
    source = dict(state)  # with the readouts' weights of the one head in place of all heads'
    if config.pair_repulsion:  # ZBL's constants as the model holds them (in its dtype's rounding)
        prefix = "pair_repulsion_fn."
        ours["pair_repulsion.coefficients"] = state[prefix + "c"]
        ours["pair_repulsion.radii"] = state[prefix + "covalent_radii"][list(config.atomic_numbers)]
        ours["pair_repulsion.screening"] = torch.stack([state[prefix + "a_prefactor"], state[prefix + "a_exp"]])
    # read into the config or checked
    used = {"atomic_numbers", "r_max", "num_interactions", "atomic_energies_fn.atomic_energies", "scale_shift.scale",
            "scale_shift.shift", "radial_embedding.cutoff_fn.p", "radial_embedding.cutoff_fn.r_max",
            "radial_embedding.bessel_fn.bessel_weights"}  # fmt: skip
    used.update(k for k in state if k.startswith(("pair_repulsion_fn.", _TRANSFORM_PREFIX)))
    if config.distance_transform != "None":  # its constants as the model holds them
        names = _TRANSFORM_CONSTANTS[config.distance_transform]
        ours["distance_transform.constants"] = torch.stack([state[_TRANSFORM_PREFIX + n] for n in names])
        ours["distance_transform.radii"] = state[_TRANSFORM_PREFIX + "covalent_radii"][list(config.atomic_numbers)]
    for i in range(config.num_interactions):
        src, dst = f"interactions.{i}.", f"layers.{i}."
        copy[dst + "linear_up.weight"] = src + "linear_up.weight"
        for k in range(_count(state, i)):
            copy[dst + f"radial.weights.{k}"] = src + f"conv_tp_weights.layer{k}.weight"
        copy[dst + "linear_a.weight"] = src + "linear.weight"
        if config.density_normalization:
            copy[dst + "density.weights.0"] = src + "density_fn.layer0.weight"
        # skip_tp: the self-connection of a residual block; the per-element map of the messages of the plain one
        copy[dst + ("skip.weight" if dst + "skip.weight" in ours else "element_mix.weight")] = src + "skip_tp.weight"
        copy[dst + "linear_out.weight"] = f"products.{i}.linear.weight"
        last = i == config.num_interactions - 1
        if last:
            width, first, second = (
                config.readout_hidden,
                f"readouts.{i}.linear_1.weight",
                f"readouts.{i}.linear_2.weight",
            )
            copy[dst + "readout.0.weight"], copy[dst + "readout.2.weight"] = first, second
            source[first] = _one_head(state[first], first, heads, head, width)
            # the second map: from the heads' hidden units (each head reads its own) to one output per head; e3nn
            # divides by the square root of the number of inputs, heads * width there and width here
            if state[second].numel() != heads * width * heads:
                raise InputError(
                    f"mace-torch {second}: {state[second].numel()} weights, not {heads} heads' {width} x 1"
                )
            source[second] = state[second].reshape(heads, width, heads)[head, :, head] / heads**0.5
        else:
            key = copy[dst + "readout.weight"] = f"readouts.{i}.linear.weight"
            source[key] = _one_head(state[key], key, heads, head, 1)
        prefix = f"products.{i}.symmetric_contractions."
        ours[dst + "product.chain_weights"] = _chain_weights(state, prefix, model, i)
        used.update(k for k in state if k.startswith(prefix))
    for name, key in copy.items():
        if key not in source or source[key].shape != ours[name].shape:
            found = tuple(source[key].shape) if key in source else "nothing"
            raise InputError(f"mace-torch {key}: expected shape {tuple(ours[name].shape)}, found {found}")
        ours[name] = source[key]
        used.add(key)
    return ours, used


def _one_head(weight: torch.Tensor, key: str, heads: int, head: int, width: int) -> torch.Tensor:
    """Head ``head``'s columns of a map to the outputs of ``heads`` heads, each ``width`` wide, head after head
    (mace-torch's readouts): e3nn's flat ``[inputs * heads * width]`` (rows of the inputs) -> ``[inputs * width]``."""
    if weight.numel() % (heads * width):
        raise InputError(f"mace-torch {key}: {weight.numel()} weights do not split into {heads} heads of {width}")
    return weight.reshape(-1, heads, width)[:, head].reshape(-1)


def _chain_weights(state: dict[str, torch.Tensor], prefix: str, model: GauntMACE, layer: int) -> torch.Tensor:
    """gaunt-tp's chain weights ``[elements, chains, C]`` of one many-body block giving mace-torch's polynomials:
    per output irrep and degree nu, mace-torch's chains (its ``U_matrix_nu``, ``[2L+1,] n, ..., n, K``) are written
    in the block's path polynomials, its weights carried onto the paths, and gaunt-tp's chain weights solved for
    those path weights (exact, as both sets of chains span the same polynomials)."""
    block = model.layers[layer].product
    degrees = [ir.l for _, ir in block.irreps_in]
    n = sum(2 * l + 1 for l in degrees)
    ours_chains = block.tables.get(torch.float64, torch.device("cpu"))["chains"]  # [paths, our chains]
    path_weights = torch.zeros(block.num_elements, block.num_paths, block.channels, dtype=torch.float64)
    path = 0
    for i, (_, ir) in enumerate(block.irreps_out):
        for nu in range(1, block.correlation + 1):
            basis = equivariant_polynomials(degrees, ir.l, nu) * (2 * ir.l + 1) ** 0.5  # the block's paths
            if basis.shape[0] == 0:
                continue
            u = state[f"{prefix}contractions.{i}.U_matrix_{nu}"]
            weights = _mace_weights(state, f"{prefix}contractions.{i}.", nu, block.correlation)
            if ir.l == 0:
                u = u.unsqueeze(0)
            chains = _symmetrised(u.movedim(-1, 0).reshape(u.shape[-1], 2 * ir.l + 1, -1), n, nu)  # [K, 2L+1, m]
            fit = torch.linalg.lstsq(basis.flatten(1).T, chains.flatten(1).T).solution  # [P, K]
            residual = (basis.flatten(1).T @ fit - chains.flatten(1).T).abs().max()
            if residual > 1e-9 * max(1.0, float(chains.abs().max())):
                raise InputError(f"mace-torch's chains of degree {nu} to {ir} are not in gaunt-tp's basis")
            path_weights[:, path : path + basis.shape[0]] = torch.einsum("pk,ekc->epc", fit, weights)
            path += basis.shape[0]
    # the least-norm chain weights giving those path weights (the chains span every path: the rows are independent)
    wanted = path_weights.transpose(0, 1).flatten(1)  # [paths, elements * C]
    solution = ours_chains.T @ torch.linalg.solve(ours_chains @ ours_chains.T, wanted)
    if (ours_chains @ solution - wanted).abs().max() > 1e-9 * max(1.0, float(wanted.abs().max())):
        raise InputError(f"mace-torch's many-body weights of layer {layer} do not map onto gaunt-tp's chains")
    return solution.unflatten(1, (block.num_elements, block.channels)).transpose(0, 1).contiguous()


def _mace_weights(state: dict[str, torch.Tensor], prefix: str, nu: int, correlation: int) -> torch.Tensor:
    """mace-torch's weights ``[elements, K, C]`` of degree ``nu`` (``weights_max`` for the correlation, then
    ``weights.0`` for one less, ...)."""
    key = prefix + ("weights_max" if nu == correlation else f"weights.{correlation - 1 - nu}")
    return state[key]


def _symmetrised(tensor: torch.Tensor, n: int, nu: int) -> torch.Tensor:
    """``[K, M, n^nu]`` full coupling tensors as coefficients over :func:`monomials` ``(n, nu)`` ``[K, M, count]``
    (the polynomial each defines on one vector)."""
    count = len(monomials(n, nu))
    return tensor.new_zeros(*tensor.shape[:2], count).index_add_(2, symmetriser(n, nu), tensor)
