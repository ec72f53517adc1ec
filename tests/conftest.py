import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_state():
    """Tests may not leak a changed default dtype or seed into each other."""
    dtype = torch.get_default_dtype()
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(dtype)
