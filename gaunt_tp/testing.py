"""Helpers to check equivariant modules, shipped so users and our tests share them.

``assert_equivariant`` applies a random rotation (optionally composed with the
inversion) to every input and checks that the output transforms with the output
irreps. ``E3nnGauntReference`` is e3nn's ``TensorProduct`` that computes the
same function as :class:`gaunt_tp.GauntTensorProduct`, as an independent reference.
``emt_copper`` makes periodic structures with energies, forces and stress from ASE's EMT;
``small_model_config`` is a GauntMACE small enough for tests, ``pytorch_path`` turns a model's C kernels off.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from e3nn import o3

from gaunt_tp.math.conventions import unit_vectors
from gaunt_tp.math.gaunt import gaunt, is_gaunt_path
from gaunt_tp.math.gradients import is_odd_path, odd_product_coefficients
from gaunt_tp.math.quadrature import gauss_legendre_grid
from gaunt_tp.nn import ModelConfig
from gaunt_tp.ops.descriptor import as_irreps

__all__ = [
    "assert_equivariant",
    "block_derivatives",
    "equivariance_error",
    "E3nnGauntConvolution",
    "E3nnGauntReference",
    "emt_copper",
    "gaunt_path_constant",
    "host_read_backs",
    "natural_irreps",
    "pytorch_path",
    "random_rotation",
    "small_model_config",
    "wigner_matrix",
]

_DEFAULT_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def natural_irreps(lmax: int, mul: int, lmin: int = 0) -> str:
    """Every degree ``lmin..lmax`` with natural parity and multiplicity ``mul``, as an e3nn irreps string.

    Example:
        >>> natural_irreps(2, 8)
        '8x0e + 8x1o + 8x2e'
    """
    return " + ".join(f"{mul}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmin, lmax + 1))


@contextlib.contextmanager
def _float64_default() -> Iterator[None]:
    """e3nn builds some tables in the default dtype; float32 ones would limit references to ~1e-7."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def random_rotation(*, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Haar-random rotation matrix ``[3, 3]``, float64 (QR of a Gaussian matrix)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def wigner_matrix(irreps: o3.Irreps | str, rotation: torch.Tensor, inversion: bool = False) -> torch.Tensor:
    """Float64 representation matrix ``[irreps.dim, irreps.dim]`` of ``rotation`` (times the inversion).

    Computed from e3nn's harmonics themselves, ``D_ij = integral Y_i(R r) Y_j(r) dOmega``, with an
    exact quadrature: accurate to ~1e-15 for every rotation (e3nn's ``D_from_angles`` goes through
    matrix exponentials and can lose five digits at high l). An irrep of parity p picks up p under
    the inversion.
    """
    irreps = as_irreps(irreps, "irreps")
    blocks = []
    for mul, ir in irreps:
        grid = gauss_legendre_grid(2 * ir.l)
        theta, phi = grid.mesh()
        points = unit_vectors(theta.reshape(-1), phi.reshape(-1))
        y = o3.spherical_harmonics(ir.l, points, normalize=False, normalization="integral")
        y_rot = o3.spherical_harmonics(
            ir.l, points @ rotation.to(torch.float64).T, normalize=False, normalization="integral"
        )
        d = y_rot.T @ (grid.weights.reshape(-1, 1) * y)
        if inversion:
            d = ir.p * d
        blocks += [d] * mul
    return torch.block_diag(*blocks)


def equivariance_error(
    fn: Callable[..., torch.Tensor],
    irreps_in: Sequence[o3.Irreps | str],
    irreps_out: o3.Irreps | str,
    *,
    batch: int = 8,
    inversion: bool = True,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
) -> float:
    """``max |fn(D x) - D fn(x)| / max |fn(x)|`` for a random rotation, composed with the inversion if asked.

    Representation matrices come from :func:`wigner_matrix` in float64, cast to ``dtype``.

    Args:
        fn: maps tensors ``[batch, irreps_in[i].dim]`` to ``[batch, irreps_out.dim]``.
        irreps_in: the irreps of each input.
        irreps_out: the irreps of the output.
        inversion: compose the rotation with the inversion (tests parity too).
    """
    irreps_in = [as_irreps(ir, f"irreps_in[{i}]") for i, ir in enumerate(irreps_in)]
    irreps_out = as_irreps(irreps_out, "irreps_out")
    rotation = random_rotation(generator=generator)
    xs = [torch.randn(batch, ir.dim, dtype=torch.float64, generator=generator).to(dtype) for ir in irreps_in]
    d_in = [wigner_matrix(ir, rotation, inversion).to(dtype) for ir in irreps_in]
    d_out = wigner_matrix(irreps_out, rotation, inversion).to(dtype)
    out = fn(*xs)
    out_rot = fn(*[x @ d.T for x, d in zip(xs, d_in)])
    scale = out.abs().max().clamp_min(torch.finfo(dtype).tiny)
    return float(((out_rot - out @ d_out.T).abs().max() / scale).item())


