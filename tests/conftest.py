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
