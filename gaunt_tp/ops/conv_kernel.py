"""The grid convolution's per-receiver sums in C kernels, without ``[edges, C, P]`` buffers (CPU).

The sums of :class:`gaunt_tp.ops.GauntConvolution`'s grid form,
``S[i, c, p] = sum_{e: r(e) = i} X[s(e), c, p] sum_l R[k(e), l, c] Z[e, l, p]``, are the derivative
with respect to A of the 4-linear form over the edges

    F(A, B, R, Z) = sum_e sum_{c, p, l} A[r(e), c, p] B[s(e), c, p] R[k(e), l, c] Z[e, l, p]

at B = X (node values on the grid ``[N, C, P]``, R radial weights ``[rows, L, C]`` of which edge e
reads row k(e), Z the edges' zonal functions ``[E, L, P]``). Every derivative of F, of any order, is
again the derivative of F with respect to one argument, with some of the others replaced by incoming
gradients, so one autograd function (:class:`_Partial`) whose backward calls itself covers forces and
force training. The C kernels (``csrc/conv_quad.c``) never form the per-edge products that the
PyTorch grid form materialises, differentiates and scatters, and read the radial weights where they
are: rows may be shared by edges (an edge and its reverse have one length, hence one row).

Scalar node features (l = 0) need no grid: their convolution is the edges' harmonics scaled per
channel and degree (:func:`scalar_sums`, ``csrc/conv_scalar.c``), the same 4-linear structure with
node coefficients in place of grid values, handled by the same autograd function. So is MACE's
per-path convolution in coupled form (:func:`coupled_sums`, ``csrc/conv_coupled.c``), with per-edge
coupling matrices in place of the zonal functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gaunt_tp.ops.checks import index_range
from gaunt_tp.ops.functions import gradient_needed
from gaunt_tp.ops.native import native_library

__all__ = ["cached", "convolution_sums", "coupled_sums", "scalar_sums", "MAX_DEGREES", "MAX_POINTS"]

MAX_POINTS = 512  # grid points the kernels' per-edge scratch holds (lmax_node + lmax_sh + lmax_out <= 35)
MAX_DEGREES = 16  # edge degrees L the kernels' accumulators hold

_SLOTS = ("A", "B", "R", "Z")


def cached(cache: dict | None, key: tuple, make: Callable[[], Any]) -> Any:
    """``cache[key]``, made by ``make()`` and kept there on first use; ``make()`` every time without a cache."""
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _csr(index: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges grouped by ``index`` (int64, contiguous): ``ptr [size + 1]`` and the edge ids in order (stable)."""
    ptr, order = torch.empty(size + 1, dtype=torch.int64), torch.empty_like(index)
    if native_library().edge_groups(ptr.data_ptr(), order.data_ptr(), index.data_ptr(), index.numel(), size):
        raise ValueError(f"edge indices must lie in 0..{size - 1}")
    return ptr, order


class _Partial(torch.autograd.Function):
    """dF/d(``missing``) with the other three arguments given (None for the missing one)."""

    @staticmethod
    def forward(ctx: Any, missing: str, graph: dict, a, b, r, z):  # type: ignore[override]
        ctx.save_for_backward(*(t for t in (a, b, r, z) if t is not None))
        ctx.missing, ctx.graph = missing, graph
        ctx.present = tuple(t is not None for t in (a, b, r, z))
        return _evaluate(missing, graph, dict(zip(_SLOTS, (a, b, r, z))))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        saved = iter(ctx.saved_tensors)
        args = {slot: (next(saved) if present else None) for slot, present in zip(_SLOTS, ctx.present)}
        args[ctx.missing] = grad.contiguous()
        grads: dict[str, torch.Tensor | None] = {}
        for i, slot in enumerate(_SLOTS):
            if slot == ctx.missing or not ctx.needs_input_grad[2 + i] or not gradient_needed(args[slot]):
                continue
            others = {k: (None if k == slot else v) for k, v in args.items()}
            grads[slot] = _Partial.apply(slot, ctx.graph, *(others[k] for k in _SLOTS))
        return (None, None, *(grads.get(slot) for slot in _SLOTS))


