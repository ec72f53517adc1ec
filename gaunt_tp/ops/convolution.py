"""Equivariant convolution in Gaunt form: node features times edge harmonics, summed over neighbours.

For edge e from sender s(e) to receiver r(e) with vector v_e (unit vector u_e), node
features x (C channels) and per-edge radial weights R_e[l2, c], the message and the
aggregate are

    m_e,c   = x_{s(e),c}  (*)  g_e,c,     g_e,c = sum_{l2} R_e[l2, c] sum_m Y_{l2 m}(u_e) Y_{l2 m}
    out_i   = sum_{e : r(e) = i} m_e

where (*) is the Gaunt product of :class:`gaunt_tp.GauntTensorProduct` (even paths,
truncated to the output degrees). On a sphere grid the edge function is a zonal
function, ``g_e,c(w) = sum_l2 R_e[l2, c] (2 l2 + 1) / (4 pi) P_l2(u_e . w)``
(the addition theorem), evaluated with the Legendre recurrence; the node functions
are evaluated once per node; the products are summed over edges *on the grid*, and
only the per-node sums are projected back. Cost per edge: O(C P L) for P grid points.

The edge-aligned form (:mod:`gaunt_tp.ops.aligned`) rotates each edge onto the polar
axis instead, where the product is diagonal in m: O(C L^3) per edge, no grid.
``form="auto"`` picks between them with :func:`convolution_cost`.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from gaunt_tp.math.aligned import meridian_tables, quarter_turn
from gaunt_tp.math.quadrature import smallest_grid
from gaunt_tp.ops.aligned import aligned_messages, edge_frame_wigner
from gaunt_tp.ops.checks import index_range
from gaunt_tp.ops.conv_kernel import MAX_DEGREES, MAX_POINTS, cached, convolution_sums, scalar_sums
from gaunt_tp.ops.convolution_cost import FORMS, GPU_EDGE_CHUNK, auto_edge_chunk, convolution_cost
from gaunt_tp.ops.descriptor import GauntDescriptor, as_irreps
from gaunt_tp.ops.native import native_error
from gaunt_tp.ops.tables import TableCache

__all__ = ["GauntConvolution", "safe_unit_vectors"]


def safe_unit_vectors(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors and lengths of ``[E, 3]`` edge vectors; a zero vector gives a zero "unit" vector.

    The length is clamped at 1e-12 before dividing, so the values and their gradients stay finite
    for zero-length edges (only the isotropic l = 0 parts of edge functions survive there).

    Shape:
        returns ``[E, 3]`` and ``[E]``.
    """
    length = torch.sqrt((vectors * vectors).sum(-1).clamp_min(1e-24))
    return vectors / length[:, None], length


def _zonal_values(unit: torch.Tensor, points: torch.Tensor, degrees: list[int]) -> torch.Tensor:
    """``s**l (2l+1)/(4 pi) P_l(u . w / s)`` for ``s = |u|`` (1, or 0 for a zero-length edge).

    Homogeneous Legendre recurrence ``Q_{l+1} = ((2l+1) t Q_l - l s^2 Q_{l-1}) / (l+1)``
    with ``t = u . w``: equals the zonal harmonic for unit u and vanishes for l >= 1 at u = 0.

    Shape:
        unit ``[E, 3]``, points ``[P, 3]``; returns ``[E, len(degrees), P]``.
    """
    t = unit @ points.T  # [E, P]
    s2 = (unit * unit).sum(-1, keepdim=True)  # [E, 1]
    q_prev, q = torch.ones_like(t), t
    values = {0: q_prev, 1: q}
    for l in range(1, max(degrees)):
        q_prev, q = q, ((2 * l + 1) * t * q - l * s2 * q_prev) / (l + 1)
        values[l + 1] = q
    return torch.stack([values[l] * ((2 * l + 1) / (4 * math.pi)) for l in degrees], dim=1)


