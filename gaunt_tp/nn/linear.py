"""Channel mixing per irrep: e3nn's ``o3.Linear`` and its element-dependent variant, in fewer operations.

Both compute the same function as the e3nn module they are named after and hold the same
weights in the same flat layout (e3nn's state dicts load into them; theirs into e3nn's with
``strict=False``), but each irrep costs one broadcast matmul in e3nn's ``[mul, 2l+1]`` layout
instead of e3nn's generated code (reshapes, permutes and einsums per instruction). In a potential,
where many small operations dominate, that matters (``benchmarks/bench_potential.py`` times the whole model).
"""

from __future__ import annotations

from typing import Any

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.nn.channel_irreps import component_rows
from gaunt_tp.ops.descriptor import as_irreps
from gaunt_tp.ops.tables import TableCache

__all__ = ["ElementLinear", "EquivariantLinear", "RowsLinear"]


def _instructions(irreps_in: o3.Irreps, irreps_out: o3.Irreps) -> list[tuple[int, int]]:
    """(input irrep, output irrep) pairs of equal irreps, in e3nn's weight order; pairs with a multiplicity 0
    hold no weights and are left out (the same flat weight layout)."""
    return [(i, j) for i, (m, a) in enumerate(irreps_in) for j, (n, b) in enumerate(irreps_out) if a == b and m * n]


def _drop_e3nn_keys(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Accept state dicts of e3nn's modules: their empty ``bias`` and ``output_mask`` have no counterpart."""
    for key in ("bias", "output_mask"):
        value = state_dict.get(prefix + key)
        if value is not None and (key == "output_mask" or value.numel() == 0):
            del state_dict[prefix + key]


def _scales(block_shapes: list[tuple[int, int]], instructions: list[tuple[int, int]]) -> TableCache:
    """Each weight entry's ``1 / sqrt(fan_in)`` as one float64 vector (flat weight order).

    An output's fan-in is the number of rows of all blocks that feed it (e3nn's ``path_normalization="element"``).
    """
    fan_in: dict[int, int] = {}
    for (_, j), (rows, _) in zip(instructions, block_shapes):
        fan_in[j] = fan_in.get(j, 0) + rows
    parts = [
        torch.full((a * b,), fan_in[j] ** -0.5, dtype=torch.float64)
        for (_, j), (a, b) in zip(instructions, block_shapes)
    ]
    return TableCache({"scale": torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)})


def _blocks(weight: torch.Tensor, tables: TableCache, block_shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """The flat weight scaled and cut into its ``[rows, cols]`` blocks (one multiply, one split)."""
    scaled = weight * tables.get(weight.dtype, weight.device)["scale"]
    if len(block_shapes) == 1:
        return [scaled.view(*block_shapes[0])]
    return [w.view(a, b) for w, (a, b) in zip(scaled.split([a * b for a, b in block_shapes]), block_shapes)]


def _mix(x: torch.Tensor, weight: torch.Tensor, mul_in: int, dim: int) -> torch.Tensor:
    """``[n, mul_in * dim]`` (e3nn layout) times ``weight [mul_in, mul_out]`` -> ``[n, mul_out, dim]``."""
    if dim == 1:
        return (x @ weight)[:, :, None]
    return (x.reshape(x.shape[0], mul_in, dim).transpose(1, 2) @ weight).transpose(1, 2)


class EquivariantLinear(nn.Module):
    """``out_j = sum_{i: ir_i = ir_j} W_ij x_i / sqrt(fan_in_j)`` per irrep, no biases (e3nn's ``o3.Linear``).

    ``W_ij`` is ``[mul_i, mul_j]``, initialised N(0, 1); ``fan_in_j`` is the sum of ``mul_i`` over
    the inputs with the same irrep (e3nn's ``path_normalization="element"``). Outputs that no
    input irrep reaches are 0.

    Args:
        irreps_in, irreps_out: e3nn Irreps (or strings).

    Parameters:
        ``weight [sum_ij mul_i mul_j]``: the blocks ``W_ij`` flattened in e3nn's order.

    Shape:
        ``[..., irreps_in.dim]`` -> ``[..., irreps_out.dim]``, e3nn layout.

    Example:
        >>> import torch
        >>> lin = EquivariantLinear("4x0e + 4x1o", "8x0e + 2x1o")
        >>> lin(torch.randn(10, 16)).shape
        torch.Size([10, 14])
    """

    def __init__(self, irreps_in: o3.Irreps | str, irreps_out: o3.Irreps | str) -> None:
        super().__init__()
        self.irreps_in = as_irreps(irreps_in, "irreps_in")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.instructions = _instructions(self.irreps_in, self.irreps_out)
        self.shapes = [(self.irreps_in[i].mul, self.irreps_out[j].mul) for i, j in self.instructions]
        self.in_blocks, self.out_blocks = _blocks_of(self.irreps_in), _blocks_of(self.irreps_out)
        self.in_dim, self.out_dim = self.irreps_in.dim, self.irreps_out.dim
        self.weight = nn.Parameter(torch.randn(sum(a * b for a, b in self.shapes)))
        self.tables = _scales(self.shapes, self.instructions)
        # one block of scalars (readouts, embeddings): a plain matrix product, no splitting or merging
        self.dense = len(self.irreps_in) == len(self.irreps_out) == len(self.instructions) == 1
        self.dense = self.dense and self.irreps_in[0].ir.dim == 1
        self._register_load_state_dict_pre_hook(_drop_e3nn_keys, with_module=True)

    def blocks(self) -> list[torch.Tensor]:
        """The weight blocks ``W_ij [mul_i, mul_j]`` times their ``1 / sqrt(fan_in_j)``, instruction order."""
        return _blocks(self.weight, self.tables, self.shapes)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"input must be [..., {self.in_dim}] for {self.irreps_in}, got {tuple(x.shape)}")
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_dim)
        if self.dense:
            return (x @ self.blocks()[0]).reshape(*lead, self.out_dim)
        parts = _split(x, self.in_blocks)
        outs: list[torch.Tensor | None] = [None] * len(self.out_blocks)
        for (i, j), w in zip(self.instructions, self.blocks()):
            term = _mix(parts[i], w, *self.in_blocks[i])
            outs[j] = term if outs[j] is None else outs[j] + term
        return _merge(outs, self.out_blocks, x).reshape(*lead, self.out_dim)