@torch.compiler.disable  # the C calls, also where torch.compile traces a derivative of the convolution
def _evaluate(missing: str, graph: dict, args: dict[str, torch.Tensor | None]) -> torch.Tensor:
    lib = native_library()
    ref = next(t for t in args.values() if t is not None)
    suffix = "f32" if ref.dtype == torch.float32 else "f64"
    n, e, c, l, p = graph["nodes"], graph["edges"], graph["channels"], graph["degrees"], graph["points"]
    threads = torch.get_num_threads()
    ptr = lambda t: t.data_ptr()  # noqa: E731
    if missing in ("A", "B", "R") and f"csr_{missing}" not in graph:  # made when first needed
        size = graph["rows"] if missing == "R" else n
        key = ("csr", missing, n, graph["edges"], graph["rows"], graph["own_rows"])
        graph[f"csr_{missing}"] = cached(graph["groupings"], key, lambda: _csr(graph[f"index_{missing}"], size))
    a, b, ia, ib, r, ir, z = (args["A"], args["B"], graph["index_A"], graph["index_B"], args["R"], graph["index_R"],
                              args["Z"])  # fmt: skip
    csr_ptr, csr_edges = graph.get(f"csr_{missing}", (None, None))
    if graph.get("coupled"):  # conv_coupled.c: A [N, Dout, C], B [N, Din, C], R [rows, P, C], Z the couplings [E, Tsum]
        paths, din, dout, tsum = graph["paths"], graph["din"], graph["dout"], graph["tsum"]
        sizes = (c, l, din, dout, tsum, threads)
        if missing in ("A", "B"):
            other = "B" if missing == "A" else "A"
            out = torch.empty(n, dout if missing == "A" else din, c, dtype=ref.dtype)
            getattr(lib, f"cpl_{'node' if missing == 'A' else 'sender'}_{suffix}")(
                ptr(out), ptr(args[other]), ptr(graph[f"index_{other}"]), ptr(csr_ptr), ptr(csr_edges), ptr(r),
                ptr(ir), ptr(z), ptr(paths), n, *sizes,
            )  # fmt: skip
        elif missing == "R":
            out = torch.empty(graph["rows"], l, c, dtype=ref.dtype)
            getattr(lib, f"cpl_radial_{suffix}")(ptr(out), ptr(a), ptr(ia), ptr(b), ptr(ib), ptr(z), ptr(paths),
                                                 ptr(csr_ptr), ptr(csr_edges), graph["rows"], *sizes)  # fmt: skip
        else:
            out = torch.empty(e, tsum, dtype=ref.dtype)
            getattr(lib, f"cpl_coupling_{suffix}")(ptr(out), ptr(a), ptr(ia), ptr(b), ptr(ib), ptr(r), ptr(ir),
                                                   ptr(paths), e, *sizes)  # fmt: skip
        return out
    if graph["scalar"]:  # conv_scalar.c: A [N, D, C], B [N, C], Z the harmonics [E, D]; p is D
        deg = graph["deg"]
        if missing == "A":
            out = torch.empty(n, p, c, dtype=ref.dtype)
            getattr(lib, f"scal_node_{suffix}")(ptr(out), ptr(b), ptr(ib), ptr(csr_ptr), ptr(csr_edges), ptr(r),
                                                ptr(ir), ptr(z), ptr(deg), n, c, l, p, threads)  # fmt: skip
        elif missing == "B":
            out = torch.empty(n, c, dtype=ref.dtype)
            getattr(lib, f"scal_sender_{suffix}")(ptr(out), ptr(a), ptr(ia), ptr(csr_ptr), ptr(csr_edges), ptr(r),
                                                  ptr(ir), ptr(z), ptr(deg), n, c, l, p, threads)  # fmt: skip
        elif missing == "R":
            out = torch.empty(graph["rows"], l, c, dtype=ref.dtype)
            fn = getattr(lib, f"scal_radial_{suffix}")
            fn(ptr(out), ptr(a), ptr(ia), ptr(b), ptr(ib), ptr(z), ptr(deg), ptr(csr_ptr), ptr(csr_edges),
               graph["rows"], c, l, p, threads)  # fmt: skip
        else:
            out = torch.empty(e, p, dtype=ref.dtype)
            getattr(lib, f"scal_harm_{suffix}")(ptr(out), ptr(a), ptr(ia), ptr(b), ptr(ib), ptr(r), ptr(ir),
                                                ptr(deg), e, c, l, p, threads)  # fmt: skip
        return out
    if missing in ("A", "B"):  # scatter onto the missing node slot from the other one (F is symmetric in A, B)
        other = "B" if missing == "A" else "A"
        out = torch.empty(n, c, p, dtype=ref.dtype)
        getattr(lib, f"quad_node_{suffix}")(
            ptr(out), ptr(args[other]), ptr(graph[f"index_{other}"]), ptr(csr_ptr), ptr(csr_edges),
            ptr(r), ptr(ir), ptr(z), n, c, l, p, threads,
        )  # fmt: skip
        return out
    if missing == "R":  # summed over the edges that share a row
        out = torch.empty(graph["rows"], l, c, dtype=ref.dtype)
        getattr(lib, f"quad_radial_{suffix}")(ptr(out), ptr(a), ptr(ia), ptr(b), ptr(ib), ptr(z), ptr(csr_ptr),
                                              ptr(csr_edges), graph["rows"], c, l, p, threads)  # fmt: skip
        return out
    out = torch.empty(e, l, p, dtype=ref.dtype)
    getattr(lib, f"quad_zonal_{suffix}")(ptr(out), ptr(a), ptr(ia), ptr(b), ptr(ib), ptr(r), ptr(ir), e, c, l, p,
                                         threads)  # fmt: skip
    return out


