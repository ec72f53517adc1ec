"""Fused backend: the grid backend's product in one C kernel per call (CPU, float32/float64).

The same sphere grid and the same exact arithmetic as :mod:`gaunt_tp.ops.grid`, but instead of a
chain of eager PyTorch kernels (permute, matmuls, products, permute), each of which writes a
``[products, points]`` buffer to memory, the kernel in ``csrc/grid_product.c`` takes one vector
register's worth of products at a time (8 in float32 with AVX2, 16 with AVX-512): gathers their
coefficients from e3nn's layout, evaluates both functions, multiplies, projects and scatters the
result back, all in per-thread buffers that stay in cache.

Parity parts: the grid is invariant under the coordinate mirrors x -> -x, y -> -y, z -> -z (Lebedev
rules under all three) and every real harmonic is even or odd under each, so a function splits into
up to 8 parts, each known from one point per orbit of the mirrors
(:func:`gaunt_tp.math.quadrature.grid_mirrors`); the product's part P is
``sum_q f_q g_(P xor q)``. The number of parts (2, 4 or 8) is chosen per product by a cost rule.

Derivatives are the same operation with other tables: for ``z = P(S_a x ⊙ S_b y)`` (``⊙`` the
product by parts, ``S`` synthesis tables ``[n, H]``, ``P`` the weighted projection), the gradient
with respect to x is ``S_a^T (S_b y ⊙ P^T g)``, i.e. the product of y and the output gradient
g projected onto x's functions. So backward passes call the same kernel (through the same
autograd functions), and gradients of any order work.

Broadcast inputs (one node, or multiplicity 1) are expanded before the kernel runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.gradients import harmonic_gradients
from gaunt_tp.math.quadrature import PointGrid, grid_mirrors, smallest_grid
from gaunt_tp.ops.descriptor import ClassLayout, GauntDescriptor
from gaunt_tp.ops.native import native_library
from gaunt_tp.ops.tables import TableCache

__all__ = [
    "FusedGridGaunt",
    "FusedOddProduct",
    "FusedProducts",
    "Samples",
    "grid_samples",
    "harmonic_values",
    "parity_parts",
    "reflection_parts",
]


# Groups of coordinate reflections tried, by axis (0: x, 1: y, 2: z); e3nn's polar axis is y.
_REFLECTION_GROUPS = ((1,), (1, 0), (1, 2), (0, 1, 2))
# Per parity part, per product: the cost of its loops' setup and short passes, in flops of the
# transforms. Fitted on the 2-core CI machine (lmax 3, 6, 8; C = 32, N = 128, float32): there 2 parts
# were fastest at lmax 3, 4 at lmax 6, 8 at lmax 8, as this rule picks.
_PART_OVERHEAD_FLOPS = 1200.0


def parity_parts(functions: Callable[[torch.Tensor], torch.Tensor], axes: tuple[int, ...]) -> list[int]:
    """Parity part of each of ``functions`` (``[P, 3] -> [P, n]``) under the reflections of ``axes``.

    Bit i of a function's part is 1 where it is odd under the mirror of ``axes[i]``; a function
    that is neither even nor odd under one of them is a ValueError (checked at random points).
    """
    points = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    values = functions(points)
    parts = [0] * values.shape[1]
    for bit, axis in enumerate(axes):
        flip = torch.ones(3, dtype=torch.float64)
        flip[axis] = -1.0
        mirrored = functions(points * flip)
        for k in range(values.shape[1]):
            scale = 1e-12 * max(1.0, float(values[:, k].abs().max()))
            if torch.allclose(mirrored[:, k], -values[:, k], atol=scale):
                parts[k] |= 1 << bit
            elif not torch.allclose(mirrored[:, k], values[:, k], atol=scale):
                raise ValueError(f"function {k} has no parity under the mirror of axis {axis}")
    return parts


def harmonic_values(lmax: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``points [P, 3] -> [P, (lmax+1)**2]``: e3nn's harmonics (integral normalisation), for kernel plans."""
    ls = list(range(lmax + 1))
    return lambda points: o3.spherical_harmonics(ls, points, normalize=False, normalization="integral")


