"""What a Gaunt tensor product computes: irreps, layout, parity classes and paths.

A descriptor is pure bookkeeping (no tensors of coefficients): it validates the
irreps, says which paths exist, and moves features between e3nn's layout and the
per-class coefficient vectors that the backends work on.

Parity classes
    An irrep (l, p) has class ``s = p * (-1)**l``: +1 for natural parity
    (0e, 1o, 2e, ...), -1 for pseudo parity (0o, 1e, 2o, ...). On a Gaunt path
    (l1+l2+l3 even) with p3 = p1 p2 the classes multiply: s3 = s1 s2. So the
    irreps of one class of an input are the coefficients of one function on the
    sphere, and the product splits into at most four function products, one for
    each pair of input classes, landing in the output class s1 s2.

Layout
    e3nn's ``mul_ir`` layout: irrep ``i`` occupies ``[mul_i, 2 l_i + 1]`` flattened.
    A class vector ``[..., mul, n_s]`` concatenates the components (m = -l..l) of
    that class's irreps in the order they appear in the irreps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from e3nn import o3

from gaunt_tp.math.gaunt import is_gaunt_path

__all__ = ["ClassLayout", "GauntDescriptor", "as_irreps", "parity_class", "path_kinds"]


def as_irreps(irreps: o3.Irreps | str, name: str) -> o3.Irreps:
    """Parse ``irreps`` (e3nn ``Irreps`` or string), raising errors that name the argument."""
    if isinstance(irreps, o3.Irreps):
        return irreps
    if not isinstance(irreps, str):
        raise TypeError(f"{name} must be an e3nn Irreps or a string like '32x0e + 32x1o', got {type(irreps).__name__}")
    try:
        return o3.Irreps(irreps)
    except (ValueError, AssertionError) as err:
        raise ValueError(
            f"{name}={irreps!r} is not a valid irreps string (expected e.g. '32x0e + 32x1o'): {err}"
        ) from None


def parity_class(l: int, p: int) -> int:
    """+1 for natural parity (p = (-1)**l), -1 for pseudo parity."""
    return p * (-1) ** l


@dataclass(frozen=True)
class ClassLayout:
    """The irreps of one parity class of one side, in irreps order.

    Attributes:
        sign: the class, +1 (natural) or -1 (pseudo).
        irrep_indices: positions of the class's irreps in the full irreps.
        ls: their degrees.
        lmax: the largest of ``ls``.
        dim: length of the class vector, ``sum(2l+1)``.
    """

    sign: int
    irrep_indices: tuple[int, ...]
    ls: tuple[int, ...]

    @property
    def lmax(self) -> int:
        return max(self.ls)

    @property
    def dim(self) -> int:
        return sum(2 * l + 1 for l in self.ls)

    def sh_rows(self) -> list[int]:
        """For each entry of the class vector, its index in a vector of all degrees (``l**2 + l + m``)."""
        return [l * l + k for l in self.ls for k in range(2 * l + 1)]


def _class_layouts(irreps: o3.Irreps) -> tuple[ClassLayout, ...]:
    out = []
    for sign in (1, -1):
        members = [(i, ir.l) for i, (_, ir) in enumerate(irreps) if parity_class(ir.l, ir.p) == sign]
        if members:
            out.append(ClassLayout(sign, tuple(i for i, _ in members), tuple(l for _, l in members)))
    return tuple(out)


def path_kinds(
    irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, ir_out: o3.Irrep
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Input irrep pairs ``(i1, i2)`` reaching ``ir_out`` by an even (Gaunt) and by an odd path."""
    even, odd = [], []
    for i1, (_, ir1) in enumerate(irreps_in1):
        for i2, (_, ir2) in enumerate(irreps_in2):
            if ir1.p * ir2.p != ir_out.p or not abs(ir1.l - ir2.l) <= ir_out.l <= ir1.l + ir2.l:
                continue
            (even if is_gaunt_path(ir1.l, ir2.l, ir_out.l) else odd).append((i1, i2))
    return even, odd


def _blocks(irreps: o3.Irreps) -> tuple[tuple[int, int, int], ...]:
    """(start, mul, 2l+1) of each irrep block in e3nn's layout."""
    return tuple((sl.start, mul, ir.dim) for (mul, ir), sl in zip(irreps, irreps.slices()))


