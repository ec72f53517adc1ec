"""Builds and loads gaunt-tp's C kernels for the CPU on first use.

The kernels (``gaunt_tp/ops/csrc/*.c``) are plain C with GCC/Clang vector extensions and
OpenMP (gcc has it; Apple's clang needs libomp, else the build fails and ``auto`` does without);
they need no PyTorch headers. On first use they are compiled with the system's C
compiler (``$CC``, else ``cc``) with ``-O3 -march=native -fopenmp`` into a shared library,
cached in ``$GAUNT_TP_CACHE`` (default ``~/.cache/gaunt_tp``) under a name made from the
source, the flags, the compiler and this CPU's instruction-set flags (a ``-march=native``
build must not run on another CPU). Compiling takes about a second, once per machine;
concurrent processes each build into a temporary file and rename it into place.

Set ``GAUNT_TP_NATIVE=0`` to never build or load them: :func:`native_library` then raises and
``backend="auto"`` does not consider the fused backend.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["NativeUnavailable", "native_error", "native_library"]

_SOURCES = ("grid_product.c", "conv_quad.c", "conv_scalar.c", "conv_coupled.c", "many_body.c")
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=gnu11", "-fno-strict-aliasing")
_I64, _INT, _PTR = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
# gaunt_grid_product_*: a, b, out, count, mul, threads, parts, H, then three operands (a, b, out) of
# (off, str, counts, components, dim, table). gaunt_grid_product_*_backward: a, b, grad_out, grad_a,
# grad_b, count, mul, threads, parts, H, then operands a and b with a synthesis and a projection
# table each and the output's with its synthesis table.
_OPERAND = [_PTR, _PTR, _PTR, _I64, _I64, _PTR]
_HEAD = [_I64, _I64, _INT, _I64, _I64]
_SIGNATURES = {
    **{name: [_PTR] * 3 + _HEAD + _OPERAND * 3 for name in ("gaunt_grid_product_f32", "gaunt_grid_product_f64")},
    **{
        name: [_PTR] * 5 + _HEAD + [*_OPERAND, _PTR] * 2 + _OPERAND
        for name in ("gaunt_grid_product_f32_backward", "gaunt_grid_product_f64_backward")
    },
    # conv_quad.c: quad_node(out, B, ib, ptr, edges, R, ir, Z, nodes, C, L, P, threads),
    # quad_radial(out, A, ia, B, ib, Z, ptr, edges, rows, C, L, P, threads),
    # quad_zonal(out, A, ia, B, ib, R, ir, E, C, L, P, threads)
    **{f"quad_{kind}_{t}": [_PTR] * 8 + [_I64] * 4 + [_INT] for kind in ("node", "radial") for t in ("f32", "f64")},
    **{f"quad_zonal_{t}": [_PTR] * 7 + [_I64] * 4 + [_INT] for t in ("f32", "f64")},
    # and edge_groups(ptr, order, index, n, size) -> 0, or -1 for an index out of range
    "edge_groups": [_PTR] * 3 + [_I64] * 2,
    # conv_scalar.c: scal_node(out, B, ib, ptr, edges, R, ir, Y, deg, nodes, C, L, D, threads), scal_sender
    # (the same with A, ia), scal_radial(out, A, ia, B, ib, Y, deg, ptr, edges, rows, C, L, D, threads),
    # scal_harm(out, A, ia, B, ib, R, ir, deg, E, C, L, D, threads)
    **{
        f"scal_{kind}_{t}": [_PTR] * 9 + [_I64] * 4 + [_INT]
        for kind in ("node", "sender", "radial")
        for t in ("f32", "f64")
    },
    **{f"scal_harm_{t}": [_PTR] * 8 + [_I64] * 4 + [_INT] for t in ("f32", "f64")},
    # conv_coupled.c: cpl_node(out, B, ib, ptr, edges, R, ir, T, paths, nodes, C, P, Din, Dout, Tsum, threads),
    # cpl_sender (the same with A, ia), cpl_radial(out, A, ia, B, ib, T, paths, ptr, edges, rows, C, P, Din, Dout,
    # Tsum, threads), cpl_coupling(out, A, ia, B, ib, R, ir, paths, E, C, P, Din, Dout, Tsum, threads)
    **{
        f"cpl_{kind}_{t}": [_PTR] * 9 + [_I64] * 6 + [_INT]
        for kind in ("node", "sender", "radial")
        for t in ("f32", "f64")
    },
    **{f"cpl_coupling_{t}": [_PTR] * 8 + [_I64] * 6 + [_INT] for t in ("f32", "f64")},
    # many_body.c: forward(out, a, u, w, norm, S, R, dims, layout, threads),
    # backward(grad_a, grad_u, grad_w, grad_g, g, a, u, w, ta, tu, tw, norm, S, R, dims, layout, threads)
    **{f"many_body_forward_{t}": [_PTR] * 9 + [_INT] for t in ("f32", "f64")},
    **{f"many_body_backward_{t}": [_PTR] * 16 + [_INT] for t in ("f32", "f64")},
    # and symmetric_forward(out, a, u, w, coef, dims, layout, threads),
    # symmetric_backward(grad_a, grad_u, grad_w, grad_g, g, a, u, w, ta, tu, tw, coef, dims, layout, threads)
    **{f"symmetric_forward_{t}": [_PTR] * 7 + [_INT] for t in ("f32", "f64")},
    **{f"symmetric_backward_{t}": [_PTR] * 14 + [_INT] for t in ("f32", "f64")},
}
_VOID = ("quad_", "scal_", "cpl_", "many_body_", "symmetric_")  # kernels without a status code


class NativeUnavailable(RuntimeError):
    """The C kernels cannot be built or loaded here (no C compiler with OpenMP, not POSIX, or disabled)."""


def _cpu_fingerprint() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise NativeUnavailable("no C compiler found (set $CC or install gcc) to build gaunt-tp's CPU kernels")
    return cc


@functools.cache
def _load_or_error() -> ctypes.CDLL | NativeUnavailable:
    try:
        return _build_and_load()
    except NativeUnavailable as err:
        return err  # remembered: a failed build is not retried in this process


def _build_and_load() -> ctypes.CDLL:
    if os.environ.get("GAUNT_TP_NATIVE", "1") == "0":
        raise NativeUnavailable("disabled by GAUNT_TP_NATIVE=0")
    if os.name != "posix":
        raise NativeUnavailable(f"the CPU kernels are built on POSIX systems only, not {platform.system()}")
    cc = _compiler()
    sources = [Path(__file__).with_name("csrc") / name for name in _SOURCES]
    key = hashlib.sha256()
    for src in sources:
        key.update(src.read_bytes())
    key.update(" ".join((cc, *_FLAGS, _cpu_fingerprint())).encode())
    cache = Path(os.environ.get("GAUNT_TP_CACHE", Path.home() / ".cache" / "gaunt_tp"))
    target = cache / f"gaunt_tp_kernels_{key.hexdigest()[:16]}.so"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
        os.close(fd)
        try:
            try:
                done = subprocess.run(
                    [cc, *_FLAGS, *map(str, sources), "-o", tmp], capture_output=True, text=True, timeout=300
                )
            except (OSError, subprocess.TimeoutExpired) as err:
                raise NativeUnavailable(f"running the C compiler {cc} failed: {err}") from None
            if done.returncode != 0:
                raise NativeUnavailable(f"building gaunt-tp's CPU kernels with {cc} failed:\n{done.stderr.strip()}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as err:
        raise NativeUnavailable(f"loading {target} failed: {err}") from None
    for name, argtypes in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, (None if name.startswith(_VOID) else ctypes.c_int)
    return lib


def native_library() -> ctypes.CDLL:
    """The loaded kernels (built on first call); raises :class:`NativeUnavailable` with the reason."""
    result = _load_or_error()
    if isinstance(result, NativeUnavailable):
        raise result
    return result


def native_error() -> str | None:
    """None when the kernels load here, else why not."""
    result = _load_or_error()
    return str(result) if isinstance(result, NativeUnavailable) else None
