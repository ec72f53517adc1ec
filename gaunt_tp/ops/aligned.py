"""Edge-aligned (eSCN-style, arXiv 2302.03655) Gaunt product of node functions with zonal edge functions.

Each edge e is rotated onto the polar axis y by a rotation ``R_e`` with ``R_e u_e = y``. In
that frame the edge function is zonal, ``g' = sum_l2 R_e[l2, c] Y_l2(y)_0 Y_l2,0``, and the
Gaunt product couples only equal orders m; it is computed by the meridian quadrature of
:mod:`gaunt_tp.math.aligned`. Per edge and channel: rotate the sender's features,
``x' = D(R_e) x`` (per degree), multiply, rotate back with ``D(R_e)^T``.

Frame
    ``R_e = R_x(-theta) R_y(-phi)`` for the polar angles (theta, phi) of u_e about y
    (see :mod:`gaunt_tp.math.conventions`). Rotations about y mix each (m, -m) pair with
    cos(m a), sin(m a); the one about x is ``D(Q)^T D_y(-theta) D(Q)`` with the quarter turn
    Q of :func:`gaunt_tp.math.aligned.quarter_turn`. No angle is computed: cos and sin of
    theta and phi are components of u_e, and cos(k a), sin(k a) follow by recurrence.
    The azimuth is singular at the poles, so edges with ``u_y^2 > 1/2`` use a second chart,
    ``R_e = R(Q u_e) Q``: then sin(theta) >= 1/sqrt(2) always, and the matrices are smooth
    (all derivatives finite) for every non-zero edge, on the axis included. Zero-length
    edges get the identity chart's frame for +z; only their l2 = 0 term is kept (the
    caller masks the radial weights), which is isotropic, so any frame gives the same value.
"""

from __future__ import annotations

import torch

__all__ = ["aligned_messages", "edge_frame_wigner"]


