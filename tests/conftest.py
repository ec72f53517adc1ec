from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _restore_torch_state():
    """Tests may not leak a changed default dtype or seed into each other."""
    dtype = torch.get_default_dtype()
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(dtype)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference datasets beside the project (CI puts ../shared next to the clone)."""
    if not SHARED.is_dir():
        raise FileNotFoundError(f"expected the shared datasets at {SHARED}")
    return SHARED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Where no C compiler builds gaunt-tp's CPU kernels, tests parametrized on the fused backend are
    skipped with the reason (``auto`` then runs without it; everything else is still tested)."""
    from gaunt_tp.ops.native import native_error

    reason = native_error()
    if reason is None:
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "fused":
            item.add_marker(pytest.mark.skip(reason=f"fused kernel unavailable: {reason}"))