def _check_single_mul(irreps: o3.Irreps, name: str) -> int:
    if len(irreps) == 0:
        raise ValueError(f"{name} is empty; a Gaunt product needs at least one irrep")
    muls = {mul for mul, _ in irreps}
    if len(muls) != 1:
        raise ValueError(
            f"every irrep of {name} must have the same multiplicity (channels), got {irreps}; "
            "mix channels first with a linear layer"
        )
    seen = set()
    for _, ir in irreps:
        if ir in seen:
            raise ValueError(f"{name}={irreps} lists {ir} twice; merge the blocks (each (l, p) may appear once)")
        seen.add(ir)
    mul = muls.pop()
    if mul < 1:
        raise ValueError(f"{name}={irreps} has multiplicity {mul}; expected >= 1")
    return mul


class GauntDescriptor:
    """Validated description of a channel-wise Gaunt product.

    Args:
        irreps_in1, irreps_in2: inputs; every irrep of one input has the same
            multiplicity, the two multiplicities are equal or one is 1 (broadcast).
        irreps_out: requested outputs, each with the common multiplicity and each
            reached by at least one path of the described kind.
        odd: describe the parity-odd product (paths with l1+l2+l3 odd, whose class
            is minus the product of the input classes) instead of the Gaunt product.

    Attributes:
        mul: the output multiplicity C. ``mul1``/``mul2``: those of the inputs.
        classes1, classes2, classes_out: :class:`ClassLayout` per parity class.
        class_pairs: ``(i1, i2, io)`` indices into ``classes1/2/out`` of the
            function products that contribute.
        paths: ``(i1, i2, io)`` irrep indices of every Gaunt path.

    Example:
        >>> d = GauntDescriptor("8x0e + 8x1o", "8x0e + 8x1o", "8x0e + 8x1o + 8x2e")
        >>> d.mul, len(d.paths), d.lmax1, d.lmax2, d.lmax_out
        (8, 5, 1, 1, 2)
    """

    def __init__(
        self,
        irreps_in1: o3.Irreps | str,
        irreps_in2: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        odd: bool = False,
    ) -> None:
        self.odd = odd
        self.irreps_in1 = as_irreps(irreps_in1, "irreps_in1")
        self.irreps_in2 = as_irreps(irreps_in2, "irreps_in2")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.mul1 = _check_single_mul(self.irreps_in1, "irreps_in1")
        self.mul2 = _check_single_mul(self.irreps_in2, "irreps_in2")
        if self.mul1 != self.mul2 and 1 not in (self.mul1, self.mul2):
            raise ValueError(
                f"input multiplicities must be equal or one of them 1 (broadcast), got {self.mul1} "
                f"({self.irreps_in1}) and {self.mul2} ({self.irreps_in2})"
            )
        self.mul = max(self.mul1, self.mul2)
        mul_out = _check_single_mul(self.irreps_out, "irreps_out")
        if mul_out != self.mul:
            raise ValueError(
                f"irreps_out={self.irreps_out} has multiplicity {mul_out}; a channel-wise product of "
                f"{self.irreps_in1} and {self.irreps_in2} gives multiplicity {self.mul}"
            )
        self.paths = self._find_paths()
        # plain-int copies for forward passes (torch.compile cannot guard on e3nn's Irrep objects)
        self.dim1, self.dim2, self.dim_out = self.irreps_in1.dim, self.irreps_in2.dim, self.irreps_out.dim
        self.blocks1 = _blocks(self.irreps_in1)
        self.blocks2 = _blocks(self.irreps_in2)
        self.num_out = len(self.irreps_out)
        self.classes1 = _class_layouts(self.irreps_in1)
        self.classes2 = _class_layouts(self.irreps_in2)
        self.classes_out = _class_layouts(self.irreps_out)
        signs_out = [c.sign for c in self.classes_out]
        flip = -1 if odd else 1  # an odd path lands in the opposite class
        self.class_pairs = tuple(
            (i1, i2, signs_out.index(flip * c1.sign * c2.sign))
            for i1, c1 in enumerate(self.classes1)
            for i2, c2 in enumerate(self.classes2)
            if flip * c1.sign * c2.sign in signs_out
        )

    def _find_paths(self) -> tuple[tuple[int, int, int], ...]:
        paths = []
        for io, (_, ir3) in enumerate(self.irreps_out):
            even, odd = path_kinds(self.irreps_in1, self.irreps_in2, ir3)
            mine, other = (odd, even) if self.odd else (even, odd)
            paths += [(i1, i2, io) for i1, i2 in mine]
            if mine:
                continue
            if other and not self.odd:
                names = ", ".join(f"{self.irreps_in1[i1].ir} x {self.irreps_in2[i2].ir}" for i1, i2 in other)
                raise ValueError(
                    f"output irrep {ir3} is reached only by parity-odd paths ({names}: l1+l2+l3 odd, like the "
                    "cross product 1o x 1o -> 1e). Gaunt products have no parity-odd paths: remove it from "
                    "irreps_out (GauntTensorProduct adds such paths with odd_paths=True)"
                )
            kind = "parity-odd (l1+l2+l3 odd)" if self.odd else "Gaunt (l1+l2+l3 even)"
            raise ValueError(
                f"output irrep {ir3} is not reached by any {kind} path from {self.irreps_in1} x {self.irreps_in2} "
                f"(needs p1*p2 = p3 and |l1-l2| <= l3 <= l1+l2)"
            )
        return tuple(paths)

    @property
    def lmax1(self) -> int:
        return max(ir.l for _, ir in self.irreps_in1)

    @property
    def lmax2(self) -> int:
        return max(ir.l for _, ir in self.irreps_in2)

    @property
    def lmax_out(self) -> int:
        return max(ir.l for _, ir in self.irreps_out)

    def __repr__(self) -> str:
        return f"GauntDescriptor({self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out})"

    # ---- layout -------------------------------------------------------------------------------

    def batch_shape(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Size:
        """Check the feature dims of both inputs and return their broadcast batch shape."""
        for name, x, dim in (("x1", x1, self.dim1), ("x2", x2, self.dim2)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() == 0 or x.shape[-1] != dim:
                irreps = self.irreps_in1 if name == "x1" else self.irreps_in2
                raise ValueError(f"{name} must have shape [..., {dim}] for irreps {irreps}, got {tuple(x.shape)}")
        if x1.dtype != x2.dtype:
            raise TypeError(f"x1 and x2 must have the same dtype, got {x1.dtype} and {x2.dtype}")
        if x1.shape[:-1] == x2.shape[:-1]:
            return x1.shape[:-1]  # the common case, without broadcast_shapes' overhead
        try:
            return torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
        except RuntimeError:
            raise ValueError(
                f"batch dims of x1 {tuple(x1.shape[:-1])} and x2 {tuple(x2.shape[:-1])} do not broadcast"
            ) from None

    @staticmethod
    def split_classes(
        x: torch.Tensor, blocks: tuple[tuple[int, int, int], ...], classes: tuple[ClassLayout, ...]
    ) -> list[torch.Tensor]:
        """e3nn layout ``[..., dim]`` (``blocks`` from ``blocks1``/``blocks2``) -> one ``[..., mul, n_s]`` per class."""
        # one split (its backward is one concatenation) rather than slices (a zero-filled gradient each)
        parts = x.split([m * d for _, m, d in blocks], dim=-1)
        blocks = [part.reshape(*x.shape[:-1], m, d) for part, (_, m, d) in zip(parts, blocks)]
        out = []
        for cls in classes:
            parts = [blocks[i] for i in cls.irrep_indices]
            out.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1))
        return out

    def merge_out(self, z: list[torch.Tensor]) -> torch.Tensor:
        """One class vector ``[..., C, n_s]`` per output class -> e3nn layout ``[..., irreps_out.dim]``."""
        pieces: list[torch.Tensor | None] = [None] * self.num_out
        for zc, cls in zip(z, self.classes_out):
            for i, block in zip(cls.irrep_indices, zc.split([2 * l + 1 for l in cls.ls], dim=-1)):
                pieces[i] = block.flatten(-2)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)  # type: ignore[arg-type]