def _graph(
    nodes: int,
    edges: int,
    channels: int,
    radial: torch.Tensor,
    width: int,
    sender: torch.Tensor,
    receiver: torch.Tensor,
    radial_index: torch.Tensor | None,
    groupings: dict | None,
) -> dict:
    """What the kernels of one sum share: sizes, the edges' indices, the edges' groupings (made when first needed).

    Checks the sizes the C kernels trust; an index out of range is an error when the edges are grouped by it
    (:func:`_csr`), and the module checks all of them before."""
    rows, degrees, radial_channels = radial.shape
    if radial_channels != channels or sender.shape != (edges,) or receiver.shape != (edges,):
        raise ValueError(
            f"radial must be [rows, L, {channels}] and sender, receiver [{edges}], got {tuple(radial.shape)}, "
            f"{tuple(sender.shape)}, {tuple(receiver.shape)}"
        )
    own_rows = radial_index is None
    if radial_index is None:
        if rows != edges:
            raise ValueError(f"radial has {rows} rows for {edges} edges: pass radial_index to share rows")
        radial_index = torch.arange(edges)
    return {
        "nodes": nodes, "edges": edges, "channels": channels, "degrees": degrees, "points": width, "rows": rows,
        "index_A": receiver.to(torch.int64).contiguous(), "index_B": sender.to(torch.int64).contiguous(),
        "index_R": radial_index.to(torch.int64).contiguous(), "groupings": groupings, "own_rows": own_rows,
        "scalar": False,
    }  # fmt: skip


@torch.compiler.disable  # an opaque C call: torch.compile runs it eagerly, between graphs
def convolution_sums(
    node_values: torch.Tensor,
    radial: torch.Tensor,
    zonal: torch.Tensor,
    sender: torch.Tensor,
    receiver: torch.Tensor,
    radial_index: torch.Tensor | None = None,
    groupings: dict | None = None,
) -> torch.Tensor:
    """``S[i, c, p] = sum_{e: receiver(e) = i} node_values[sender(e), c, p] sum_l radial[k(e), l, c] zonal[e, l, p]``.

    ``k(e) = radial_index[e]``, or e itself when ``radial_index`` is None.

    Shape:
        node_values ``[N, C, P]``, radial ``[rows, L, C]`` (``rows = E`` without ``radial_index``),
        zonal ``[E, L, P]``, sender, receiver and radial_index ``[E]`` (int64, in range); returns
        ``[N, C, P]``. float32 or float64 CPU tensors; ``P`` a multiple of 8 up to ``MAX_POINTS`` (pad
        the grid with zero points), at most ``MAX_DEGREES`` degrees L; differentiable to any order.

    ``groupings``: a dict in which the edges' groupings by receiver, sender and radial row are kept
    and looked up, so that sums over the same edges and the same ``radial_index`` share them; None: made
    per call.
    """
    n, c, p = node_values.shape
    if p % 8 or p > MAX_POINTS or radial.shape[1] > MAX_DEGREES:
        raise ValueError(
            f"the kernels take a multiple of 8 grid points up to {MAX_POINTS} and <= {MAX_DEGREES} degrees: "
            f"{p}, {radial.shape[1]}"
        )
    graph = _graph(n, zonal.shape[0], c, radial, p, sender, receiver, radial_index, groupings)
    return _Partial.apply("A", graph, None, node_values.contiguous(), radial.contiguous(), zonal.contiguous())