def assert_equivariant(
    fn: Callable[..., torch.Tensor],
    irreps_in: Sequence[o3.Irreps | str],
    irreps_out: o3.Irreps | str,
    *,
    dtype: torch.dtype = torch.float64,
    tol: float | None = None,
    trials: int = 3,
) -> float:
    """Assert equivariance under random rotations and roto-inversions; return the worst error.

    The default tolerance is 1e-10 in float64 and 1e-5 in float32 (relative to the
    largest output entry).

    Example:
        >>> import torch
        >>> from gaunt_tp import GauntTensorProduct
        >>> tp = GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o + 2x2e").double()
        >>> assert_equivariant(tp, [tp.irreps_in1, tp.irreps_in2], tp.irreps_out) < 1e-10
        True
    """
    tol = _DEFAULT_TOL[dtype] if tol is None else tol
    worst = 0.0
    for trial in range(trials):
        for inversion in (False, True):
            err = equivariance_error(fn, irreps_in, irreps_out, inversion=inversion, dtype=dtype)
            worst = max(worst, err)
            if not err <= tol:
                kind = "roto-inversion" if inversion else "rotation"
                raise AssertionError(f"not equivariant under a random {kind}: relative error {err:.3e} > {tol:.1e}")
    return worst


def block_derivatives(
    block: torch.nn.Module, x: torch.Tensor, species: torch.Tensor, use_kernel: bool
) -> list[torch.Tensor]:
    """What force training asks of a many-body block, for comparing its C kernels with its PyTorch form.

    ``block(x, species)`` with an attribute ``use_kernel`` (set here); x must require grad. Returns the
    output, the first derivatives of ``<g, out>`` (g fixed random, drawn in float64) with respect to x and
    every parameter, x's gradient alone (as forces, without the parameters' gradients), and the gradients
    of ``|forces|^2 + sum |first parameter derivatives|^2`` with respect to x and every parameter.
    """
    block.use_kernel = use_kernel
    params = list(block.parameters())
    out = block(x, species)
    g = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    first = torch.autograd.grad((out * g).sum(), [x, *params], create_graph=True)
    (forces,) = torch.autograd.grad((block(x, species) * g).sum(), [x], create_graph=True)
    loss = forces.square().sum() + sum((d * d).sum() for d in first[1:])
    second = torch.autograd.grad(loss, [x, *params], allow_unused=True, materialize_grads=True)
    return [out, *first, forces, *second]


def _three_j_zero(l1: int, l2: int, l3: int) -> float:
    """The Wigner 3j symbol (l1 l2 l3; 0 0 0) in closed form (zero for odd l1+l2+l3)."""
    big = l1 + l2 + l3
    if big % 2 or not abs(l1 - l2) <= l3 <= l1 + l2:
        return 0.0
    g = big // 2
    f = math.factorial
    root = math.sqrt(f(big - 2 * l1) * f(big - 2 * l2) * f(big - 2 * l3) / f(big + 1))
    return (-1) ** g * root * f(g) / (f(g - l1) * f(g - l2) * f(g - l3))


def gaunt_path_constant(l1: int, l2: int, l3: int) -> float:
    """``|c|`` with ``gaunt(l1, l2, l3) = +-c * o3.wigner_3j(l1, l2, l3)``, in closed form.

    ``|c| = sqrt((2l1+1)(2l2+1)(2l3+1) / (4 pi)) |(l1 l2 l3; 0 0 0)|``, since e3nn's
    real 3j tensor has unit Frobenius norm like the complex 3j symbols.
    """
    return math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi)) * abs(_three_j_zero(l1, l2, l3))