def reflection_parts(lmax: int, axes: tuple[int, ...]) -> list[int]:
    """Parity part of each real harmonic of degree <= lmax under the reflections of ``axes``.

    Bit i of the part is 1 where ``Y_lm`` is odd under the mirror of ``axes[i]`` (every real
    harmonic in e3nn's basis is even or odd under each coordinate mirror).

    Shape:
        returns a list of length ``(lmax + 1)**2``, indexed ``l**2 + l + m``.

    Example:
        >>> reflection_parts(1, (1,))  # 0e even; of 1o, only the y component is odd under y -> -y
        [0, 0, 1, 0]
    """
    return parity_parts(harmonic_values(lmax), axes)


@dataclass(frozen=True)
class _Operand:
    """One class of one operand: where its entries sit in e3nn's layout and its grid tables.

    ``key`` names its tables in the TableCache: ``{key}_s`` (synthesis orientation, the slots'
    ``[n_j, H]`` blocks stacked) and ``{key}_p`` (projection orientation, the slots' ``[H, n_j]``
    blocks one after the other, flattened).
    """

    key: str
    counts: tuple[int, ...]  # entries per slot (component * parts + parity part)
    comps: int  # components (1, or 3 for the parity-odd product's gradient vectors)
    dim: int  # feature dim of the layout (multiplicity expanded to C)
    covers: bool  # the class holds every entry of the layout


def _layout(cls: ClassLayout, irreps: o3.Irreps, mul: int, order: list[int]) -> tuple[list[int], list[int]]:
    """For class entries in ``order``: e3nn offset of channel 0 and stride between channels (``2l+1``),
    in the layout of ``irreps`` with every multiplicity set to ``mul``."""
    offsets, start = [], 0
    for _, ir in irreps:
        offsets.append(start)
        start += mul * ir.dim
    flat = [(offsets[i] + k, 2 * l + 1) for i, l in zip(cls.irrep_indices, cls.ls) for k in range(2 * l + 1)]
    return [flat[p][0] for p in order], [flat[p][1] for p in order]


class _FusedProduct(torch.autograd.Function):
    """``product(x, y)`` of operands a, b into operand o (keys of the plan's operands)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, plan: _Plan, a: str, b: str, o: str):  # type: ignore[override]
        ctx.save_for_backward(x, y)
        ctx.plan, ctx.keys = plan, (a, b, o)
        return plan.run(x, y, a, b, o)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        x, y = ctx.saved_tensors
        plan, (a, b, o) = ctx.plan, ctx.keys
        grad = grad.contiguous()
        if ctx.needs_input_grad[0] and ctx.needs_input_grad[1]:
            if torch.is_grad_enabled():  # create_graph: the gradients must be differentiable again
                gx, gy = _FusedBackward.apply(x, y, grad, plan, a, b, o)
            else:
                gx, gy = plan.run_backward(x, y, grad, a, b, o)
        else:
            gx = _FusedProduct.apply(y, grad, plan, b, o, a) if ctx.needs_input_grad[0] else None
            gy = _FusedProduct.apply(x, grad, plan, a, o, b) if ctx.needs_input_grad[1] else None
        return gx, gy, None, None, None, None


class _FusedBackward(torch.autograd.Function):
    """Both gradients of ``product(x, y)`` for the output gradient g in one kernel pass:
    ``product(y, g)`` onto a and ``product(x, g)`` onto b. Its own derivatives are products again."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, plan: _Plan, a: str, b: str, o: str
    ):
        ctx.save_for_backward(x, y, g)
        ctx.plan, ctx.keys = plan, (a, b, o)
        return plan.run_backward(x, y, g, a, b, o)

    @staticmethod
    def backward(ctx: Any, ggx: torch.Tensor | None, ggy: torch.Tensor | None):  # type: ignore[override]
        x, y, g = ctx.saved_tensors
        plan, (a, b, o) = ctx.plan, ctx.keys
        ggx = ggx.contiguous() if ggx is not None else None
        ggy = ggy.contiguous() if ggy is not None else None
        dx = dy = dg = None
        if ggy is not None and ctx.needs_input_grad[0]:
            dx = _FusedProduct.apply(g, ggy, plan, o, b, a)
        if ggx is not None and ctx.needs_input_grad[1]:
            dy = _FusedProduct.apply(g, ggx, plan, o, a, b)
        if ctx.needs_input_grad[2]:
            parts = []
            if ggx is not None:
                parts.append(_FusedProduct.apply(y, ggx, plan, b, a, o))
            if ggy is not None:
                parts.append(_FusedProduct.apply(x, ggy, plan, a, b, o))
            dg = parts[0] if len(parts) == 1 else (parts[0] + parts[1] if parts else None)
        return dx, dy, dg, None, None, None, None