def check_convolution_inputs(
    x: torch.Tensor,
    vectors: torch.Tensor,
    edge_index: torch.Tensor,
    radial: torch.Tensor,
    radial_index: torch.Tensor | None,
    node_dim: int,
    irreps_node: str,
    weight_numel: int,
    layout: str,
) -> None:
    """Clear errors for a convolution's inputs (shapes, index ranges, dtypes), as the forward passes take them;
    ``node_dim`` is the node features' width, ``irreps_node`` (text) and ``layout`` (of ``weight_numel``) go in the
    messages. Plain ints and strings: ``torch.compile`` guards on them (e3nn's Irreps break its guards)."""
    n, e = x.shape[0] if x.dim() == 2 else -1, vectors.shape[0] if vectors.dim() == 2 else -1
    if x.dim() != 2 or x.shape[1] != node_dim:
        raise ValueError(f"node_features must be [N, {node_dim}] for {irreps_node}, got {tuple(x.shape)}")
    if vectors.dim() != 2 or vectors.shape[1] != 3:
        raise ValueError(f"edge_vectors must be [E, 3], got {tuple(vectors.shape)}")
    if edge_index.dim() != 2 or edge_index.shape != (2, e):
        raise ValueError(f"edge_index must be [2, E] = [2, {e}] (sender, receiver), got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"edge_index must hold integers, got {edge_index.dtype}")
    if e and (span := index_range(edge_index)) is not None:
        low, high = span
        if low < 0 or high >= n:
            raise ValueError(f"edge_index holds node {low if low < 0 else high}, outside 0..{n - 1} for {n} nodes")
    rows = e
    if radial_index is not None:
        rows = radial.shape[0] if radial.dim() == 2 else -1
        if radial_index.shape != (e,) or radial_index.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"radial_index must be integer [E] = [{e}], got {radial_index.dtype} {tuple(radial_index.shape)}"
            )
        if e and (span := index_range(radial_index)) is not None:
            low, high = span
            if low < 0 or high >= rows:
                raise ValueError(f"radial_index must point at rows 0..{rows - 1} of radial_weights")
    if radial.shape != (rows, weight_numel):
        what = "E" if radial_index is None else "rows"
        raise ValueError(
            f"radial_weights must be [{what}, {weight_numel}] = [{rows}, {layout}], got {tuple(radial.shape)}"
        )
    if not (x.dtype == vectors.dtype == radial.dtype):
        raise TypeError(
            "node_features, edge_vectors and radial_weights must share a dtype, "
            f"got {x.dtype}, {vectors.dtype}, {radial.dtype}"
        )


