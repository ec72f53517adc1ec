"""The fused C backend: every parity-part grouping, tiles that straddle nodes, higher derivatives,
threads, and what happens where the kernel cannot be built."""

import pytest
import torch

import gaunt_tp.ops.fused as fused
from gaunt_tp import GauntTensorProduct
from gaunt_tp.math.quadrature import lebedev_grid, reflection_reduced
from gaunt_tp.ops import native
from gaunt_tp.ops.fused import reflection_parts
from gaunt_tp.testing import natural_irreps

pytestmark = pytest.mark.skipif(native.native_error() is not None, reason="no C compiler here")

CASES = [
    (natural_irreps(3, 3), natural_irreps(2, 3), natural_irreps(4, 3)),
    ("3x0e + 3x1e + 3x2o", "3x1o + 3x0o", "3x1o + 3x0o + 3x2e + 3x3e + 3x1e + 3x2o"),
    (natural_irreps(2, 5), natural_irreps(3, 1), natural_irreps(3, 5)),  # multiplicity 1 broadcast
]


@pytest.mark.parametrize("axes", fused._REFLECTION_GROUPS, ids=str)
@pytest.mark.parametrize("case", CASES, ids=["natural", "pseudo", "broadcast-mul"])
def test_every_reflection_group_gives_the_dense_result(monkeypatch, axes, case):
    monkeypatch.setattr(fused, "_REFLECTION_GROUPS", (axes,))
    tp = GauntTensorProduct(*case, backend="fused")
    assert tp.impls["fused"].axes == axes
    oracle = GauntTensorProduct(*case, backend="dense")
    # 7 nodes x 3 or 5 channels: tiles of 4, 8 or 16 products straddle nodes
    x1 = torch.randn(7, tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.randn(7, tp.irreps_in2.dim, dtype=torch.float64)
    torch.testing.assert_close(tp(x1, x2), oracle(x1, x2), rtol=0, atol=1e-12)
    out32 = tp(x1.float(), x2.float()).double()
    expected = oracle(x1, x2)
    assert ((out32 - expected).abs().max() / expected.abs().max()) < 1e-6


@pytest.mark.parametrize("case", CASES, ids=["natural", "pseudo", "broadcast-mul"])
def test_third_derivatives_match_the_dense_backend(case):
    tps = [GauntTensorProduct(*case, backend=b) for b in ("fused", "dense")]
    x = torch.randn(3, tps[0].irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, tps[0].irreps_in2.dim, dtype=torch.float64, requires_grad=True)  # broadcast over nodes
    results = []
    for tp in tps:
        (g1,) = torch.autograd.grad(tp(x, y).pow(2).sum(), x, create_graph=True)
        (g2,) = torch.autograd.grad(g1.pow(2).sum(), y, create_graph=True)
        (g3,) = torch.autograd.grad(g2.sum(), x)
        results.append(g3)
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-10)


def test_whole_node_tiles_and_threads():
    irreps = natural_irreps(4, 32)  # 32 channels: every tile is one node's consecutive channels
    tp = GauntTensorProduct(irreps, irreps, irreps, backend="fused")
    oracle = GauntTensorProduct(irreps, irreps, irreps, backend="dense")
    x1, x2 = torch.randn(2, 9, tp.irreps_in1.dim, dtype=torch.float64)
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.testing.assert_close(tp(x1, x2), oracle(x1, x2), rtol=0, atol=1e-12)
    finally:
        torch.set_num_threads(previous)


def test_reflection_parts_and_reduced_grid_integrate_exactly():
    grid = lebedev_grid(12)
    points, weights = reflection_reduced(grid, (0, 1, 2))
    parts = reflection_parts(4, (0, 1, 2))
    from e3nn import o3

    full = o3.spherical_harmonics(list(range(5)), grid.points, normalize=False, normalization="integral")
    kept = o3.spherical_harmonics(list(range(5)), points, normalize=False, normalization="integral")
    for i in range(25):
        for j in range(25):
            exact = float((grid.weights * full[:, i] * full[:, j]).sum())  # delta_ij
            reduced = float((weights * kept[:, i] * kept[:, j]).sum()) if parts[i] == parts[j] else 0.0
            assert abs(exact - reduced) < 1e-12


def test_unsymmetric_grid_is_refused():
    grid = lebedev_grid(6)
    grid.points = grid.points @ torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]  # rotated: no mirrors
    with pytest.raises(ValueError, match="not symmetric under the mirror of axis"):
        reflection_reduced(grid, (0,))


def test_disabled_kernels(monkeypatch):
    monkeypatch.setenv("GAUNT_TP_NATIVE", "0")
    native._load_or_error.cache_clear()
    try:
        with pytest.raises(native.NativeUnavailable, match="GAUNT_TP_NATIVE=0"):
            GauntTensorProduct(natural_irreps(1, 2), natural_irreps(1, 2), natural_irreps(1, 2), backend="fused")
        auto = GauntTensorProduct(natural_irreps(4, 2), natural_irreps(4, 2), natural_irreps(4, 2))
        assert "fused" not in auto.impls
        auto(torch.randn(3, auto.irreps_in1.dim), torch.randn(3, auto.irreps_in1.dim))
        assert auto.backend in ("dense", "fft", "grid")
    finally:
        monkeypatch.delenv("GAUNT_TP_NATIVE")
        native._load_or_error.cache_clear()
    assert native.native_error() is None


