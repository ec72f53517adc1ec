"""A MACE-class interatomic potential on Gaunt operations.

Per layer (as in MACE, arXiv 2206.07697): node features are mixed channel-wise, convolved
with the edge harmonics weighted by a radial MLP (:class:`gaunt_tp.ops.GauntConvolution`, each
output degree scaled so that one edge's message has unit second moment for unit inputs, as
e3nn's normalised products give MACE, then divided by the average number of neighbours, or optionally by 1 + a
learnt density of them),
combined into many-body features with element-dependent weights
(:class:`gaunt_tp.nn.GauntManyBody`), mixed again and added to an element-dependent
self-connection (optionally not in the first layer, as in mace-torch's ``--model MACE``, which maps the convolution's
output per element there instead). Each layer's scalars are read out to site energies (optionally with a ZBL
repulsion of close atoms added, :mod:`gaunt_tp.nn.repulsion`); the total energy is their sum plus the isolated-atom
energies E0. The radial basis may see the lengths through one of MACE's transforms
(:mod:`gaunt_tp.nn.distance_transform`). Forces are minus the gradient of the energy with respect to the positions;
the stress is the derivative with respect to a homogeneous strain, divided by the cell volume.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.data.configuration import MIN_CELL_VOLUME
from gaunt_tp.data.graph import GraphBatch, cell_volumes
from gaunt_tp.errors import InputError
from gaunt_tp.nn.activation import NormalizedSiLU
from gaunt_tp.nn.cg_blocks import CGConvolution
from gaunt_tp.nn.distance_transform import DISTANCE_TRANSFORMS
from gaunt_tp.nn.feature_interaction import output_variance
from gaunt_tp.nn.linear import ElementLinear, EquivariantLinear, RowsLinear
from gaunt_tp.nn.many_body import GauntManyBody
from gaunt_tp.nn.radial import BesselBasis, PolynomialCutoff, RadialMLP
from gaunt_tp.nn.repulsion import ZBLRepulsion
from gaunt_tp.nn.symmetric_contraction import SymmetricContraction
from gaunt_tp.ops.checks import index_range
from gaunt_tp.ops.convolution import GauntConvolution, safe_unit_vectors

__all__ = ["CONV_BLOCKS", "PRODUCT_BLOCKS", "GauntMACE", "ModelConfig"]

CONV_BLOCKS = ("gaunt", "e3nn")  # ModelConfig.conv_blocks
PRODUCT_BLOCKS = ("gaunt", "symmetric")  # ModelConfig.product_blocks
# the largest count of monomials of degree correlation in the (max_ell + 1)^2 components of the messages that
# product_blocks="symmetric" takes: max_ell 4 and correlation 3 (2925) build in ~40 s; max_ell 3 and correlation 4
# (3876) took 6 minutes and 4.5 GB, max_ell 4 and correlation 4 (20475) would take 84 GB
MAX_SYMMETRIC_MONOMIALS = 3000


def _natural(lmax: int, mul: int) -> o3.Irreps:
    return o3.Irreps([(mul, (l, (-1) ** l)) for l in range(lmax + 1)])


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters, named like MACE's.

    Attributes:
        atomic_numbers: the elements the model knows, distinct (sorted, with their E0s, on construction).
        e0s: isolated-atom energies in eV, one per element of ``atomic_numbers``, in the same order.
        r_max: cutoff radius (Angstrom).
        max_ell: largest degree of the edge harmonics.
        num_channels: channels C of every hidden irrep.
        max_L: largest degree of the hidden node features (0: scalars only).
        correlation: body order of the many-body product.
        num_interactions: number of message-passing layers.
        num_radial_basis: Bessel functions.
        num_cutoff_basis: power p of the polynomial cutoff.
        radial_mlp: hidden widths of the radial MLP.
        avg_num_neighbors: normalisation of the convolution sum.
        energy_shift, energy_scale: site energy = E0 + shift + scale * (sum of readouts), as in
            MACE's ScaleShiftMACE (training sets them to the mean interaction energy per atom and
            the RMS force component of the training set).
        readout_hidden: width of the last layer's nonlinear readout.
        conv_blocks: ``"gaunt"`` (:class:`gaunt_tp.ops.GauntConvolution`) or ``"e3nn"`` (MACE's
            Clebsch-Gordan convolution with a radial weight per path, e3nn's function and normalisation,
            in gaunt-tp's coupled-form kernels on CPUs: :class:`gaunt_tp.nn.cg_blocks.CGConvolution`).
        radial_per_input: Gaunt convolutions with one radial weight per (input irrep, edge degree,
            channel) instead of per (edge degree, channel) (:class:`gaunt_tp.ops.GauntConvolution`);
            more freedom per edge at a cost that grows with the number of input degrees.
        num_products: products summed in each many-body block (:class:`gaunt_tp.nn.GauntManyBody`'s
            ``num_products``): a rank-K combination of many-body features instead of one product.
        product_blocks: ``"gaunt"`` (:class:`gaunt_tp.nn.GauntManyBody`) or ``"symmetric"`` (MACE's
            function space, every coupling path with a free weight, evaluated as sparse polynomials:
            :class:`gaunt_tp.nn.SymmetricContraction`; MACE's max_ell <= 3 and correlation <= 3, up to
            :data:`MAX_SYMMETRIC_MONOMIALS` monomials).
        separate_paths: with ``conv_blocks="e3nn"``, each Clebsch-Gordan path's messages are kept apart
            and mixed by the linear layer after the convolution, as MACE does (its ``irreps_mid``: MACE's
            parameter count); without, the paths to each output irrep are summed first (fewer parameters;
            keeping them apart cost up to 27% per whole-model step in docs/benchmark-log.md).
        first_self_connection: whether the first layer adds an element-dependent self-connection of its input to
            its many-body features, as every later layer does (MACE's ``RealAgnosticResidualInteractionBlock``);
            without (MACE's ``RealAgnosticInteractionBlock``, the first block of mace-torch's ``--model MACE``) an
            element-dependent linear map acts on the convolution's output before the many-body block instead.
        silu_scale: the factor on SiLU in the radial MLPs and the last readout, in place of the exact
            normalisation ``1 / sqrt(E[silu(z)^2])`` (None): e3nn's Monte Carlo estimate of it (1.67918 in e3nn
            0.4.4, 0.16% above the exact value) for weights trained in MACE (:mod:`gaunt_tp.interop.mace`).
        distance_transform: MACE's transform of the lengths the radial basis sees (``"None"``, ``"Agnesi"`` or
            ``"Soft"``: :mod:`gaunt_tp.nn.distance_transform`); the cutoff envelope takes the lengths themselves.
        density_normalization: each layer divides its messages by 1 plus a learnt density of neighbours (a sum over
            the atom's edges of ``tanh((w . radial features)^2)``) instead of by ``avg_num_neighbors``, which it
            ignores (MACE's ``RealAgnosticDensity*InteractionBlock``, as in MACE-MPA-0).
        pair_repulsion: add the ZBL repulsion of atoms closer than their covalent radii to the site energies before
            the scale (:class:`gaunt_tp.nn.repulsion.ZBLRepulsion`; mace-torch's ``--pair_repulsion``).
    """

    atomic_numbers: tuple[int, ...]
    e0s: tuple[float, ...]
    r_max: float = 5.0
    max_ell: int = 3
    num_channels: int = 64
    max_L: int = 1
    correlation: int = 3
    num_interactions: int = 2
    num_radial_basis: int = 8
    num_cutoff_basis: int = 5
    radial_mlp: tuple[int, ...] = (64, 64, 64)
    avg_num_neighbors: float = 1.0
    energy_shift: float = 0.0
    energy_scale: float = 1.0
    readout_hidden: int = 16
    conv_blocks: str = "gaunt"
    radial_per_input: bool = False
    num_products: int = 1
    product_blocks: str = "gaunt"
    separate_paths: bool = False
    first_self_connection: bool = True
    silu_scale: float | None = None
    pair_repulsion: bool = False
    distance_transform: str = "None"
    density_normalization: bool = False

    def __post_init__(self) -> None:
        if len(self.atomic_numbers) != len(self.e0s):
            raise InputError(f"need one E0 per element: {len(self.atomic_numbers)} elements, {len(self.e0s)} E0s")
        for z in self.atomic_numbers:
            if isinstance(z, bool) or not isinstance(z, numbers.Real) or z != int(z) or z < 1:
                raise InputError(f"atomic_numbers must be integers >= 1, got {self.atomic_numbers}")
        if not all(isinstance(e, numbers.Real) and math.isfinite(e) for e in self.e0s):
            raise InputError(f"e0s must be finite numbers, got {self.e0s}")
        # plain Python numbers in tuples (numpy integers or lists would not go to JSON or hash), sorted by element
        pairs = sorted((int(z), float(e)) for z, e in zip(self.atomic_numbers, self.e0s))
        set_field = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_field("atomic_numbers", tuple(z for z, _ in pairs))
        set_field("e0s", tuple(e for _, e in pairs))
        set_field("radial_mlp", tuple(int(w) for w in self.radial_mlp))
        for f in fields(self):
            if f.type in ("int", "float"):
                value, cast = getattr(self, f.name), int if f.type == "int" else float
                if isinstance(value, bool) or cast(value) != value:  # 2.5 channels: an error, not 2
                    raise InputError(f"{f.name} must be {'an integer' if cast is int else 'a number'}, got {value!r}")
                set_field(f.name, cast(value))
            elif f.type == "bool" and not isinstance(getattr(self, f.name), bool):  # the string "false" is truthy
                raise InputError(f"{f.name} must be true or false, got {getattr(self, f.name)!r}")
        if len(set(self.atomic_numbers)) != len(self.atomic_numbers):
            raise InputError(f"atomic_numbers must be distinct, got {self.atomic_numbers}")
        if self.silu_scale is not None:
            if isinstance(self.silu_scale, bool) or not 0 < float(self.silu_scale) < math.inf:
                raise InputError(f"silu_scale must be a number > 0 or None, got {self.silu_scale!r}")
            set_field("silu_scale", float(self.silu_scale))
        for name in ("max_ell", "num_channels", "correlation", "num_interactions", "num_radial_basis", "num_products",
                     "readout_hidden"):  # fmt: skip
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_cutoff_basis < 2:  # the polynomial envelope's power: p >= 2 for a smooth end at r_max
            raise InputError(f"num_cutoff_basis must be >= 2, got {self.num_cutoff_basis}")
        for name in ("r_max", "avg_num_neighbors", "energy_scale"):  # a divisor, a normaliser, a factor
            if not 0.0 < getattr(self, name) < math.inf:
                raise InputError(f"{name} must be a number > 0, got {getattr(self, name)}")
        if not math.isfinite(self.energy_shift):
            raise InputError(f"energy_shift must be a finite number, got {self.energy_shift}")
        if any(w < 1 for w in self.radial_mlp):
            raise InputError(f"radial_mlp widths must be >= 1, got {self.radial_mlp}")
        if self.conv_blocks not in CONV_BLOCKS:
            raise InputError(f"conv_blocks must be {' or '.join(map(repr, CONV_BLOCKS))}, got {self.conv_blocks!r}")
        if self.product_blocks not in PRODUCT_BLOCKS:
            raise InputError(
                f"product_blocks must be {' or '.join(map(repr, PRODUCT_BLOCKS))}, got {self.product_blocks!r}"
            )
        if self.num_products > 1 and self.product_blocks != "gaunt":
            raise InputError("num_products applies to the Gaunt many-body block (product_blocks='gaunt') only")
        if self.radial_per_input and self.conv_blocks != "gaunt":
            raise InputError("radial_per_input applies to the Gaunt convolution (conv_blocks='gaunt') only")
        if self.separate_paths and self.conv_blocks != "e3nn":
            raise InputError("separate_paths applies to the CG convolution (conv_blocks='e3nn') only")
        if self.distance_transform not in DISTANCE_TRANSFORMS:
            raise InputError(f"distance_transform must be {' or '.join(map(repr, DISTANCE_TRANSFORMS))}, got "
                             f"{self.distance_transform!r}")  # fmt: skip
        if self.max_L < 0 or self.max_L > self.max_ell:
            raise InputError(f"max_L must be in 0..max_ell={self.max_ell}, got {self.max_L}")
        monomials = math.comb((self.max_ell + 1) ** 2 + self.correlation - 1, self.correlation)
        if self.product_blocks == "symmetric" and monomials > MAX_SYMMETRIC_MONOMIALS:
            raise InputError(
                f"product_blocks 'symmetric' with max_ell {self.max_ell} and correlation {self.correlation}: "
                f"polynomials in {monomials} monomials, more than the {MAX_SYMMETRIC_MONOMIALS} its basis is built "
                "for in reasonable time and memory (MACE's max_ell 3, correlation 3: 816); use product_blocks 'gaunt'"
            )

    def optional_parts(self) -> list[str]:
        """The parts this model has beyond gaunt-tp's defaults, in words (for logs)."""
        return [text for text, present in (
            ("no self-connection in the first layer", not self.first_self_connection),
            ("ZBL pair repulsion", self.pair_repulsion),
            (f"{self.distance_transform} distance transform", self.distance_transform != "None"),
            ("messages over a learnt density of neighbours", self.density_normalization),
        ) if present]  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        return cls(**data)  # lists become tuples on construction