@dataclass(frozen=True)
class Samples:
    """Where a fused product samples its functions, and how it projects back.

    Attributes:
        points: ``[P, 3]`` unit vectors (repeated points allowed: the torus's poles).
        projection: ``[P, n_all]``, ``z_lm = sum_p projection[p, lm] h(p)``, exact for the
            product's band (quadrature weights times harmonics for a sphere grid).
        mirrors: axis -> permutation ``[P]`` of the samples under that coordinate mirror (sample
            ``mirrors[a][p]`` sits at the mirror image of sample p); axes missing where the
            samples lack that symmetry.
    """

    points: torch.Tensor
    projection: torch.Tensor
    mirrors: dict[int, torch.Tensor]


def grid_samples(grid: PointGrid, lmax_out: int) -> Samples:
    """:class:`Samples` of a sphere quadrature grid: weights times harmonics, its mirrors (:func:`grid_mirrors`)."""
    return Samples(grid.points, grid.weights[:, None] * harmonic_values(lmax_out)(grid.points), grid_mirrors(grid))


def _orbits(samples: Samples, axes: tuple[int, ...]) -> list[list[tuple[int, int]]]:
    """One entry per orbit of the mirrors of ``axes``: its distinct samples ``(index, mask)``, the
    representative (smallest index) first; ``mask`` has bit i set where the mirror of ``axes[i]``
    takes the representative there."""
    size = samples.points.shape[0]
    images = torch.arange(size)[None, :].repeat(1 << len(axes), 1)  # [mask, sample]
    for mask in range(1 << len(axes)):
        for bit, axis in enumerate(axes):
            if mask >> bit & 1:
                images[mask] = samples.mirrors[axis][images[mask]]
    orbits, seen = [], set()
    for p in range(size):
        if p in seen:
            continue
        members: dict[int, int] = {}
        for mask in range(1 << len(axes)):
            members.setdefault(int(images[mask, p]), mask)
        seen.update(members)
        orbits.append(sorted(members.items(), key=lambda qm: qm[1]))
    return orbits