class RowsLinear(EquivariantLinear):
    """:class:`EquivariantLinear` with its input or its output in the convolution kernels' rows layout.

    Rows layout with C channels (the layout of :meth:`gaunt_tp.nn.cg_blocks.CGConvolution.forward_rows`):
    ``[N, R, C]``, irrep i of multiplicity ``k_i C`` held as ``k_i (2 l_i + 1)`` rows of C channels, rows
    ordered by irrep, then block k, then component m; channel ``k C + c`` of irrep i, component m, is row
    ``offset_i + k (2 l_i + 1) + m``, column c. Working there saves the transpositions to and from e3nn's
    ``[mul, 2l+1]`` layout around the kernels: the map is one batched matrix product over the rows.

    Same function, weights and state dict as :class:`EquivariantLinear` (the layout is not a parameter).
    Each input irrep must feed exactly one output irrep and every output be fed (distinct irreps); the
    side in e3nn's layout must have one multiplicity.

    Args:
        irreps_in, irreps_out: e3nn Irreps (or strings).
        rows: ``"in"`` (input in rows, multiplicities multiples of ``channels``) or ``"out"`` (output in
            rows, multiplicity ``channels``).
        channels: C, the width of a row.
        output_scale: a constant factor on the output, applied to the weights' normalisation (no extra
            operation on the features; the parameters stay those of :class:`EquivariantLinear`).

    Shape:
        ``rows="in"``: ``[N, R, C]`` -> ``[N, irreps_out.dim]``; ``rows="out"``: ``[N, irreps_in.dim]`` ->
        ``[N, R, C]`` (``R = irreps_out.dim / C``; a transposed view, which the kernels copy once).
    """

    def __init__(
        self, irreps_in: o3.Irreps | str, irreps_out: o3.Irreps | str, *, rows: str, channels: int,
        output_scale: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__(irreps_in, irreps_out)
        if output_scale != 1.0:
            self.tables = TableCache({"scale": self.tables.masters["scale"] * float(output_scale)})
        if rows not in ("in", "out"):
            raise ValueError(f"rows must be 'in' or 'out', got {rows!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int >= 1, got {channels!r}")
        ins, outs = [i for i, _ in self.instructions], [j for _, j in self.instructions]
        if sorted(ins) != list(range(len(self.irreps_in))) or sorted(outs) != list(range(len(self.irreps_out))):
            raise ValueError(
                f"{self.irreps_in} -> {self.irreps_out}: each irrep must meet exactly one of the other side"
            )
        row_side, flat_side = (self.irreps_in, self.irreps_out) if rows == "in" else (self.irreps_out, self.irreps_in)
        if any(mul % channels or (rows == "out" and mul != channels) for mul, _ in row_side):
            raise ValueError(f"{row_side}: multiplicities must be multiples of {channels} (equal to it for rows='out')")
        if len({mul for mul, _ in flat_side}) != 1:
            raise ValueError(f"{flat_side} must have one multiplicity")
        self.rows, self.channels, width = rows, channels, flat_side[0].mul
        # the flat weight is the blocks [mul_i, mul_j] in instruction order; viewed as [blocks, C, C'] (rows='in':
        # a block of k_i C rows is k_i matrices) or [blocks, C', C] (rows='out'): the matrix of each row
        side = 0 if rows == "in" else 1
        k = [row_side[pair[side]].mul // channels for pair in self.instructions]
        first = [sum(k[:p]) for p in range(len(k))]
        flat_offsets = [sum(ir.dim for _, ir in flat_side[:j]) for j in range(len(flat_side))]
        matrix_of_row, component_of_row = [], []  # and the component of the flat side each row meets
        for p, pair in sorted(enumerate(self.instructions), key=lambda item: item[1][side]):
            ir = row_side[pair[side]].ir
            for b in range(k[p]):
                matrix_of_row += [first[p] + b] * ir.dim
                component_of_row += [flat_offsets[pair[1 - side]] + m for m in range(ir.dim)]
        components = sum(ir.dim for _, ir in flat_side)
        # entry (component, channel) of the flat side, component-major, is e3nn position e3nn_position[...]
        e3nn_position = torch.tensor(component_rows(flat_side, width), dtype=torch.int64)
        rows_of = torch.tensor(component_of_row, dtype=torch.int64)
        if rows == "out":  # gather the input straight into row order
            gather = e3nn_position.view(components, width).index_select(0, rows_of).flatten()
        else:
            gather = e3nn_position.argsort()
        self.register_buffer("matrix_of_row", torch.tensor(matrix_of_row, dtype=torch.int64), persistent=False)
        self.register_buffer("component_of_row", rows_of, persistent=False)
        self.register_buffer("gather", gather, persistent=False)
        # rows='in': several rows (blocks k) add up to one component, or the rows are in another order
        self.summed = component_of_row != list(range(components))
        self.reordered = gather.tolist() != list(range(len(gather)))  # either side; False for scalars alone
        self.components, self.width = components, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, n, r = self.channels, x.shape[0], len(self.matrix_of_row)
        scaled = self.weight * self.tables.get(self.weight.dtype, self.weight.device)["scale"]
        if self.rows == "out":
            if x.dim() != 2 or x.shape[1] != self.in_dim:
                raise ValueError(f"input must be [N, {self.in_dim}] for {self.irreps_in}, got {tuple(x.shape)}")
            w = scaled.view(-1, self.width, c).index_select(0, self.matrix_of_row)  # [R, C', C]
            flat = (x.index_select(1, self.gather) if self.reordered else x).view(n, r, self.width)
            return torch.bmm(flat.transpose(0, 1), w).transpose(0, 1)  # one matrix product per row
        if x.shape != (n, r, c):
            raise ValueError(f"input must be rows [N, {r}, {c}] for {self.irreps_in}, got {tuple(x.shape)}")
        y = torch.bmm(x.transpose(0, 1), scaled.view(-1, c, self.width).index_select(0, self.matrix_of_row))
        if self.summed:  # [R, N, C'] -> [components, N, C']
            y = y.new_zeros(self.components, n, self.width).index_add(0, self.component_of_row, y)
        y = y.transpose(0, 1).flatten(1)
        return y.index_select(1, self.gather) if self.reordered else y


class ElementLinear(nn.Module):
    """A linear map per chemical element: ``out_j = sum_{i, e} onehot_e W_ije x_i / sqrt(fan_in_j)``.

    e3nn's ``FullyConnectedTensorProduct(irreps_in, f"{num_elements}x0e", irreps_out)`` with a
    one-hot second input (MACE's self-connection): ``W_ije`` is ``[mul_i, num_elements, mul_j]``
    for equal irreps i, j, initialised N(0, 1); ``fan_in_j = num_elements * sum_i mul_i``. The
    second input may be any ``[n, num_elements]`` scalars, not only one-hot rows. A block of a inputs and b outputs
    of dimension d, for k elements, is ``(x outer elements) @ W`` (a k d b operations per atom, a k d numbers kept),
    or, where that is both cheaper and smaller (k + d < k d and b < k d: many elements, as MACE-MP-0's 89, with
    2.9-6.5x fewer operations for 128 channels and d = 3-7), each atom's weights ``elements @ W`` first (k a b + a b d
    operations, a b numbers).

    Args:
        irreps_in, irreps_out: e3nn Irreps (or strings).
        num_elements: length of the element encoding.

    Parameters:
        ``weight``: the blocks ``W_ije`` flattened in e3nn's order.

    Shape:
        ``forward(x [n, irreps_in.dim], elements [n, num_elements])`` -> ``[n, irreps_out.dim]``.

    Example:
        >>> import torch
        >>> skip = ElementLinear("4x0e + 4x1o", 3, "4x0e + 4x1o")
        >>> onehot = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).float()
        >>> skip(torch.randn(2, 16), onehot).shape
        torch.Size([2, 16])
    """

    def __init__(self, irreps_in: o3.Irreps | str, num_elements: int, irreps_out: o3.Irreps | str) -> None:
        super().__init__()
        if not isinstance(num_elements, int) or num_elements < 1:
            raise ValueError(f"num_elements must be an int >= 1, got {num_elements!r}")
        self.irreps_in = as_irreps(irreps_in, "irreps_in")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.num_elements = num_elements
        self.instructions = _instructions(self.irreps_in, self.irreps_out)
        self.shapes = [(self.irreps_in[i].mul, self.irreps_out[j].mul) for i, j in self.instructions]
        self.weight = nn.Parameter(torch.randn(sum(a * num_elements * b for a, b in self.shapes)))
        self.block_shapes = [(a * num_elements, b) for a, b in self.shapes]  # rows: (input channel, element)
        self.in_blocks, self.out_blocks = _blocks_of(self.irreps_in), _blocks_of(self.irreps_out)
        self.in_dim = self.irreps_in.dim
        self.tables = _scales(self.block_shapes, self.instructions)
        self._register_load_state_dict_pre_hook(_drop_e3nn_keys, with_module=True)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}, num_elements={self.num_elements}"

    def forward(self, x: torch.Tensor, elements: torch.Tensor) -> torch.Tensor:
        n, k = x.shape[0], self.num_elements
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must be [n, {self.in_dim}] for {self.irreps_in}, got {tuple(x.shape)}")
        if elements.shape != (n, k):
            raise ValueError(f"elements must be [n, num_elements] = [{n}, {k}], got {tuple(elements.shape)}")
        parts = _split(x, self.in_blocks)
        outs: list[torch.Tensor | None] = [None] * len(self.out_blocks)
        for (i, j), (a, b), w in zip(
            self.instructions, self.shapes, _blocks(self.weight, self.tables, self.block_shapes)
        ):
            d = self.in_blocks[i][1]
            # each atom's weights first where that takes fewer operations (k a b + a b d per atom against a k d b) and
            # less memory (a b per atom against a k d)
            if k + d < k * d and k * d > b:
                # elements [n, k] times the weights [a, k, b] (e3nn's order: input channel, then element) -> [n, a, b]
                per_atom = (elements @ w.view(a, k, b).transpose(0, 1).reshape(k, a * b)).view(n, a, b)
                term = torch.bmm(parts[i].reshape(n, a, d).transpose(1, 2), per_atom).transpose(1, 2)
            else:  # x_i [n, a, d] times elements [n, k] -> [n, a k, d], then one product with the weights
                xe = (parts[i].reshape(n, a, 1, d) * elements.view(n, 1, k, 1)).reshape(n, a * k * d)
                term = _mix(xe, w, a * k, d)
            outs[j] = term if outs[j] is None else outs[j] + term
        return _merge(outs, self.out_blocks, x)


def _blocks_of(irreps: o3.Irreps) -> tuple[tuple[int, int], ...]:
    """``(mul, 2l + 1)`` of each irrep of ``irreps``, as plain ints: what the forward passes read (plain ints, not
    e3nn objects, so that ``torch.compile`` can guard on them)."""
    return tuple((int(mul), int(ir.dim)) for mul, ir in irreps)


def _split(x: torch.Tensor, blocks: tuple[tuple[int, int], ...]) -> tuple[torch.Tensor, ...]:
    """``[n, sum mul * dim]`` -> one ``[n, mul * dim]`` view per ``(mul, dim)`` block (one split: its backward is
    one concatenation)."""
    return x.split([mul * dim for mul, dim in blocks], dim=1)


def _merge(outs: list[torch.Tensor | None], blocks: tuple[tuple[int, int], ...], like: torch.Tensor) -> torch.Tensor:
    """Concatenate ``[n, mul, dim]`` outputs (zeros where None), one per ``(mul, dim)`` block, into
    ``[n, sum mul * dim]``."""
    n = like.shape[0]
    flat = [(o.flatten(1) if o is not None else like.new_zeros(n, mul * dim)) for o, (mul, dim) in zip(outs, blocks)]
    return flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