class _Layer(nn.Module):
    def __init__(
        self, config: ModelConfig, irreps_in: o3.Irreps, irreps_hidden: o3.Irreps, last: bool, self_connection: bool
    ) -> None:
        super().__init__()
        c, n_el = config.num_channels, len(config.atomic_numbers)
        irreps_sh = _natural(config.max_ell, 1)
        irreps_a = _natural(config.max_ell, c)
        # the CG convolution works in its kernels' rows layout, the linear maps around it read and write that;
        # the modules are made in this order so that a seed gives the same initial weights as before
        self.rows = config.conv_blocks == "e3nn"
        # messages are divided by the average number of neighbours, or by 1 + a learnt density of them (after linear_a)
        neighbours = 1.0 if config.density_normalization else config.avg_num_neighbors
        if self.rows:  # the CG blocks' messages have unit moments already: the convolution sum's 1 / avg_num_neighbors
            # applies to its input instead, folded into the weights of the map before it (the convolution is linear)
            self.linear_up = RowsLinear(irreps_in, irreps_in, rows="out", channels=c,
                                        output_scale=1.0 / neighbours)  # fmt: skip
            self.conv = CGConvolution(irreps_in, irreps_sh, irreps_a, separate_paths=config.separate_paths)
        else:
            self.linear_up = EquivariantLinear(irreps_in, irreps_in)
            self.conv = GauntConvolution(irreps_in, irreps_sh, irreps_a, radial_per_input=config.radial_per_input)
        self.radial = RadialMLP(config.num_radial_basis, config.radial_mlp, self.conv.weight_numel, config.silu_scale)
        self.density = RadialMLP(config.num_radial_basis, (), 1) if config.density_normalization else None
        if self.rows:
            self.linear_a = RowsLinear(self.conv.irreps_out.simplify(), irreps_a, rows="in", channels=c)
        else:
            self.linear_a = EquivariantLinear(self.conv.irreps_out.simplify(), irreps_a)
        # next to the CG convolution the symmetric block writes the rows layout, which the output linear map reads
        rows_out = self.rows and config.product_blocks == "symmetric"
        if config.product_blocks == "gaunt":
            self.product = GauntManyBody(
                irreps_a, irreps_hidden, correlation=config.correlation, num_elements=n_el,
                num_products=config.num_products,
            )  # fmt: skip
        else:
            self.product = SymmetricContraction(
                irreps_a, irreps_hidden, correlation=config.correlation, num_elements=n_el,
                out_layout="rows" if rows_out else "e3nn",
            )  # fmt: skip
        if rows_out:
            self.linear_out = RowsLinear(irreps_hidden, irreps_hidden, rows="in", channels=c)
        else:
            self.linear_out = EquivariantLinear(irreps_hidden, irreps_hidden)
        # MACE's residual block: a self-connection of the input; its plain block: an element-dependent map of the
        # convolution's output (its skip_tp) before the many-body block, and no self-connection
        self.skip = ElementLinear(irreps_in, n_el, irreps_hidden) if self_connection else None
        self.element_mix = None if self_connection else ElementLinear(irreps_a, n_el, irreps_a)
        scalars = o3.Irreps(f"{c}x0e")
        if last:
            self.readout = nn.Sequential(
                EquivariantLinear(scalars, o3.Irreps(f"{config.readout_hidden}x0e")),
                NormalizedSiLU(config.silu_scale),
                EquivariantLinear(o3.Irreps(f"{config.readout_hidden}x0e"), o3.Irreps("1x0e")),
            )
        else:
            self.readout = EquivariantLinear(scalars, o3.Irreps("1x0e"))
        # Gaunt messages scaled to unit second moment per component for unit-variance inputs (e3nn's normalisation,
        # which the CG blocks have already), then averaged over the neighbours as in MACE
        if not self.rows:
            per_irrep = (output_variance(irreps_in, irreps_sh, irreps_a, False) / (4 * math.pi)).rsqrt()
            scale = torch.cat([v.repeat(mul * ir.dim) for v, (mul, ir) in zip(per_irrep, self.conv.irreps_out)])
            self.register_buffer("conv_scale", scale / neighbours, persistent=False)
        self.num_scalars, self.num_features = c, irreps_hidden.dim  # its output's 0e part leads (``_natural``)

    def forward(
        self,
        h: torch.Tensor,
        one_hot: torch.Tensor,
        species: torch.Tensor,
        vectors: torch.Tensor,
        radial_feats: torch.Tensor,
        edge_index: torch.Tensor,
        edge_pair: torch.Tensor,
        edge_cache: dict,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """New node features ``[n, hidden.dim]`` and this layer's site energies ``[n]``.

        ``radial_feats [U, num_radial_basis]`` holds one row per undirected edge pair, ``edge_pair [E]``
        the pair of each edge: the radial MLP runs once per pair. ``edge_cache``: one dict shared by the
        layers of one forward pass (see :class:`gaunt_tp.ops.GauntConvolution`).
        """
        weights = self.radial(radial_feats)  # [U, weight_numel]
        conv = self.conv.forward_rows if self.rows else self.conv
        a = conv(self.linear_up(h), vectors, edge_index, weights, radial_index=edge_pair, edge_cache=edge_cache)
        if not self.rows:  # a float64 buffer (exact after .double()), in the features' dtype
            a = a * self.conv_scale.to(a.dtype)
        a = self.linear_a(a)
        if self.density is not None:  # 1 + the sum over each atom's edges of tanh((w . radial features)^2)
            per_pair = torch.tanh(self.density(radial_feats).squeeze(-1) ** 2)  # [U]
            density = torch.zeros_like(a[:, 0]).index_add(0, edge_index[1], per_pair.index_select(0, edge_pair))
            a = a / (1.0 + density)[:, None]
        if self.element_mix is not None:
            a = self.element_mix(a, one_hot)
        h_new = self.linear_out(self.product(a, species))
        if self.skip is not None:
            h_new = h_new + self.skip(h, one_hot)
        return h_new, self.readout(h_new[:, : self.num_scalars]).squeeze(-1)


class GauntMACE(nn.Module):
    """MACE-style potential on Gaunt convolutions and Gaunt many-body products.

    Args:
        config: :class:`ModelConfig`.

    ``forward(batch, compute_forces=True, compute_stress=False, training=False, compute_descriptors=False)``
    takes a :class:`gaunt_tp.data.GraphBatch` and returns a dict with ``energy [B]`` (eV),
    ``node_energy [n]`` (eV, E0 included), ``forces [n, 3]`` (eV/Angstrom) and, if asked,
    ``stress [B, 3, 3]`` (eV/Angstrom^3, for any cell that spans a volume, periodic or not; zero for
    cells of zero volume) and, with ``compute_descriptors``, ``node_feats [n, sum of the layers' num_features]``:
    each layer's whole output (e3nn's layout of the hidden irreps, ``num_channels x 0e`` alone for the last layer),
    layer after layer (MACE's ``node_feats``; :meth:`descriptors` takes its invariant part or first layers). With
    ``training=True`` the graph of the forces is kept for a force loss (or for second derivatives).

    ``energy`` and ``node_energy`` are float64 whatever the model's dtype: the E0s (a float64 buffer that
    ``.to(dtype)`` leaves in float64) are added to the interaction energy in float64, because total energies of
    ~1e4 eV round to ~1 meV in float32, more than the errors a potential is trained to reach. Forces and stress
    have the model's dtype.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, n_el = config.num_channels, len(config.atomic_numbers)
        self.embedding = EquivariantLinear(o3.Irreps(f"{n_el}x0e"), o3.Irreps(f"{c}x0e"))
        self.bessel = BesselBasis(config.r_max, config.num_radial_basis)
        self.cutoff = PolynomialCutoff(config.r_max, config.num_cutoff_basis)
        hidden = _natural(config.max_L, c)
        layers, irreps_in = [], o3.Irreps(f"{c}x0e")
        for i in range(config.num_interactions):
            last = i == config.num_interactions - 1
            self_connection = i > 0 or config.first_self_connection
            layers.append(_Layer(config, irreps_in, o3.Irreps(f"{c}x0e") if last else hidden, last, self_connection))
            irreps_in = o3.Irreps(f"{c}x0e") if last else hidden
        self.layers = nn.ModuleList(layers)
        transform = DISTANCE_TRANSFORMS[config.distance_transform]
        self.distance_transform = transform(config.atomic_numbers) if transform is not None else None
        self.pair_repulsion = (
            ZBLRepulsion(config.atomic_numbers, config.num_cutoff_basis) if config.pair_repulsion else None
        )
        self.register_buffer("e0s", torch.tensor(config.e0s, dtype=torch.float64))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args) -> None:  # noqa: ANN002
        """E0s saved in float32 (before they stayed float64) come back exact from the config when they match it."""
        key = prefix + "e0s"
        saved = state_dict.get(key)
        if saved is not None and saved.dtype != torch.float64:
            exact = torch.tensor(self.config.e0s, dtype=torch.float64)
            if saved.shape == exact.shape and torch.allclose(saved.double(), exact, rtol=1e-6, atol=0.0):
                state_dict[key] = exact
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202 (nn.Module's signature)
        """``.to()``, ``.float()``, ``.cuda()``...: the E0s move with the model but keep their float64 values."""
        e0s = self.e0s
        super()._apply(fn, recurse)
        self.e0s = e0s.to(device=self.e0s.device)
        return self

    def descriptors(self, node_feats: torch.Tensor, invariants_only: bool = True, num_layers: int = -1) -> torch.Tensor:
        """The first ``num_layers`` layers' (-1: all) columns of ``node_feats [n, ...]`` (``forward``'s, with
        ``compute_descriptors``): with ``invariants_only``, each layer's ``0e`` features alone, the ones its readout
        maps to site energies (``[n, num_layers * num_channels]``, MACE's invariant descriptors); else all of them."""
        count = len(self.layers) if num_layers == -1 else num_layers
        if not 1 <= count <= len(self.layers):
            raise ValueError(f"num_layers must be -1 (all) or in 1..{len(self.layers)}, got {num_layers}")
        blocks = node_feats.split([layer.num_features for layer in self.layers], dim=1)[:count]
        if invariants_only:
            blocks = [block[:, : layer.num_scalars] for block, layer in zip(blocks, self.layers)]
        return torch.cat(blocks, dim=1)

    def forward(
        self,
        batch: GraphBatch,
        *,
        compute_forces: bool = True,
        compute_stress: bool = False,
        training: bool = False,
        compute_descriptors: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Energies of ``batch``'s graphs and what the flags ask for (see the class docstring for the keys).

        Forces and stress are gradients of the energy: under ``torch.no_grad()`` they are still computed (with the
        outputs detached), and under ``torch.inference_mode()``, where no gradient can be taken, asking for them is
        an error. ``training``: keep the graph of the forces and stress for a loss on them (double backward).
        """
        if (span := index_range(batch.species) if batch.species.numel() else None) is not None:
            if span[0] < 0 or span[1] >= len(self.config.atomic_numbers):
                raise ValueError(f"species holds element index {span[0] if span[0] < 0 else span[1]}, outside "
                                 f"0..{len(self.config.atomic_numbers) - 1} (the model's elements)")  # fmt: skip
        flags = dict(compute_forces=compute_forces, compute_stress=compute_stress, training=training,
                     compute_descriptors=compute_descriptors)  # fmt: skip
        if not (compute_forces or compute_stress) or torch.is_grad_enabled():
            return self._energy_and_gradients(batch, **flags)
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "forces and stress are gradients of the energy, which torch.inference_mode() forbids: call the "
                "model under torch.no_grad() or neither, or with compute_forces=False"
            )
        with torch.enable_grad():  # under torch.no_grad(): the gradients, then nothing kept for a backward pass
            return {key: value.detach() for key, value in self._energy_and_gradients(batch, **flags).items()}

    def _energy_and_gradients(  # forward's work, with autograd on
        self,
        batch: GraphBatch,
        *,
        compute_forces: bool,
        compute_stress: bool,
        training: bool,
        compute_descriptors: bool,
    ) -> dict[str, torch.Tensor]:
        positions, shifts, cell = batch.positions, batch.shifts, batch.cell
        strain = None
        if compute_stress:
            strain = torch.zeros_like(cell, requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            positions = positions + torch.einsum("ni,nij->nj", positions, sym.index_select(0, batch.batch))
            edge_graph = batch.batch[batch.edge_index[0]]
            shifts = shifts + torch.einsum("ei,eij->ej", shifts, sym.index_select(0, edge_graph))
            cell = cell + torch.bmm(cell, sym)
        if compute_forces and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        sender, receiver = batch.edge_index
        vectors = positions.index_select(0, receiver) + shifts - positions.index_select(0, sender)
        _, lengths = safe_unit_vectors(vectors)
        pair_lengths = lengths.index_select(0, batch.pair_edge)  # an edge and its reverse: one length
        basis_lengths = pair_lengths
        if self.distance_transform is not None:
            pair_nodes = batch.edge_index.index_select(1, batch.pair_edge)  # the two atoms of each pair
            pair_species = batch.species[pair_nodes]
            basis_lengths = self.distance_transform(pair_lengths, pair_species[0], pair_species[1])
        radial_feats = self.bessel(basis_lengths) * self.cutoff(pair_lengths)[:, None]  # [U, num_radial_basis]
        # one-hot by comparison: F.one_hot checks the range by reading values back, which a CUDA graph capture
        # forbids (the many-body blocks check the species' range, with a clear error, outside captures)
        elements = torch.arange(len(self.config.atomic_numbers), device=batch.species.device)
        one_hot = (batch.species[:, None] == elements).to(positions.dtype)
        h = self.embedding(one_hot)
        interaction = torch.zeros_like(positions[:, 0])
        if self.pair_repulsion is not None:
            interaction = self.pair_repulsion(lengths, batch.species, batch.edge_index)
        edge_cache: dict = {}  # what the layers' convolutions can share: they run over the same edges
        features = []
        for layer in self.layers:
            h, site = layer(
                h, one_hot, batch.species, vectors, radial_feats, batch.edge_index, batch.edge_pair, edge_cache
            )
            interaction = interaction + site
            features.append(h)
        # in float64, the shift too (see the class docstring): a float32 shift's rounding would add up over the atoms
        node_energy = (
            self.e0s[batch.species]
            + self.config.energy_shift
            + self.config.energy_scale * interaction.to(torch.float64)
        )
        energy = torch.zeros(batch.num_graphs, dtype=torch.float64, device=positions.device)
        energy = energy.index_add(0, batch.batch, node_energy)
        out = {"energy": energy, "node_energy": node_energy}
        if compute_descriptors:
            out["node_feats"] = torch.cat(features, dim=1)
        inputs = [t for t in (positions if compute_forces else None, strain) if t is not None]
        if inputs:
            total = energy.sum()  # no graph at all: frozen weights and no edge (isolated atoms)
            grads = (
                torch.autograd.grad(total, inputs, create_graph=training, allow_unused=True)
                if total.requires_grad
                else [None] * len(inputs)
            )
            if compute_forces:
                out["forces"] = -grads[0] if grads[0] is not None else torch.zeros_like(positions)
            if compute_stress:
                volume = cell_volumes(batch.cell)[:, None, None]
                g = grads[-1] if grads[-1] is not None else torch.zeros_like(cell)
                out["stress"] = torch.where(volume > MIN_CELL_VOLUME, g / volume.clamp_min(MIN_CELL_VOLUME), 0.0)
        return out
