"""Clebsch-Gordan (e3nn) counterparts of the Gaunt blocks, for comparisons inside one model."""

from __future__ import annotations

import collections
import math

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.conventions import harmonic_power_table, vector_powers
from gaunt_tp.nn.channel_irreps import component_rows
from gaunt_tp.ops.conv_kernel import cached, coupled_sums
from gaunt_tp.ops.convolution import check_convolution_inputs, safe_unit_vectors
from gaunt_tp.ops.descriptor import as_irreps
from gaunt_tp.ops.native import native_error
from gaunt_tp.ops.tables import TableCache

__all__ = ["CGConvolution"]


class CGConvolution(nn.Module):
    """MACE's convolution: e3nn's 'uvu' TensorProduct on every Clebsch-Gordan path, scatter-summed.

    Same interface as :class:`gaunt_tp.ops.GauntConvolution`, with one radial weight per path
    and channel (e3nn's freedom) instead of one per edge degree and channel:
    ``weight_numel = (number of paths) * C``, laid out path-major as e3nn expects. The edge
    harmonics are component-normalised (``sum_m Y_lm^2 = 2l + 1``), as in MACE, so that each
    message has MACE's scale.

    Computed in coupled form: each edge's harmonics are contracted with a path's Wigner 3j symbol
    and e3nn's path weight first, ``T_e[p] = w_p sum_m2 C_p[m1, m2, m3] Y_{l2 m2}(u_e)``
    (``[2 l1 + 1, 2 l3 + 1]``, shared by the channels), then the sender's features with ``T_e[p]``,
    ``(2 l1 + 1)(2 l3 + 1)`` multiply-adds per path, edge and channel where e3nn's TensorProduct forms
    the ``(2 l1 + 1)(2 l2 + 1)`` outer product first. All the ``T_e[p]`` are one matmul from the tensor powers
    of the unit vector ``u_e`` (the harmonics are linear in them:
    :func:`gaunt_tp.math.conventions.harmonic_power_table`). The same function as e3nn's to rounding (tested).
    On CPUs (float32/float64, where gaunt-tp's C kernels build) the sums over edges and all their
    derivatives run in :func:`gaunt_tp.ops.conv_kernel.coupled_sums` without per-edge message buffers;
    elsewhere in PyTorch operations.

    ``separate_paths=True`` gives each path its own output block instead of summing the paths to each
    output irrep (MACE's ``irreps_mid``, mixed by the linear layer that follows): ``irreps_out`` becomes
    one block per path, ordered by the output irrep it reaches (``irreps_out.simplify()`` then has one
    block of ``k C`` channels for the k paths to each irrep), each path with e3nn's weight for a path
    alone in its output.

    Shape:
        ``forward(node_features [N, irreps_node.dim], edge_vectors [E, 3], edge_index [2, E],
        radial_weights [E, weight_numel])`` -> ``[N, irreps_out.dim]``.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps | str,
        irreps_sh: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        separate_paths: bool = False,
    ) -> None:
        super().__init__()
        self.irreps_node = as_irreps(irreps_node, "irreps_node")
        self.irreps_sh = as_irreps(irreps_sh, "irreps_sh")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        paths = [  # (node block, harmonic block, output block) of every Clebsch-Gordan path, e3nn's order
            (i1, i2, io)
            for i1, (_, ir1) in enumerate(self.irreps_node)
            for i2, (_, ir2) in enumerate(self.irreps_sh)
            for io, (_, ir3) in enumerate(self.irreps_out)
            if ir3 in ir1 * ir2
        ]
        if not paths:
            raise ValueError(f"no path from {self.irreps_node} x {self.irreps_sh} to {self.irreps_out}")
        if separate_paths:  # each path its own output block (MACE's irreps_mid), grouped by output irrep
            paths = sorted(paths, key=lambda path: path[2])
            self.irreps_out = o3.Irreps([self.irreps_out[io] for _, _, io in paths])
            paths = [(i1, i2, k) for k, (i1, i2, _) in enumerate(paths)]
        muls = {mul for mul, _ in (*self.irreps_node, *self.irreps_out)}
        if len(muls) != 1 or any(mul != 1 for mul, _ in self.irreps_sh):
            raise ValueError("node and output irreps need one multiplicity C; irreps_sh multiplicity 1")
        if any(ir.p != (-1) ** ir.l for _, ir in self.irreps_sh):
            raise ValueError(f"irreps_sh must be spherical harmonics (parity (-1)^l), got {self.irreps_sh}")
        self.channels = muls.pop()
        # e3nn's normalisation for 'component' irreps and 'element' paths, unit-variance inputs and one weight per
        # channel ('uvu' with multiplicity-1 harmonics): sqrt((2 l3 + 1) / number of paths into the same output block)
        self.weight_numel = len(paths) * self.channels
        self.paths = paths
        fan_in = collections.Counter(io for _, _, io in self.paths)
        couplings = []  # [2 l1 + 1, 2 l2 + 1, 2 l3 + 1] per path: e3nn's path weight times the 3j symbol
        for i1, i2, io in self.paths:
            l1, l2, l3 = self.irreps_node[i1].ir.l, self.irreps_sh[i2].ir.l, self.irreps_out[io].ir.l
            path_weight = ((2 * l3 + 1) / fan_in[io]) ** 0.5
            couplings.append(path_weight * o3.wigner_3j(l1, l2, l3, dtype=torch.float64))
        sh_slices = self.irreps_sh.slices()
        self.out_components = self.irreps_out.dim // self.channels
        self.node_dim, self.irreps_node_text = self.irreps_node.dim, str(self.irreps_node)
        self.out_blocks = tuple(ir.dim for _, ir in self.irreps_out)  # plain ints for the forward pass
        # e3nn's layout <-> the kernels' rows layout, for forward()
        rows_in = torch.tensor(component_rows(self.irreps_node, self.channels), dtype=torch.int64)
        rows_out = torch.tensor(component_rows(self.irreps_out, self.channels), dtype=torch.int64)
        self.register_buffer("rows_in", rows_in, persistent=False)
        self.register_buffer("rows_out_inverse", rows_out.argsort(), persistent=False)
        # the kernels' path table (o1, d1, o3, d3, toff): components counted per channel (component-major layout)
        in_offsets = [sum(ir.dim for _, ir in self.irreps_node[:i]) for i in range(len(self.irreps_node))]
        out_offsets = [sum(ir.dim for _, ir in self.irreps_out[:i]) for i in range(len(self.irreps_out))]
        rows, toff = [], 0
        for i1, _, io in self.paths:
            d1, d3 = self.irreps_node[i1].ir.dim, self.irreps_out[io].ir.dim
            rows.append((in_offsets[i1], d1, out_offsets[io], d3, toff))
            toff += d1 * d3
        self.path_rows, self.path_table = rows, torch.tensor(rows, dtype=torch.int64)
        # all paths' couplings from the harmonics in one matmul, couplings [E, Tsum] = sh [E, dim sh] @ lift, and the
        # harmonics (component-normalised) from the tensor powers of the edge's unit vector: one matmul from the powers
        lift = torch.zeros(self.irreps_sh.dim, toff, dtype=torch.float64)
        for cg, (_, i2, _), (_, d1, _, d3, t0) in zip(couplings, self.paths, rows):
            lift[sh_slices[i2], t0 : t0 + d1 * d3] = cg.permute(1, 0, 2).reshape(-1, d1 * d3)
        self.lmax_sh = max(ir.l for _, ir in self.irreps_sh)
        columns = [l * l + m for _, (l, _) in self.irreps_sh for m in range(2 * l + 1)]
        harmonics = harmonic_power_table(self.lmax_sh)[:, columns] * (4 * math.pi) ** 0.5
        self.tables = TableCache({"lift": harmonics @ lift})  # [sum_l 3^l, Tsum]
        self.use_kernel = native_error() is None

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        # before it computed in coupled form this module held an e3nn TensorProduct without trained weights (an
        # empty weight, an output mask): those entries of older model files carry nothing
        for name in ("tp.weight", "tp.output_mask"):
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.irreps_node} x {self.irreps_sh} -> {self.irreps_out}"

    def forward(
        self,
        node_features: torch.Tensor,
        edge_vectors: torch.Tensor,
        edge_index: torch.Tensor,
        radial_weights: torch.Tensor,
        *,
        radial_index: torch.Tensor | None = None,
        edge_cache: dict | None = None,
    ) -> torch.Tensor:
        """As :class:`gaunt_tp.ops.GauntConvolution`'s forward (``radial_index``: rows shared by edges;
        ``edge_cache``: the edges' harmonics and the kernels' edge groupings, shared with the other convolutions
        over the same edges)."""
        check_convolution_inputs(
            node_features, edge_vectors, edge_index, radial_weights, radial_index, self.node_dim,
            self.irreps_node_text, self.weight_numel, "(number of paths) * C",
        )  # fmt: skip
        values = node_features.index_select(1, self.rows_in).unflatten(1, (-1, self.channels))
        sums = self._sums(values, edge_vectors, edge_index, radial_weights, radial_index, edge_cache)
        return sums.flatten(1).index_select(1, self.rows_out_inverse)

    def forward_rows(
        self,
        node_rows: torch.Tensor,
        edge_vectors: torch.Tensor,
        edge_index: torch.Tensor,
        radial_weights: torch.Tensor,
        *,
        radial_index: torch.Tensor | None = None,
        edge_cache: dict | None = None,
    ) -> torch.Tensor:
        """:meth:`forward` with the node features and the output in the kernels' rows layout (component-major,
        ``[N, 2l+1 rows per irrep, C]``; :class:`gaunt_tp.nn.linear.RowsLinear` reads and writes it), which saves
        the transpositions around the kernels.

        Shape:
            ``node_rows [N, irreps_node.dim / C, C]`` -> ``[N, irreps_out.dim / C, C]`` (irrep i of
            ``irreps_out`` as ``mul_i / C`` blocks of ``2 l_i + 1`` rows).
        """
        n, c = node_rows.shape[0], self.channels
        if node_rows.shape != (n, self.node_dim // c, c):
            raise ValueError(f"node_rows must be [N, {self.node_dim // c}, {c}], got {tuple(node_rows.shape)}")
        check_convolution_inputs(
            node_rows.flatten(1), edge_vectors, edge_index, radial_weights, radial_index, self.node_dim,
            self.irreps_node_text, self.weight_numel, "(number of paths) * C",
        )  # fmt: skip
        return self._sums(node_rows, edge_vectors, edge_index, radial_weights, radial_index, edge_cache)

    def _sums(
        self,
        values: torch.Tensor,
        edge_vectors: torch.Tensor,
        edge_index: torch.Tensor,
        radial_weights: torch.Tensor,
        radial_index: torch.Tensor | None,
        edge_cache: dict | None,
    ) -> torch.Tensor:
        """The convolution in rows: ``values [N, Din, C]`` -> ``[N, Dout, C]``, in the C kernels where they build,
        else in PyTorch operations."""
        c, n = self.channels, values.shape[0]

        def powers() -> torch.Tensor:
            unit, _ = safe_unit_vectors(edge_vectors)
            return vector_powers(unit.to(values.dtype), self.lmax_sh)

        u = cached(edge_cache, ("cg_powers", self.lmax_sh, values.dtype), powers)  # [E, sum_l 3^l]
        couplings = u @ self.tables.get(u.dtype, u.device)["lift"]  # [E, Tsum]: T[e, p, m1, m3] row-major
        radial = radial_weights.view(radial_weights.shape[0], len(self.paths), c)
        if self.use_kernel and values.is_cpu and values.dtype in (torch.float32, torch.float64):
            sender, receiver = edge_index
            return coupled_sums(values, radial, couplings, self.path_table, self.out_components, sender, receiver,
                                radial_index, groupings=edge_cache)  # fmt: skip
        if radial_index is not None:
            radial = radial.index_select(0, radial_index)  # [E, paths, C]
        sender, receiver = edge_index
        senders = values.index_select(0, sender)  # [E, Din, C]
        messages: list[torch.Tensor | None] = [None] * len(self.out_blocks)  # [E, 2 l3 + 1, C] per output block
        for p, ((_, _, io), (o1, d1, _, d3, t0)) in enumerate(zip(self.paths, self.path_rows)):
            coupling = couplings[:, t0 : t0 + d1 * d3].view(-1, d1, d3)  # [E, 2 l1 + 1, 2 l3 + 1]
            msg = torch.einsum("eic,eik->ekc", senders[:, o1 : o1 + d1], coupling) * radial[:, p, None, :]
            messages[io] = msg if messages[io] is None else messages[io] + msg
        edges = couplings.shape[0]
        flat = [m if m is not None else values.new_zeros(edges, dim, c) for m, dim in zip(messages, self.out_blocks)]
        return values.new_zeros(n, self.out_components, c).index_add(0, receiver, torch.cat(flat, dim=1))
