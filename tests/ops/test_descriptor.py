import pytest
from e3nn import o3

from gaunt_tp import GauntTensorProduct
from gaunt_tp.ops import GauntDescriptor


def test_paths_and_classes():
    d = GauntDescriptor("4x0e + 4x1o + 4x1e", "4x1o", "4x1o + 4x0o + 4x2o + 4x0e")
    irs = [(d.irreps_in1[i].ir, d.irreps_in2[j].ir, d.irreps_out[k].ir) for i, j, k in d.paths]
    assert (o3.Irrep("0e"), o3.Irrep("1o"), o3.Irrep("1o")) in irs
    assert (o3.Irrep("1e"), o3.Irrep("1o"), o3.Irrep("0o")) in irs  # pseudo x natural -> pseudo
    assert all((a.l + b.l + c.l) % 2 == 0 for a, b, c in irs)
    assert {c.sign for c in d.classes1} == {1, -1}


@pytest.mark.parametrize(
    "args, error, match",
    [
        (("4x1o", "4x1o", "4x1e"), ValueError, "parity-odd"),
        (("4x1o", "4x1o", "4x1o"), ValueError, "not reached"),
        (("4x2e", "4x1o", "4x2o"), ValueError, "parity-odd"),
        (("4x0e", "4x0e", "4x2e"), ValueError, "not reached"),
        (("4x0e + 2x1o", "4x0e", "4x0e"), ValueError, "same multiplicity"),
        (("4x0e", "3x0e", "4x0e"), ValueError, "equal or one of them 1"),
        (("4x0e", "4x0e", "3x0e"), ValueError, "multiplicity 4"),
        (("4x0e + 4x0e", "4x0e", "4x0e"), ValueError, "twice"),
        (("", "4x0e", "4x0e"), ValueError, "empty"),
        (("4x0q", "4x0e", "4x0e"), ValueError, "not a valid irreps string"),
        ((3, "4x0e", "4x0e"), TypeError, "Irreps or a string"),
    ],
)
def test_bad_irreps_are_clear_errors(args, error, match):
    with pytest.raises(error, match=match):
        GauntTensorProduct(*args)


def test_cross_product_error_names_the_path():
    with pytest.raises(ValueError, match=r"1o x 1o"):
        GauntTensorProduct("1x1o", "1x1o", "1x1e")


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        GauntTensorProduct("1x0e", "1x0e", "1x0e", backend="magic")