class GauntConvolution(nn.Module):
    r"""Message passing with Gaunt products of node features and edge harmonics.

    Equals e3nn's ``TensorProduct(irreps_node, irreps_sh, irreps_out, 'uvu' paths)`` with
    external per-edge weights followed by a scatter-sum over receivers, restricted to the
    even (Gaunt) paths, when e3nn's weight of path (l1, l2, l3), channel c, edge e is
    ``R_e[l2, c]`` times the Gaunt constant of the path
    (``gaunt_tp.testing.E3nnGauntReference`` gives the constants).

    Per-path freedom: e3nn's 'uvu' convolution has one radial weight per path
    (l1, l2, l3) and channel; this form has one per edge degree l2 and channel, shared
    by every (l1, l3) (the edge function is one function on the sphere per channel).
    That is what makes it a single product of two functions, computed on a grid once
    per node and edge instead of once per path; mix channels and weight degrees with
    linear layers before and after (as MACE does) to regain expressivity. The
    edge-aligned form has the same freedom (it is the same function).

    Scale: outputs carry the Gaunt coefficients (harmonics normalised to integral 1), so for
    unit-variance node features and radial weights one edge's output of degree l3 has second
    moment ``sum_paths ||G(l1, l2, l3)||^2 / ((2 l3 + 1) 4 pi)`` per component (about 0.025 at
    max_ell 3), where e3nn's normalised TensorProduct gives about 1. Models rescale each output
    degree (:class:`gaunt_tp.nn.GauntMACE` does, with
    :func:`gaunt_tp.nn.feature_interaction.output_variance`); left small, it slows training.

    Two forms compute the same function (to float rounding):

    - ``"grid"``: node and edge functions on a sphere grid of P ~ 3 L^2 points, products
      summed per receiver on the grid, one projection per node; O(C P L) per edge. On CPUs
      (float32/float64, where gaunt-tp's C kernels build; :attr:`use_kernel`) the sums and all
      their derivatives run in :mod:`gaunt_tp.ops.conv_kernel` without per-edge buffers, and
      node irreps of degree 0 (all of a class of scalars, or with ``radial_per_input`` each
      scalar irrep) skip the grid: their messages are the edges' harmonics scaled per channel
      and degree, D C multiply-adds per edge; GPUs use PyTorch operations in edge chunks.
    - ``"aligned"`` (eSCN, arXiv 2302.03655; :mod:`gaunt_tp.ops.aligned`): each edge is
      rotated onto the polar axis y, where the edge function has only m = 0 coefficients
      and the product is diagonal in m; rotate, multiply, rotate back, O(C L^3) per edge.
    - ``"auto"`` (default): the smaller estimate of :func:`convolution_cost`, from the sizes
      known at construction (degrees, channels). ``module.form`` says which one runs.

    Args:
        irreps_node: node features, every irrep with multiplicity C (e3nn layout).
        irreps_sh: the edge harmonics' degrees, ``1x0e + 1x1o + ...`` (natural parity,
            multiplicity 1; gaps allowed).
        irreps_out: output irreps, multiplicity C, each reached by a Gaunt path.
        edge_chunk: edges processed at once by the PyTorch forms (bounds the ``[edges, C, P]`` grid
            buffer, or the aligned form's ``[edges, C, M Q]`` meridian buffer and per-edge Wigner matrices).
            ``None`` (default): chosen per call by :func:`auto_edge_chunk` from the buffer's
            size, dtype and device (buffers of about 4 MiB on the CPU, and at least the node
            count when gradients are recorded; up to 256 MiB, at least 1024 edges, on GPUs).
        form: ``"auto"``, ``"grid"`` or ``"aligned"``.
        radial_per_input: one radial weight per (node irrep, edge degree, channel) instead of per
            (edge degree, channel): e3nn's path weight becomes ``R_e[l2, i1, c]`` (still shared by
            the output degrees l3). The sender's function is then split by degree on the grid, so
            the per-edge cost grows by the number of node irreps (the C kernels take the degrees as
            extra channels). Grid form only.

    Shape:
        ``forward(node_features [N, irreps_node.dim], edge_vectors [E, 3],
        edge_index [2, E] (sender, receiver), radial_weights [E, weight_numel])``
        returns ``[N, irreps_out.dim]``; ``weight_numel = len(irreps_sh) * C``, laid out
        ``[l2, c]`` (degree-major), or with ``radial_per_input`` ``len(irreps_node) * len(irreps_sh) * C``
        laid out ``[l2, i1, c]``. Zero-length edges contribute through l2 = 0 only. With the keyword
        ``radial_index [E]`` (int), ``radial_weights`` is ``[rows, weight_numel]`` and edge e takes row
        ``radial_index[e]``: an edge and its reverse have one length, so a model computes radial
        weights once per pair (the C kernels read the shared rows in place). With the keyword
        ``edge_cache`` (a dict, empty at first), convolutions over the same edges share what depends
        on the edges alone (the edges' zonal functions on the grid, the kernels' edge groupings):
        pass one fresh dict to every convolution of one forward pass over one graph, never
        across graphs, edge vectors or ``radial_index``.

    Example:
        >>> import torch
        >>> conv = GauntConvolution("4x0e + 4x1o", "1x0e + 1x1o + 1x2e", "4x0e + 4x1o + 4x2e")
        >>> x, vec = torch.randn(5, 16), torch.randn(8, 3)
        >>> edges = torch.randint(0, 5, (2, 8))
        >>> conv(x, vec, edges, torch.randn(8, conv.weight_numel)).shape
        torch.Size([5, 36])
    """

    def __init__(
        self,
        irreps_node: o3.Irreps | str,
        irreps_sh: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        *,
        edge_chunk: int | None = None,
        form: str = "auto",
        radial_per_input: bool = False,
    ) -> None:
        super().__init__()
        irreps_sh = as_irreps(irreps_sh, "irreps_sh")
        for mul, ir in irreps_sh:
            if mul != 1 or ir.p != (-1) ** ir.l:
                raise ValueError(f"irreps_sh must be harmonics 1x0e + 1x1o + 1x2e + ..., got {irreps_sh}")
        self.desc = GauntDescriptor(irreps_node, irreps_sh, irreps_out)
        if self.desc.mul2 != 1 or self.desc.mul1 != self.desc.mul:
            raise ValueError("node features carry the channels; irreps_sh must have multiplicity 1")
        if edge_chunk is not None and edge_chunk < 1:
            raise ValueError(f"edge_chunk must be >= 1, got {edge_chunk}")
        if form not in (*FORMS, "auto"):
            raise ValueError(f"form must be one of 'auto', 'grid', 'aligned', got {form!r}")
        if radial_per_input and form == "aligned":
            raise ValueError("radial_per_input=True is implemented in the grid form only: use form='grid' or 'auto'")
        self.irreps_node, self.irreps_sh, self.irreps_out = self.desc.irreps_in1, irreps_sh, self.desc.irreps_out
        self.node_dim, self.irreps_node_text = self.irreps_node.dim, str(self.irreps_node)
        self.sh_degrees = [ir.l for _, ir in irreps_sh]
        self.channels = self.desc.mul
        self.radial_per_input = radial_per_input
        self.radial_inputs = len(self.irreps_node) if radial_per_input else 1
        # Node irreps of degree 0 need no grid in the C kernels (conv_kernel.scalar_sums): a class of scalars
        # only, or with radial_per_input each scalar irrep (its own radial group). Per node class: the scalar
        # pieces (offset in the class vector, radial group) and the grid pieces (index in the class) with, for
        # radial_per_input, their radial groups.
        self.scalar_pieces: list[list[tuple[int, int]]] = []
        self.grid_pieces: list[list[int]] = []
        self.grid_groups: list[list[int]] = []
        self.piece_slices: list[list[slice]] = []  # per node class, each irrep's entries in the class vector
        for cls in self.desc.classes1:
            offsets = [sum(2 * l + 1 for l in cls.ls[:k]) for k in range(len(cls.ls))]
            self.piece_slices.append([slice(o, o + 2 * l + 1) for o, l in zip(offsets, cls.ls)])
            if radial_per_input:
                scalar = [k for k, l in enumerate(cls.ls) if l == 0]
            else:
                scalar = list(range(len(cls.ls))) if cls.lmax == 0 else []
            self.scalar_pieces.append([(offsets[k], cls.irrep_indices[k] if radial_per_input else 0) for k in scalar])
            self.grid_pieces.append([k for k in range(len(cls.ls)) if k not in scalar])
            self.grid_groups.append([cls.irrep_indices[k] for k in self.grid_pieces[-1]])
        self.weight_numel = self.radial_inputs * len(self.sh_degrees) * self.channels
        self.edge_chunk = edge_chunk
        self.use_kernel = native_error() is None
        self.grid = smallest_grid(self.desc.lmax1 + self.desc.lmax2 + self.desc.lmax_out)
        points = self.grid.points
        lmax = max(self.desc.lmax1, self.desc.lmax_out)
        y = o3.spherical_harmonics(list(range(lmax + 1)), points, normalize=False, normalization="integral")
        self.scalar_degree: list[torch.Tensor] = []  # per output class (see the tables h below)
        # "_padded": the C kernels' copies, with zero points (zero values, zero weights) up to a multiple of 8
        pad = -points.shape[0] % 8
        tables = {"points": points, "points_padded": torch.cat([points, points[:1].expand(pad, 3)])}
        for i, cls in enumerate(self.desc.classes1):
            tables[f"a{i}"] = y[:, cls.sh_rows()].T.contiguous()  # [n, P]
            tables[f"a{i}_padded"] = nn.functional.pad(tables[f"a{i}"], (0, pad))
        for i, cls in enumerate(self.desc.classes_out):
            tables[f"o{i}"] = (self.grid.weights[:, None] * y[:, cls.sh_rows()]).contiguous()  # [P, n]
            tables[f"o{i}_padded"] = nn.functional.pad(tables[f"o{i}"], (0, 0, 0, pad))
            # the edges' harmonics of this class's degrees from their zonal values [E, L P'] (addition
            # theorem), times Y_00 (a scalar node function's value): [L P', n], entry d read with radial degree
            # scalar_degree{i}[d] (0 with a zero column for an output degree no edge degree reaches)
            entry_ls = torch.tensor([l for l in cls.ls for _ in range(2 * l + 1)])
            blocks = [y[:, :1] * tables[f"o{i}"] * (entry_ls == l2) for l2 in self.sh_degrees]  # [P, n] each
            tables[f"h{i}"] = nn.functional.pad(torch.stack(blocks), (0, 0, 0, pad)).flatten(0, 1)
            self.scalar_degree.append(
                torch.tensor([self.sh_degrees.index(l) if l in self.sh_degrees else 0 for l in entry_ls.tolist()])
            )
        # what the kernels take (fixed by the sizes): radial weights per edge degree, a bounded grid
        self._kernel_fits = points.shape[0] + pad <= MAX_POINTS and len(self.sh_degrees) <= MAX_DEGREES
        # node class a lands in output class a (the edge function has natural parity)
        signs_out = [c.sign for c in self.desc.classes_out]
        self.routes = [(i, signs_out.index(c.sign)) for i, c in enumerate(self.desc.classes1) if c.sign in signs_out]
        route_ls = [(self.desc.classes1[i].ls, self.desc.classes_out[io].ls) for i, io in self.routes]
        self.costs = {
            f: convolution_cost(
                f,
                channels=self.channels,
                sh_degrees=self.sh_degrees,
                routes=route_ls,
                grid_points=self.grid.size,
                edge_chunk=edge_chunk or auto_edge_chunk(self.channels * self.grid.size, 4, "cpu"),
            )
            for f in FORMS
        }
        if radial_per_input:
            self.form = "grid"
        else:
            self.form = min(self.costs, key=self.costs.__getitem__) if form == "auto" else form
        if self.form == "aligned":
            self.frame_degrees = sorted({l for ls_in, ls_out in route_ls for l in ls_in + ls_out})
            for l in self.frame_degrees:
                tables[f"turn{l}"] = quarter_turn(l)
            for (i, io), (ls_in, ls_out) in zip(self.routes, route_ls):
                mt = meridian_tables(ls_in, tuple(self.sh_degrees), ls_out)
                for name in ("gather_in", "evaluate", "zonal", "project", "gather_out"):
                    tables[f"{name}{i}_{io}"] = getattr(mt, name)
        self.tables = TableCache(tables)

    def _pieces(
        self, x: torch.Tensor, i: int, table: torch.Tensor, which: list[int] | None = None
    ) -> list[torch.Tensor]:
        """Class ``i``'s node functions ``x [N, C, n_i]`` on the grid, one ``[N, C, P]`` per node irrep (those
        at positions ``which`` in the class, default all)."""
        pieces = self.piece_slices[i]
        which = range(len(pieces)) if which is None else which
        return [x[..., pieces[k]] @ table[pieces[k]] for k in which]

    def _kernel_runs(self, x: torch.Tensor) -> bool:
        """Whether the grid form's sums run in the C kernels (:mod:`gaunt_tp.ops.conv_kernel`)."""
        return self.use_kernel and self._kernel_fits and x.is_cpu and x.dtype in (torch.float32, torch.float64)

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
        layout = "len(irreps_node) * len(irreps_sh) * C" if self.radial_per_input else "len(irreps_sh) * C"
        check_convolution_inputs(
            node_features, edge_vectors, edge_index, radial_weights, radial_index, self.node_dim,
            self.irreps_node_text, self.weight_numel, layout,
        )  # fmt: skip
        if radial_index is not None and not (self.form == "grid" and self._kernel_runs(node_features)):
            radial_weights, radial_index = radial_weights.index_select(0, radial_index), None  # one row per edge
        if self.form == "aligned":
            return self._forward_aligned(node_features, edge_vectors, edge_index, radial_weights)
        desc, t = self.desc, self.tables.get(node_features.dtype, node_features.device)
        n, c = node_features.shape[0], self.channels
        classes = desc.split_classes(node_features, desc.blocks1, desc.classes1)  # [N, C, n_a]
        if self._kernel_runs(node_features):  # on the grid padded with zero points to a multiple of 8
            sender, receiver = edge_index[0], edge_index[1]
            key = ("zonal", self.grid.name, self.grid.size, tuple(self.sh_degrees), node_features.dtype)
            zonal = cached(
                edge_cache,
                key,
                lambda: _zonal_values(safe_unit_vectors(edge_vectors)[0], t["points_padded"], self.sh_degrees),
            )
            # per radial group [rows, n_l2, C]; unbind's backward writes the groups' gradients into one new
            # tensor, where selecting them one by one would add up zero-filled copies of the whole
            groups = (radial_weights.view(-1, len(self.sh_degrees), c),)  # a view: no copy in the backward
            if self.radial_inputs > 1:
                groups = radial_weights.view(-1, len(self.sh_degrees), self.radial_inputs, c).unbind(2)
            padded: list[torch.Tensor | None] = [None] * len(desc.classes_out)  # [N, C, P'] on the grid
            direct: list[torch.Tensor | None] = [None] * len(desc.classes_out)  # [N, n, C] coefficients
            for i, io in self.routes:
                if self.scalar_pieces[i]:
                    key = ("harmonics", self.grid.name, self.grid.size, tuple(self.sh_degrees))
                    key += (desc.classes_out[io].ls, node_features.dtype)
                    harm = cached(edge_cache, key, lambda: zonal.flatten(1) @ t[f"h{io}"])  # [E, n]
                    if self.radial_per_input:
                        items = [(classes[i][..., off], groups[g]) for off, g in self.scalar_pieces[i]]
                    else:
                        scalars = [classes[i][..., off] for off, _ in self.scalar_pieces[i]]
                        items = [(scalars[0] if len(scalars) == 1 else torch.stack(scalars).sum(0), groups[0])]
                    for x0, w0 in items:
                        part = scalar_sums(
                            x0, w0, harm, self.scalar_degree[io], sender, receiver, radial_index, groupings=edge_cache
                        )
                        direct[io] = part if direct[io] is None else direct[io] + part
                if not self.grid_pieces[i]:
                    continue
                if self.radial_per_input:  # each node irrep its own group of channels: [N, k C, P'], [rows, n_l2, k C]
                    pieces = self._pieces(classes[i], i, t[f"a{i}_padded"], self.grid_pieces[i])
                    values = torch.stack(pieces, dim=1).flatten(1, 2) if len(pieces) > 1 else pieces[0]
                    rows = [groups[g] for g in self.grid_groups[i]]
                    rows = torch.cat(rows, dim=2) if len(rows) > 1 else rows[0]  # [rows, n_l2, k C]
                    part = convolution_sums(values, rows, zonal, sender, receiver, radial_index, groupings=edge_cache)
                    if len(pieces) > 1:
                        part = part.view(n, len(pieces), c, -1).sum(1)
                else:
                    values = classes[i] @ t[f"a{i}_padded"]
                    part = convolution_sums(
                        values, groups[0], zonal, sender, receiver, radial_index, groupings=edge_cache
                    )
                padded[io] = part if padded[io] is None else padded[io] + part
            out = []
            for io, (total, coefficients) in enumerate(zip(padded, direct)):
                projected = total @ t[f"o{io}_padded"] if total is not None else None
                if coefficients is not None:
                    coefficients = coefficients.transpose(1, 2)
                    projected = coefficients if projected is None else projected + coefficients
                out.append(projected if projected is not None else zonal.new_zeros(n, c, desc.classes_out[io].dim))
            return desc.merge_out(out)
        unit, _ = safe_unit_vectors(edge_vectors)
        # radial weights [E, C, n_l2] per group of node irreps sharing them (all of a class, or one irrep)
        radial = radial_weights.view(-1, len(self.sh_degrees), self.radial_inputs, c).permute(0, 2, 3, 1)
        node_grid: list[list[tuple[torch.Tensor, int]]] = []  # per class: ([N, C, P], radial group)
        for i, x in enumerate(classes):
            if not self.radial_per_input:
                node_grid.append([(x @ t[f"a{i}"], 0)])
            else:
                node_grid.append(list(zip(self._pieces(x, i, t[f"a{i}"]), desc.classes1[i].irrep_indices)))
        sender, receiver = edge_index[0], edge_index[1]
        p = self.grid.size
        # one accumulator per output class, filled in place chunk by chunk (index_add_ is differentiable)
        sums = [node_features.new_zeros(n, c, p) for _ in desc.classes_out]
        inputs = (node_features, edge_vectors, radial_weights)
        records = torch.is_grad_enabled() and any(v.requires_grad for v in inputs)
        chunk = self.edge_chunk
        if chunk is None:
            chunk = auto_edge_chunk(c * p, node_features.element_size(), node_features.device.type, n if records else 0)
        # once at least: with no edges the empty messages still tie the (zero) output to the inputs for autograd
        for start in range(0, max(edge_vectors.shape[0], 1), chunk):
            sl = slice(start, start + chunk)
            zonal = _zonal_values(unit[sl], t["points"], self.sh_degrees)  # [e, n_l2, P]
            edge_fns = {}  # radial group -> [e, C, P]
            for i, io in self.routes:
                msg = None
                for grid_values, group in node_grid[i]:
                    if group not in edge_fns:
                        edge_fns[group] = torch.bmm(radial[sl, group], zonal)
                    term = grid_values.index_select(0, sender[sl])
                    if records:
                        term = term * edge_fns[group]
                        msg = term if msg is None else msg + term
                    else:  # nothing is saved for a backward: work in place, in the freshly gathered buffer
                        msg = term.mul_(edge_fns[group]) if msg is None else msg.addcmul_(term, edge_fns[group])
                sums[io] = sums[io].index_add_(0, receiver[sl], msg)
        out = [total @ t[f"o{io}"] for io, total in enumerate(sums)]
        return desc.merge_out(out)

    def _forward_aligned(
        self, node_features: torch.Tensor, edge_vectors: torch.Tensor, edge_index: torch.Tensor, radial: torch.Tensor
    ) -> torch.Tensor:
        desc, t = self.desc, self.tables.get(node_features.dtype, node_features.device)
        n, c = node_features.shape[0], self.channels
        classes = desc.split_classes(node_features, desc.blocks1, desc.classes1)  # [N, C, n_a]
        unit, _ = safe_unit_vectors(edge_vectors)
        radial = radial.view(-1, len(self.sh_degrees), c).transpose(1, 2)  # [E, C, n_l2]
        # zero-length edges keep only l2 = 0 (as the grid form's s**l2 factor does)
        kept = (unit * unit).sum(-1) > 0.5
        keep = torch.stack([kept | (l == 0) for l in self.sh_degrees], dim=-1).to(radial.dtype)  # [E, n_l2]
        turns = {l: t[f"turn{l}"] for l in self.frame_degrees}
        sender, receiver = edge_index[0], edge_index[1]
        sums = [node_features.new_zeros(n, c, cls.dim) for cls in desc.classes_out]
        chunk = self.edge_chunk or GPU_EDGE_CHUNK  # the aligned form's buffers are not sized yet
        for start in range(0, max(edge_vectors.shape[0], 1), chunk):  # once at least, as the grid form
            sl = slice(start, start + chunk)
            wigner = edge_frame_wigner(unit[sl], self.frame_degrees, turns)
            weights = radial[sl] * keep[sl, None, :]
            for i, io in self.routes:
                names = ("gather_in", "evaluate", "zonal", "project", "gather_out")
                route_tables = {name: t[f"{name}{i}_{io}"] for name in names}
                ls_in, ls_out = desc.classes1[i].ls, desc.classes_out[io].ls
                senders = classes[i].index_select(0, sender[sl])
                msg = aligned_messages(senders, wigner, weights, route_tables, ls_in, ls_out)
                sums[io] = sums[io].index_add_(0, receiver[sl], msg)
        return desc.merge_out(sums)
