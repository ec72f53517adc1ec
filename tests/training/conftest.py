import ase.io
import pytest


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    """12 ethanol configurations (9 atoms each) of the shared data, in an extxyz file."""
    path = tmp_path_factory.mktemp("data") / "small.xyz"
    ase.io.write(path, ase.io.read(shared_data / "ethanol" / "train.xyz", index=":12"))
    return path