def _multiples(cos: torch.Tensor, sin: torch.Tensor, kmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos(k a), sin(k a)`` for ``k = 0..kmax`` from ``cos a, sin a`` ``[E]``; returns two ``[E, kmax+1]``."""
    cs, ss = [torch.ones_like(cos)], [torch.zeros_like(sin)]
    for _ in range(kmax):
        c, s = cs[-1], ss[-1]
        cs.append(c * cos - s * sin)
        ss.append(s * cos + c * sin)
    return torch.stack(cs, dim=-1), torch.stack(ss, dim=-1)


def _pair_terms(cos_k: torch.Tensor, sin_k: torch.Tensor, l: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal ``cos(|m| a)`` and pair term ``sign(m) sin(|m| a)`` of ``D_y(-a)`` over m = -l..l, ``[E, 2l+1]``.

    ``D_y(b)`` (Y(R u) = D_y(b) Y(u) when R adds b to the azimuth) has
    ``D[m, m] = cos(|m| b)`` and ``D[m, -m] = -sign(m) sin(|m| b)``, so ``(D_y(-a) v)_m =
    cos(|m| a) v_m + sign(m) sin(|m| a) v_-m``.
    """
    m = torch.arange(-l, l + 1, device=cos_k.device)
    return cos_k[:, m.abs()], sin_k[:, m.abs()] * m.sign().to(sin_k.dtype)


def edge_frame_wigner(
    unit: torch.Tensor, degrees: list[int], turns: dict[int, torch.Tensor]
) -> dict[int, torch.Tensor]:
    """Per-edge Wigner matrices ``D^l(R_e)`` with ``D^l(R_e) Y_l(u_e) = Y_l(y axis)``.

    Args:
        unit: ``[E, 3]`` unit edge vectors, or zero rows for zero-length edges.
        degrees: the degrees l wanted.
        turns: ``l -> D^l(Q)`` (``[2l+1, 2l+1]``, dtype and device of ``unit``) for every l in ``degrees``.

    Shape:
        returns ``l -> [E, 2l+1, 2l+1]``; e3nn's real basis, m = -l..l.
    """
    q = unit.new_tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    zero = (unit * unit).sum(-1) < 0.5  # unit vectors have length 1 or 0
    u = torch.where(zero[:, None], unit.new_tensor([0.0, 0.0, 1.0]), unit)
    near_pole = u[:, 1] * u[:, 1] > 0.5
    v = torch.where(near_pole[:, None], u @ q.T, u)
    sin_t = torch.sqrt(v[:, 0] * v[:, 0] + v[:, 2] * v[:, 2])  # >= 1/sqrt(2)
    cos_p, sin_p = v[:, 2] / sin_t, v[:, 0] / sin_t
    kmax = max(degrees)
    cos_pk, sin_pk = _multiples(cos_p, sin_p, kmax)
    cos_tk, sin_tk = _multiples(v[:, 1], sin_t, kmax)
    out = {}
    for l in degrees:
        dq = turns[l]
        c, a = _pair_terms(cos_pk, sin_pk, l)
        m1 = dq * c[:, None, :] + dq.flip(1) * a.flip(1)[:, None, :]  # D(Q) D_y(-phi)
        c, a = _pair_terms(cos_tk, sin_tk, l)
        m2 = c[:, :, None] * m1 + a[:, :, None] * m1.flip(1)  # D_y(-theta) D(Q) D_y(-phi)
        d = dq.T @ m2
        out[l] = torch.where(near_pole[:, None, None], d @ dq, d)
    return out


def _rotate(x: torch.Tensor, wigner: dict[int, torch.Tensor], ls: tuple[int, ...], transpose: bool) -> torch.Tensor:
    """Apply ``D^l`` (or ``D^l^T``) per degree block of a class vector ``x [e, C, n]``."""
    parts, start = [], 0
    for l in ls:
        d = wigner[l] if transpose else wigner[l].transpose(1, 2)
        parts.append(torch.bmm(x[:, :, start : start + 2 * l + 1], d))  # rows: x_row D^T = (D x)^T
        start += 2 * l + 1
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def aligned_messages(
    x: torch.Tensor,
    wigner: dict[int, torch.Tensor],
    radial: torch.Tensor,
    tables: dict[str, torch.Tensor],
    ls_in: tuple[int, ...],
    ls_out: tuple[int, ...],
) -> torch.Tensor:
    """Gaunt products of sender features with their edges' zonal functions, in the edge frames.

    Args:
        x: ``[e, C, n_in]`` class vectors of the senders (degrees ``ls_in``).
        wigner: from :func:`edge_frame_wigner`, for every degree in ``ls_in`` and ``ls_out``.
        radial: ``[e, C, n_l2]`` radial weights ``R_e[l2, c]``.
        tables: ``gather_in``, ``evaluate``, ``zonal``, ``project``, ``gather_out`` of
            :func:`gaunt_tp.math.aligned.meridian_tables` (``M`` orders, ``Q`` nodes).
        ls_in, ls_out: degrees of the input and output class vectors.

    Shape:
        returns ``[e, C, n_out]``, the messages in the global frame.
    """
    e, c = x.shape[0], x.shape[1]
    orders, k_in, _ = tables["evaluate"].shape
    x_edge = _rotate(x, wigner, ls_in, transpose=False)  # [e, C, n_in]
    by_order = x_edge[:, :, tables["gather_in"].reshape(-1)].reshape(e * c, orders, k_in).transpose(0, 1)
    f = torch.bmm(by_order, tables["evaluate"])  # [M, eC, Q]
    g = (radial @ tables["zonal"]).reshape(1, e * c, f.shape[-1])  # [1, eC, Q] (sizes named: e may be 0)
    z = torch.bmm(f * g, tables["project"])  # [M, eC, K_out]
    z = z.transpose(0, 1).reshape(e, c, orders * z.shape[-1])
    z = torch.cat([z, z.new_zeros(e, c, 1)], dim=-1)[:, :, tables["gather_out"]]  # [e, C, n_out]
    return _rotate(z, wigner, ls_out, transpose=True)