def test_build_into_a_fresh_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GAUNT_TP_CACHE", str(tmp_path))
    native._load_or_error.cache_clear()
    try:
        native.native_library()
        assert len(list(tmp_path.glob("gaunt_tp_kernels_*.so"))) == 1
        assert not list(tmp_path.glob("*.tmp*")) and len(list(tmp_path.iterdir())) == 1  # no temporary left
    finally:
        native._load_or_error.cache_clear()


def test_bad_device_and_dtype_are_clear_errors():
    tp = GauntTensorProduct(natural_irreps(1, 2), natural_irreps(1, 2), natural_irreps(1, 2), backend="fused")
    x = torch.randn(2, tp.irreps_in1.dim)
    with pytest.raises(TypeError, match="float32 or float64"):
        tp(x.half(), x.half())


def test_missing_compiler_warns_once_and_auto_goes_on(monkeypatch, tmp_path):
    import gaunt_tp.ops.tensor_product as tensor_product

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("GAUNT_TP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tensor_product, "_WARNED", [])
    native._load_or_error.cache_clear()
    try:
        with pytest.raises(native.NativeUnavailable, match="running the C compiler"):
            GauntTensorProduct(natural_irreps(1, 2), natural_irreps(1, 2), natural_irreps(1, 2), backend="fused")
        with pytest.warns(RuntimeWarning, match="fused CPU kernel is unavailable"):
            auto = GauntTensorProduct(natural_irreps(2, 2), natural_irreps(2, 2), natural_irreps(2, 2))
        assert "fused" not in auto.impls
        assert not list((tmp_path / "cache").glob("*"))  # no half-built library left behind
    finally:
        native._load_or_error.cache_clear()


@pytest.mark.parametrize("axes", fused._REFLECTION_GROUPS, ids=str)
def test_parity_odd_product_under_every_reflection_group(monkeypatch, axes):
    from gaunt_tp.ops.descriptor import GauntDescriptor
    from gaunt_tp.ops.odd import OddPathProduct

    monkeypatch.setattr(fused, "_REFLECTION_GROUPS", (axes,))
    desc = GauntDescriptor(natural_irreps(3, 3), "3x1o + 3x2e", "3x1e + 3x2o + 3x3e + 3x4o", odd=True)
    kernel, reference = OddPathProduct(desc, backend="fused"), OddPathProduct(desc, backend="grid")
    assert kernel.kernel().axes == axes
    x1 = torch.randn(7, desc.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(7, desc.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(kernel(x1, x2), reference(x1, x2), rtol=0, atol=1e-12)
    cot = torch.randn(7, desc.irreps_out.dim, dtype=torch.float64)
    grads = [torch.autograd.grad(m(x1, x2), (x1, x2), cot) for m in (kernel, reference)]
    for g_kernel, g_reference in zip(*grads):
        torch.testing.assert_close(g_kernel, g_reference, rtol=0, atol=1e-12)


def test_kernel_calls_are_guarded():
    tp = GauntTensorProduct(natural_irreps(1, 2), natural_irreps(1, 2), natural_irreps(1, 2), backend="fused")
    plan = tp.impls["fused"].plan
    x = torch.randn(3, 8)
    with pytest.raises(RuntimeError, match="one dtype"):
        plan.run(x, x.double(), "a0", "b0", "o0")
    with pytest.raises(RuntimeError, match="contiguous=False"):
        plan.run(x, torch.randn(8, 3).t(), "a0", "b0", "o0")
    with pytest.raises(ValueError, match=r"expected \[3, 8\]"):
        plan.run(x, torch.randn(3, 7), "a0", "b0", "o0")


def test_copies_and_saves_after_use():
    import copy
    import io

    tp = GauntTensorProduct(natural_irreps(1, 2), natural_irreps(1, 2), natural_irreps(1, 2), backend="fused")
    x = torch.randn(3, tp.irreps_in1.dim)
    out = tp(x, x)
    twin = copy.deepcopy(tp)  # as an EMA of the weights does
    torch.testing.assert_close(twin(x, x), out)
    buffer = io.BytesIO()
    torch.save(tp, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.load(buffer, weights_only=False)(x, x), out)


def test_odd_product_arguments_are_checked():
    from gaunt_tp.ops.descriptor import GauntDescriptor
    from gaunt_tp.ops.fused import FusedOddProduct
    from gaunt_tp.ops.odd import OddPathProduct

    with pytest.raises(ValueError, match="odd=True"):
        FusedOddProduct(GauntDescriptor("2x1o", "2x1o", "2x0e"))
    with pytest.raises(ValueError, match="backend must be 'auto', 'grid' or 'fused'"):
        OddPathProduct(GauntDescriptor("2x1o", "2x1o", "2x1e", odd=True), backend="dense")