def _path_sign_and_constant(l1: int, l2: int, l3: int) -> tuple[float, float]:
    """``(s, c)`` with ``coefficients(l1, l2, l3) = s * c * o3.wigner_3j(l1, l2, l3)``, c > 0.

    Gaunt paths (l1+l2+l3 even) take c in closed form (:func:`gaunt_path_constant`); odd paths
    have none, so c is the projection of :func:`odd_product_coefficients` onto the unit-norm 3j tensor.
    """
    w3j = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
    if is_gaunt_path(l1, l2, l3):
        return (1.0 if float((gaunt(l1, l2, l3) * w3j).sum()) >= 0 else -1.0), gaunt_path_constant(l1, l2, l3)
    projection = float((odd_product_coefficients(l1, l2, l3) * w3j).sum())
    return (1.0 if projection >= 0 else -1.0), abs(projection)


class E3nnGauntReference(torch.nn.Module):
    """e3nn's channel-wise ``TensorProduct`` ('uuu') that computes the Gaunt product.

    e3nn applies ``sqrt(path_weight)`` to a path, so it cannot express a negative
    constant; each path therefore gets ``path_weight = c**2`` (``c`` from
    :func:`gaunt_path_constant`) and a fixed external weight equal to the sign that
    relates e3nn's 3j tensor to the Gaunt coefficients. Every input multiplicity must
    equal the output's (e3nn has no broadcast of a multiplicity-1 side).

    With ``odd_paths=True`` it also has the parity-odd paths, each with the constant that
    relates :func:`gaunt_tp.math.odd_product_coefficients` to e3nn's 3j tensor. The module is
    built in float64 (exact tables); call ``.float()`` for float32.

    Shape:
        ``forward(x1 [..., irreps_in1.dim], x2 [..., irreps_in2.dim]) -> [..., irreps_out.dim]``.
    """

    def __init__(
        self,
        irreps_in1: o3.Irreps | str,
        irreps_in2: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        odd_paths: bool = False,
    ) -> None:
        super().__init__()
        irreps_in1 = as_irreps(irreps_in1, "irreps_in1")
        irreps_in2 = as_irreps(irreps_in2, "irreps_in2")
        irreps_out = as_irreps(irreps_out, "irreps_out")
        instructions, signs = [], []
        for i1, (mul, ir1) in enumerate(irreps_in1):
            for i2, (_, ir2) in enumerate(irreps_in2):
                for io, (_, ir3) in enumerate(irreps_out):
                    if ir1.p * ir2.p != ir3.p or not abs(ir1.l - ir2.l) <= ir3.l <= ir1.l + ir2.l:
                        continue
                    if not (is_gaunt_path(ir1.l, ir2.l, ir3.l) or (odd_paths and is_odd_path(ir1.l, ir2.l, ir3.l))):
                        continue
                    sign, constant = _path_sign_and_constant(ir1.l, ir2.l, ir3.l)
                    instructions.append((i1, i2, io, "uuu", True, constant**2))
                    signs.append(torch.full((mul,), sign, dtype=torch.float64))
        with _float64_default():  # e3nn builds its 3j tables in the default dtype
            self.tp = o3.TensorProduct(
                irreps_in1,
                irreps_in2,
                irreps_out,
                instructions,
                irrep_normalization="none",
                path_normalization="none",
                internal_weights=False,
                shared_weights=True,
            )
        self.register_buffer("signs", torch.cat(signs))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.tp(x1, x2, self.signs)