class _Plan(nn.Module):
    """Layouts and tables of one bilinear grid product ``z = P(S_a x ⊙ S_b y)`` in the kernel.

    ``functions`` maps each side ("a", "b": the inputs; "o": the output) to the functions its
    coefficients stand for, each ``points [P, 3] -> values [P, n_all]`` with rows indexed like the
    harmonics (``l**2 + l + m``): one function (the harmonics) for the Gaunt product; for the
    parity-odd product the inputs have three components (x, y, z) that pair up one by one and
    are summed. The output side's table is weighted by the quadrature. The reflection group (and
    so the number of parity parts) is the cheapest under which the grid and every function are
    symmetric.
    """

    def __init__(self, desc: GauntDescriptor, samples: Samples, functions: dict[str, list[Callable]]) -> None:
        super().__init__()
        self.desc = desc
        options = []
        for axes in _REFLECTION_GROUPS:
            if any(axis not in samples.mirrors for axis in axes):
                continue  # the samples lack this symmetry (a Gauss-Legendre grid may)
            unique = {id(fn): fn for fns in functions.values() for fn in fns}  # the sides often share one
            try:
                found = {key: parity_parts(fn, axes) for key, fn in unique.items()}
                parts = {side: [found[id(fn)] for fn in fns] for side, fns in functions.items()}
            except ValueError:
                continue  # a function lacks it
            orbits = _orbits(samples, axes)
            flops = _flops_per_product(desc, parts, len(orbits))
            options.append((flops + _PART_OVERHEAD_FLOPS * (1 << len(axes)), axes, orbits, parts))
        if not options:
            raise ValueError("the samples are not symmetric under y -> -y")
        _, self.axes, orbits, part_of = min(options, key=lambda o: o[0])
        self.parts = 1 << len(self.axes)
        self.reduced_points = len(orbits)
        self.flops_per_product = _flops_per_product(desc, part_of, self.reduced_points)
        reps = torch.tensor([orbit[0][0] for orbit in orbits])
        points = samples.points[reps]
        # the projection folded onto the representatives, per parity part: sum over an orbit of the
        # projection at each member times the part's sign there (the part's values there)
        folded = torch.zeros(self.parts, len(orbits), samples.projection.shape[1], dtype=samples.projection.dtype)
        for r, orbit in enumerate(orbits):
            for q, mask in orbit:
                for part in range(self.parts):
                    sign = -1.0 if bin(mask & part).count("1") % 2 else 1.0
                    folded[part, r] += sign * samples.projection[q]
        mul = desc.mul
        tables: dict[str, torch.Tensor] = {}
        self.operands: dict[str, _Operand] = {}
        for side, irreps, classes in (
            ("a", desc.irreps_in1, desc.classes1),
            ("b", desc.irreps_in2, desc.classes2),
            ("o", desc.irreps_out, desc.classes_out),
        ):
            values = [fn(points).T for fn in functions[side]]  # per component [n_all, H]
            comps = len(values)
            for i, cls in enumerate(classes):
                rows = cls.sh_rows()
                # entries (component, class position) sorted by slot = component * parts + part
                slot = {
                    (c, p): c * self.parts + part_of[side][c][rows[p]] for c in range(comps) for p in range(cls.dim)
                }
                order = sorted(slot, key=lambda cp: (slot[cp], cp[1]))
                off, stride = _layout(cls, irreps, mul, [p for _, p in order])
                key = f"{side}{i}"
                self.register_buffer(f"{key}_off", torch.tensor(off, dtype=torch.int64), persistent=False)
                self.register_buffer(f"{key}_str", torch.tensor(stride, dtype=torch.int64), persistent=False)
                counts = tuple(sum(1 for cp in order if slot[cp] == q) for q in range(comps * self.parts))
                self.register_buffer(f"{key}_cnt", torch.tensor(counts, dtype=torch.int64), persistent=False)
                if side == "o":  # the projection, folded with the sign pattern of each entry's part
                    rows_in_order = torch.stack([folded[part_of[side][c][rows[p]], :, rows[p]] for c, p in order])
                else:
                    rows_in_order = torch.stack([values[c][rows[p]] for c, p in order])
                tables[f"{key}_s"] = rows_in_order.contiguous()  # [n, H], slots stacked
                blocks, start = [], 0
                for count in counts:
                    blocks.append(rows_in_order[start : start + count].T.reshape(-1))  # [H, n_q] flattened
                    start += count
                tables[f"{key}_p"] = torch.cat(blocks)
                dim = mul * sum(ir.dim for _, ir in irreps)
                self.operands[key] = _Operand(key, counts, comps, dim, covers=len(classes) == 1)
        self.tables = TableCache(tables)

    def _check(self, *operands: tuple[torch.Tensor, str]) -> dict[str, torch.Tensor]:
        """Guard the C call: CPU, one float dtype, contiguous ``[N, dim]`` of each operand's layout."""
        x = operands[0][0]
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"the fused backend takes float32 or float64, got {x.dtype}")
        if not self.a0_off.is_cpu:
            raise RuntimeError(f"the fused backend runs on the CPU; this module's buffers are on {self.a0_off.device}")
        for tensor, key in operands:
            if not tensor.is_cpu or tensor.dtype != x.dtype or not tensor.is_contiguous():
                got = f"{tensor.dtype} on {tensor.device}, contiguous={tensor.is_contiguous()}"
                raise RuntimeError(f"the fused backend needs contiguous CPU tensors of one dtype, got {got}")
            if tensor.dim() != 2 or tensor.shape != (x.shape[0], self.operands[key].dim):
                raise ValueError(f"expected [{x.shape[0]}, {self.operands[key].dim}], got {tuple(tensor.shape)}")
        return self.tables.get(x.dtype, x.device)

    def _operand_args(self, key: str, tables: tuple[torch.Tensor, ...]) -> list[Any]:
        op = self.operands[key]
        args: list[Any] = [getattr(self, f"{key}_off").data_ptr(), getattr(self, f"{key}_str").data_ptr()]
        return args + [getattr(self, f"{key}_cnt").data_ptr(), op.comps, op.dim, *(t.data_ptr() for t in tables)]

    def _new(self, key: str, n: int, like: torch.Tensor) -> torch.Tensor:
        op = self.operands[key]
        fill = torch.empty if op.covers and op.comps == 1 else torch.zeros  # components are summed into it
        return fill(n, op.dim, dtype=like.dtype)

    def _call(self, fn: Any, args: list[Any]) -> None:
        status = fn(*args)
        if status:
            raise MemoryError(f"the fused kernel failed (status {status}): could not allocate its per-thread buffers")

    def run(self, x: torch.Tensor, y: torch.Tensor, a: str, b: str, o: str) -> torch.Tensor:
        """``product(x, y)``: contiguous ``[N, dim]`` features of operands a and b -> operand o."""
        t = self._check((x, a), (y, b))
        n = x.shape[0]
        out = self._new(o, n, x)
        suffix = "f32" if x.dtype == torch.float32 else "f64"
        args: list[Any] = [x.data_ptr(), y.data_ptr(), out.data_ptr(), n * self.desc.mul, self.desc.mul]
        args += [torch.get_num_threads(), self.parts, self.reduced_points]
        args += self._operand_args(a, (t[f"{a}_s"],)) + self._operand_args(b, (t[f"{b}_s"],))
        args += self._operand_args(o, (t[f"{o}_p"],))
        self._call(getattr(native_library(), f"gaunt_grid_product_{suffix}"), args)
        return out

    def run_backward(
        self, x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, a: str, b: str, o: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of ``product(x, y)`` (operands a, b -> o) with respect to x and y for the output gradient g."""
        t = self._check((x, a), (y, b), (g, o))
        n = x.shape[0]
        gx, gy = self._new(a, n, x), self._new(b, n, x)
        suffix = "f32" if x.dtype == torch.float32 else "f64"
        args: list[Any] = [x.data_ptr(), y.data_ptr(), g.data_ptr(), gx.data_ptr(), gy.data_ptr()]
        args += [n * self.desc.mul, self.desc.mul, torch.get_num_threads(), self.parts, self.reduced_points]
        args += self._operand_args(a, (t[f"{a}_s"], t[f"{a}_p"])) + self._operand_args(b, (t[f"{b}_s"], t[f"{b}_p"]))
        args += self._operand_args(o, (t[f"{o}_s"],))
        self._call(getattr(native_library(), f"gaunt_grid_product_{suffix}_backward"), args)
        return gx, gy


def _flops_per_product(desc: GauntDescriptor, parts: dict[str, list[list[int]]], points: int) -> float:
    """Multiply-adds x 2 of one product: the transforms over the kept points and the part products."""
    present = {
        side: [{parts[side][0][r] for r in cls.sh_rows()} for cls in classes]
        for side, classes in (("a", desc.classes1), ("b", desc.classes2), ("o", desc.classes_out))
    }
    transforms = sum(
        len(parts[side]) * c.dim
        for side, group in (("a", desc.classes1), ("b", desc.classes2), ("o", desc.classes_out))
        for c in group
    )
    comps = max(len(p) for p in parts.values())
    products = 0
    for i1, i2, io in desc.class_pairs:
        a, b, o = present["a"][i1], present["b"][i2], present["o"][io]
        products += comps * sum(1 for j in a for k in b if j ^ k in o)
    return 2.0 * points * (transforms + products)


class FusedProducts(nn.Module):
    """A sum of fused bilinear products (one per class pair), e3nn layout to e3nn layout."""

    def __init__(self, desc: GauntDescriptor, samples: Samples, functions: dict[str, list[Callable]]) -> None:
        super().__init__()
        self.desc = desc
        self.points = samples.points.shape[0]
        self.plan = _Plan(desc, samples, functions)
        self.expand = {}
        mul = desc.mul
        for side, irreps, own in (("a", desc.irreps_in1, desc.mul1), ("b", desc.irreps_in2, desc.mul2)):
            if own != mul:  # multiplicity 1, broadcast: an index that repeats each irrep C times
                starts = [sl.start for sl in irreps.slices()]
                index = [start + m for (_, ir), start in zip(irreps, starts) for _ in range(mul) for m in range(ir.dim)]
                self.register_buffer(f"{side}_expand", torch.tensor(index, dtype=torch.int64), persistent=False)
                self.expand[side] = True
        self.launches = len(desc.class_pairs) + 2

    def flops(self, products: int) -> float:
        """Floating-point operations of one forward call on ``products`` (batch x channel) products."""
        return products * self.plan.flops_per_product

    def _prepare(self, x: torch.Tensor, side: str, n: int) -> torch.Tensor:
        if side in self.expand:
            x = x.index_select(1, getattr(self, f"{side}_expand"))
        if x.shape[0] != n:
            x = x.expand(n, x.shape[1])
        return x.contiguous()

    @torch.compiler.disable  # an opaque C call: torch.compile runs this module eagerly, between graphs
    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        n = max(x1.shape[0], x2.shape[0])
        x1, x2 = self._prepare(x1, "a", n), self._prepare(x2, "b", n)
        records = torch.is_grad_enabled() and (x1.requires_grad or x2.requires_grad)
        out = None
        for i1, i2, io in self.desc.class_pairs:
            keys = (f"a{i1}", f"b{i2}", f"o{io}")
            z = _FusedProduct.apply(x1, x2, self.plan, *keys) if records else self.plan.run(x1, x2, *keys)
            out = z if out is None else out + z
        return out  # type: ignore[return-value]

    @property
    def axes(self) -> tuple[int, ...]:
        """The coordinate mirrors whose parity parts the kernel uses."""
        return self.plan.axes


class FusedGridGaunt(FusedProducts):
    """Sphere-grid Gaunt product in one fused C kernel, e3nn layout to e3nn layout (CPU only).

    Shape:
        ``x1 [N1, irreps_in1.dim]``, ``x2 [N2, irreps_in2.dim]`` with N1, N2 equal or 1;
        returns ``[N, irreps_out.dim]``.

    The kernel is compiled on first use (:mod:`gaunt_tp.ops.native`); constructing the module
    does not build it, calling it does (and raises :class:`gaunt_tp.ops.native.NativeUnavailable`
    where it cannot be built).
    """

    def __init__(self, desc: GauntDescriptor) -> None:
        harmonics = harmonic_values(max(desc.lmax1, desc.lmax2, desc.lmax_out))
        samples = grid_samples(smallest_grid(desc.lmax1 + desc.lmax2 + desc.lmax_out), desc.lmax_out)
        super().__init__(desc, samples, {"a": [harmonics], "b": [harmonics], "o": [harmonics]})


class FusedOddProduct(FusedProducts):
    """The parity-odd product ``r . (grad f x grad g)`` (:class:`gaunt_tp.ops.odd.OddPathProduct`) in the kernel.

    ``(r x grad f) . grad g`` is the sum over the Cartesian components c of
    ``(r x grad f)_c (grad g)_c``; each component function is even or odd under every
    coordinate mirror, so the kernel takes the three components as extra slots of the inputs
    (with their own parity parts), pairs them up one by one and sums them into the output.

    Shape:
        as :class:`FusedGridGaunt`, for a descriptor built with ``odd=True``.
    """

    def __init__(self, desc: GauntDescriptor) -> None:
        if not desc.odd:
            raise ValueError("FusedOddProduct needs a descriptor built with odd=True")
        lmax_in = max(desc.lmax1, desc.lmax2)
        harmonics = harmonic_values(desc.lmax_out)

        memo: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}  # the six components share their points

        def gradients_and_curls(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            key = points.detach().to(torch.float64).numpy().tobytes()
            if key not in memo:
                grads = harmonic_gradients(lmax_in, points)  # [P, n_all, 3]
                memo[key] = grads, torch.linalg.cross(points[:, None, :].expand_as(grads), grads, dim=-1)
            return memo[key]

        def gradient(c: int) -> Callable[[torch.Tensor], torch.Tensor]:
            return lambda points: gradients_and_curls(points)[0][:, :, c]

        def curl(c: int) -> Callable[[torch.Tensor], torch.Tensor]:
            return lambda points: gradients_and_curls(points)[1][:, :, c]

        samples = grid_samples(smallest_grid(desc.lmax1 + desc.lmax2 + desc.lmax_out - 1), desc.lmax_out)
        curls, gradients = [curl(c) for c in range(3)], [gradient(c) for c in range(3)]
        super().__init__(desc, samples, {"a": curls, "b": gradients, "o": [harmonics]})
