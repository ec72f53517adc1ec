import pytest

from gaunt_tp.data import read_configurations


@pytest.fixture(scope="module")
def ethanol(shared_data):
    """The first four ethanol configurations of shared/data."""
    return read_configurations(shared_data / "ethanol" / "train.xyz", index=":4")