class E3nnGauntConvolution(torch.nn.Module):
    """e3nn's 'uvu' TensorProduct plus a scatter-sum that equals :class:`gaunt_tp.ops.GauntConvolution`.

    Each Gaunt path (l1, l2, l3) gets ``path_weight = c**2`` (e3nn applies its square root)
    and the per-edge weight ``sign * R_e[l2, c]`` (``sign * R_e[l2, i1, c]`` with
    ``radial_per_input``); parity-odd paths are left out. Edge
    harmonics come from ``o3.spherical_harmonics(..., normalize=True)`` (zero-length edges
    give NaN there, unlike the Gaunt convolution).

    Shape:
        as :class:`gaunt_tp.ops.GauntConvolution`.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps | str,
        irreps_sh: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        radial_per_input: bool = False,
    ) -> None:
        super().__init__()
        self.radial_inputs = len(as_irreps(irreps_node, "irreps_node")) if radial_per_input else 1
        self.irreps_node = as_irreps(irreps_node, "irreps_node")
        self.irreps_sh = as_irreps(irreps_sh, "irreps_sh")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        instructions, self.weight_plan = [], []
        for i1, (mul, ir1) in enumerate(self.irreps_node):
            for i2, (_, ir2) in enumerate(self.irreps_sh):
                for io, (_, ir3) in enumerate(self.irreps_out):
                    if ir1.p * ir2.p != ir3.p or not is_gaunt_path(ir1.l, ir2.l, ir3.l):
                        continue
                    sign, constant = _path_sign_and_constant(ir1.l, ir2.l, ir3.l)
                    instructions.append((i1, i2, io, "uvu", True, constant**2))
                    self.weight_plan.append((i1 if radial_per_input else 0, i2, sign))
        self.channels = self.irreps_node[0].mul
        with _float64_default():
            self.tp = o3.TensorProduct(
                self.irreps_node,
                self.irreps_sh,
                self.irreps_out,
                instructions,
                irrep_normalization="none",
                path_normalization="none",
                internal_weights=False,
                shared_weights=False,
            )

    def forward(
        self,
        node_features: torch.Tensor,
        edge_vectors: torch.Tensor,
        edge_index: torch.Tensor,
        radial_weights: torch.Tensor,
    ) -> torch.Tensor:
        radial = radial_weights.view(radial_weights.shape[0], len(self.irreps_sh), self.radial_inputs, self.channels)
        weights = torch.cat([sign * radial[:, k, a] for a, k, sign in self.weight_plan], dim=1)
        sh = o3.spherical_harmonics(self.irreps_sh, edge_vectors, normalize=True, normalization="integral")
        messages = self.tp(node_features[edge_index[0]], sh, weights)
        out = messages.new_zeros(node_features.shape[0], self.irreps_out.dim)
        return out.index_add(0, edge_index[1], messages)


def emt_copper(count: int, seed: int, strain: float = 0.02, rattle: float = 0.05, shapes: Sequence = ((2, 1, 1),)):
    """``count`` periodic fcc copper cells (cubic cell repeated by ``shapes[i % len(shapes)]``), strained by a
    random symmetric matrix of scale ``strain`` and rattled by ``rattle`` Angstrom, with ASE's EMT energy, forces
    and stress computed and attached (offline labels for stress training).

    Returns a list of ``ase.Atoms``.
    """
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(tuple(shapes[i % len(shapes)]))
        deformation = np.eye(3) + strain * rng.standard_normal((3, 3))
        atoms.set_cell(atoms.cell[:] @ (deformation + deformation.T) / 2, scale_atoms=True)
        atoms.positions += rattle * rng.standard_normal(atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        frames.append(atoms)
    return frames


# ATen operations that read device values back to the host: a CUDA graph capture fails on them
READ_BACK_OPS = frozenset({
    "aten::_local_scalar_dense", "aten::item", "aten::nonzero", "aten::masked_select", "aten::unique",
    "aten::_unique2", "aten::unique_consecutive", "aten::bincount", "aten::repeat_interleave",
})  # fmt: skip


def host_read_backs(fn: Callable[[], object]) -> set[str]:
    """The operations among :data:`READ_BACK_OPS` that ``fn()`` calls, found with the CPU profiler.

    Run on CPU tensors, this finds what would stop the same code from being captured as a CUDA graph (checks that
    skip themselves while capturing must be told so: :func:`gaunt_tp.ops.checks.capturing`). Raises ``ValueError``
    when the profile holds no ATen operation at all (nothing was profiled).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    names = {event.name for event in prof.events()}
    if not any(name.startswith("aten::") for name in names):
        raise ValueError("the profile holds no ATen operation: nothing ran")
    return names & READ_BACK_OPS


def small_model_config(**overrides: object) -> ModelConfig:
    """A :class:`gaunt_tp.nn.ModelConfig` for tests: H, C and O (E0s -13.6, -1025, -2035 eV), cutoff 4 Angstrom,
    edge harmonics to l = 2, 6 channels to L = 1, correlation 2, two interactions, 6 radial functions, a radial
    network of two 16-wide layers, 8 neighbours on average. ``overrides``: other ModelConfig fields.

    Example:
        >>> small_model_config(product_blocks="symmetric").num_channels
        6
    """
    fields = dict(atomic_numbers=(1, 6, 8), e0s=(-13.6, -1025.0, -2035.0), r_max=4.0, max_ell=2, num_channels=6,
                  max_L=1, correlation=2, num_radial_basis=6, radial_mlp=(16, 16), avg_num_neighbors=8.0)  # fmt: skip
    return ModelConfig(**{**fields, **overrides})


def pytorch_path(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every module's C kernels off (``use_kernel = False``): the PyTorch code that GPUs and machines
    without a C compiler run. Returns ``model``."""
    for module in model.modules():
        if hasattr(module, "use_kernel"):
            module.use_kernel = False
    return model