@torch.compiler.disable  # an opaque C call: torch.compile runs it eagerly, between graphs
def scalar_sums(
    scalars: torch.Tensor,
    radial: torch.Tensor,
    harmonics: torch.Tensor,
    degree_index: torch.Tensor,
    sender: torch.Tensor,
    receiver: torch.Tensor,
    radial_index: torch.Tensor | None = None,
    groupings: dict | None = None,
) -> torch.Tensor:
    """``S[i, d, c] = sum_{e: receiver(e) = i} scalars[sender(e), c] radial[k(e), deg[d], c] harmonics[e, d]``.

    The convolution of scalar node features (l = 0) with the edges' functions, as output coefficients:
    no grid (``deg = degree_index``). ``k(e) = radial_index[e]``, or e itself when ``radial_index`` is None.

    Shape:
        scalars ``[N, C]``, radial ``[rows, L, C]``, harmonics ``[E, D]``, degree_index ``[D]`` (int64, in
        0..L-1), sender, receiver, radial_index ``[E]``; returns ``[N, D, C]`` (component-major). float32 or
        float64 CPU tensors; differentiable to any order.

    ``groupings``: as for :func:`convolution_sums` (the two share the edges' groupings).
    """
    n, c = scalars.shape
    graph = _graph(n, harmonics.shape[0], c, radial, harmonics.shape[1], sender, receiver, radial_index, groupings)
    low, high = index_range(degree_index) if degree_index.numel() else (0, 0)
    if degree_index.shape != (harmonics.shape[1],) or low < 0 or high >= radial.shape[1]:
        raise ValueError(f"degree_index must be [D] = [{harmonics.shape[1]}] with entries in 0..{radial.shape[1] - 1}")
    graph.update(scalar=True, deg=degree_index.to(torch.int64).contiguous())
    return _Partial.apply("A", graph, None, scalars.contiguous(), radial.contiguous(), harmonics.contiguous())


@torch.compiler.disable  # an opaque C call: torch.compile runs it eagerly, between graphs
def coupled_sums(
    node_values: torch.Tensor,
    radial: torch.Tensor,
    couplings: torch.Tensor,
    paths: torch.Tensor,
    out_components: int,
    sender: torch.Tensor,
    receiver: torch.Tensor,
    radial_index: torch.Tensor | None = None,
    groupings: dict | None = None,
) -> torch.Tensor:
    """``S[i, o3 + m3, c] = sum_{e: receiver(e) = i} sum_p radial[k(e), p, c] sum_m1 couplings[e, p, m1, m3]
    node_values[sender(e), o1 + m1, c]``: MACE's per-path convolution in coupled form.

    ``paths [P, 5]`` (int64) holds each path's ``(o1, d1, o3, d3, toff)``: its input components
    ``o1 .. o1 + d1``, output components ``o3 .. o3 + d3`` and its ``d1 x d3`` coupling matrix (row-major) at
    ``couplings[:, toff:]``. ``k(e) = radial_index[e]``, or e itself when ``radial_index`` is None.

    Shape:
        node_values ``[N, Din, C]`` (component-major), radial ``[rows, P, C]``, couplings ``[E, Tsum]``; returns
        ``[N, out_components, C]``. float32 or float64 CPU tensors; differentiable to any order (the couplings
        too: the edges' harmonics enter through them).

    ``groupings``: as for :func:`convolution_sums`.
    """
    n, din, c = node_values.shape
    if paths.dim() != 2 or paths.shape != (radial.shape[1], 5):
        raise ValueError(f"paths must be [P, 5] = [{radial.shape[1]}, 5], got {tuple(paths.shape)}")
    for o1, d1, o3, d3, toff in paths.tolist():  # a few rows: checked in Python, one operation
        outside = o1 + d1 > din or o3 + d3 > out_components or toff + d1 * d3 > couplings.shape[1]
        if outside or min(o1, d1, o3, d3, toff) < 0:
            raise ValueError("paths point outside node_values, the outputs or the couplings")
    graph = _graph(n, couplings.shape[0], c, radial, 0, sender, receiver, radial_index, groupings)
    graph.update(coupled=True, paths=paths.to(torch.int64).contiguous(), din=din, dout=out_components,
                 tsum=couplings.shape[1])  # fmt: skip
    return _Partial.apply("A", graph, None, node_values.contiguous(), radial.contiguous(), couplings.contiguous())
