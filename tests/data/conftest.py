from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference datasets beside the project (CI puts ../shared next to the clone)."""
    if not SHARED.is_dir():
        raise FileNotFoundError(f"expected the shared datasets at {SHARED}")
    return SHARED
