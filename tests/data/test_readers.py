import warnings

import ase.io
import numpy as np
import pytest

from gaunt_tp.data import KCAL_PER_MOL_IN_EV, KeySpec, read_configurations, read_rmd17


def test_3bpa_loads_with_no_flags(shared_data):
    path = shared_data / "3bpa" / "train_300K.xyz"
    configs = read_configurations(path, index=":5")
    assert len(configs) == 5
    ref = ase.io.read(path, index="0")
    c = configs[0]
    assert c.num_atoms == 27 and c.pbc == (False, False, False)
    assert c.energy == pytest.approx(ref.get_potential_energy(), abs=0)
    np.testing.assert_array_equal(c.forces, ref.get_forces())
    assert c.source.endswith("train_300K.xyz#0")


def test_ethanol_keeps_config_type(shared_data):
    configs = read_configurations(shared_data / "ethanol" / "train.xyz", index=":3")
    assert {c.config_type for c in configs} == {"Training_set"}


def test_rmd17_is_converted_to_ev(shared_data):
    path = shared_data / "rmd17" / "rmd17_ethanol_train_01.npz"
    configs = read_rmd17(path, limit=4)
    with np.load(path) as raw:
        assert configs[2].energy == pytest.approx(raw["energies"][2] * KCAL_PER_MOL_IN_EV)
        np.testing.assert_allclose(configs[2].forces, raw["forces"][2] * KCAL_PER_MOL_IN_EV)
        np.testing.assert_array_equal(configs[2].atomic_numbers, raw["nuclear_charges"])
    assert KCAL_PER_MOL_IN_EV == pytest.approx(0.0433641, rel=1e-6)


def test_custom_keys(tmp_path, shared_data):
    atoms = ase.io.read(shared_data / "ethanol" / "train.xyz", index="0")
    atoms.info["my_energy"] = 1.5
    atoms.arrays["my_forces"] = np.ones((9, 3))
    atoms.calc = None
    path = tmp_path / "custom.xyz"
    ase.io.write(path, atoms, format="extxyz")
    (c,) = read_configurations(path, keys=KeySpec(energy_key="my_energy", forces_key="my_forces"))
    assert c.energy == 1.5 and (c.forces == 1).all()


def write(tmp_path, text: str):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    return path


GOOD = '2\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 pbc="F F F"\nH 0 0 0 0 0 0\nH 0 0 0.7 0 0 0\n'


def test_bad_data_names_file_and_index(tmp_path):
    no_energy = GOOD + GOOD.replace(" energy=-1.0", "")
    with pytest.raises(ValueError, match=r"bad.xyz#1: no energy"):
        read_configurations(write(tmp_path, no_energy))
    no_forces = GOOD.replace(":forces:R:3", "").replace(" 0 0 0\n", "\n").replace("0.7 0 0 0", "0.7")
    with pytest.raises(ValueError, match=r"#0: no forces"):
        read_configurations(write(tmp_path, no_forces))
    nan = GOOD + GOOD.replace("H 0 0 0.7", "H 0 nan 0.7")
    with pytest.raises(ValueError, match=r"#1: positions are not all finite"):
        read_configurations(write(tmp_path, nan))
    with pytest.raises(ValueError, match="holds no configurations"):
        read_configurations(write(tmp_path, ""))
    stress = GOOD.replace('pbc="F F F"', 'pbc="F F F" REF_stress="1 2 3 4 5 6"')
    assert read_configurations(write(tmp_path, stress))[0].stress[1, 2] == 4.0  # Voigt: yz
    for bad, message in (("1 2 3 4 5 inf", "#1: stress is not all finite"), ("1 2 3 nan 5 6", "#1: stress is not"),
                         ("1 2 3 4", "#1: stress must have 6 .Voigt. or 9 components, got 4")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            read_configurations(write(tmp_path, stress + stress.replace("1 2 3 4 5 6", bad)))
    with pytest.raises(ValueError, match="no such file"):
        read_configurations(tmp_path / "missing.xyz")


def test_bad_cells_atoms_and_elements_name_file_and_index(tmp_path):
    """A cell with a NaN or inf, a configuration without atoms, and a species that is no element (ASE reads ``X`` as
    atomic number 0) are errors where they are read, not later in the neighbour list or the element table."""
    boxed = GOOD.replace('pbc="F F F"', 'Lattice="5 0 0 0 5 0 0 0 5" pbc="T T T"')
    assert read_configurations(write(tmp_path, boxed))[0].cell[1, 1] == 5.0
    for bad in ("5 0 0 0 nan 0 0 0 5", "5 0 0 0 5 0 0 0 inf"):
        with pytest.raises(ValueError, match=r"bad.xyz#1: the cell \(Lattice\) is not all finite"):
            read_configurations(write(tmp_path, boxed + boxed.replace("5 0 0 0 5 0 0 0 5", bad)))
    empty = '0\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 pbc="F F F"\n'
    with pytest.raises(ValueError, match=r"bad.xyz#1: holds no atoms"):
        read_configurations(write(tmp_path, GOOD + empty))
    with pytest.raises(ValueError, match=r"bad.xyz#1: atomic number 0 is no element"):
        read_configurations(write(tmp_path, GOOD + GOOD.replace("H 0 0 0.7", "X 0 0 0.7")))
    unknown = GOOD + GOOD + GOOD.replace("H 0 0 0.7", "Qq 0 0 0.7")  # a symbol ASE does not know stops its reader
    with pytest.raises(ValueError, match=r"bad.xyz#2: cannot be read by ASE \(KeyError: 'Qq'\)"):
        read_configurations(write(tmp_path, unknown))
    with pytest.raises(ValueError, match=r"bad.xyz \(configuration 1 of index '1:'\): cannot be read by ASE"):
        read_configurations(write(tmp_path, unknown), index="1:")
    assert len(read_configurations(write(tmp_path, unknown), index=":2")) == 2


def test_a_key_that_ase_moves_onto_its_calculator_is_read(tmp_path):
    """ASE keeps keys it knows (free_energy, energy) in its calculator's results, not in atoms.info: a key named by
    the user is looked for there before the 'energy' fallback."""
    both = GOOD.replace("energy=-1.0", "energy=-1.0 free_energy=-1.5")
    (c,) = read_configurations(write(tmp_path, both), keys=KeySpec(energy_key="free_energy"))
    assert c.energy == -1.5
    only_free = both.replace("energy=-1.0 ", "")
    (c,) = read_configurations(write(tmp_path, only_free), keys=KeySpec(energy_key="free_energy"))
    assert c.energy == -1.5
    (c,) = read_configurations(write(tmp_path, both))  # the default key is absent: ASE's energy
    assert c.energy == -1.0


def test_a_named_key_missing_from_some_or_all_configurations_is_a_warning(tmp_path):
    """A key the user named (not the default) that configurations lack, where ASE's own label is read instead:
    warned once, naming the file, the key, and how many lack it (the first by index); the default keys fall back
    without a word, and a named key every configuration holds is read silently."""
    with pytest.warns(UserWarning, match=r"bad.xyz: energy key 'REF_enrgy' is in none of its 2 configurations"):
        configs = read_configurations(write(tmp_path, GOOD + GOOD), keys=KeySpec(energy_key="REF_enrgy"))
    assert [c.energy for c in configs] == [-1.0, -1.0]
    labelled = GOOD.replace("pbc=", "DFT_energy=-2.0 pbc=")
    some = r"energy key 'DFT_energy' is missing from 2 of its 3 configurations \(the first: #1\); ASE's 'energy' was"
    with pytest.warns(UserWarning, match=r"bad.xyz: " + some):
        configs = read_configurations(write(tmp_path, labelled + GOOD + GOOD), keys=KeySpec(energy_key="DFT_energy"))
    assert [c.energy for c in configs] == [-2.0, -1.0, -1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_configurations(write(tmp_path, labelled + labelled), keys=KeySpec(energy_key="DFT_energy"))
        read_configurations(write(tmp_path, GOOD))  # the default keys fall back to ASE's without a word


def test_labels_that_are_not_numbers_name_file_and_index(tmp_path):
    for bad, message in (("REF_energy=abc", r"#1: the energy \('REF_energy' or 'energy'\) must be one number, got 'ab"),
                         ("config_weight=heavy", r"#1: 'config_weight' must be one number, got 'heavy'"),
                         ('REF_energy="1 2"', r"#1: the energy .* must be one number"),
                         ("REF_energy=T", r"#1: the energy .* must be one number, got the boolean True"),
                         ("config_weight=nan", r"#1: 'config_weight' must be finite and zero or more, got nan"),
                         ("config_weight=inf", r"#1: 'config_weight' must be finite and zero or more, got inf"),
                         ("config_weight=-1", r"#1: 'config_weight' must be finite and zero or more, got -1"),
                         ):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            read_configurations(write(tmp_path, GOOD + GOOD.replace('pbc="F F F"', f'pbc="F F F" {bad}')))
    weighted = GOOD.replace('pbc="F F F"', 'pbc="F F F" config_weight=0')  # zero: out of the loss, allowed
    assert [c.weight for c in read_configurations(write(tmp_path, GOOD + weighted))] == [1.0, 0.0]


def test_bad_rmd17_arrays(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(
        path,
        nuclear_charges=np.array([1, 1]),
        coords=np.zeros((3, 2, 3)),
        energies=np.zeros(3),
        forces=np.zeros((3, 3, 3)),
    )
    with pytest.raises(ValueError, match="array lengths do not match"):
        read_rmd17(path)
    arrays = {"nuclear_charges": np.array([1, 1]), "coords": np.zeros((3, 2, 3)), "forces": np.zeros((3, 2, 3))}
    np.savez(path, energies=np.zeros((3, 5)), **arrays)  # not one energy per configuration
    with pytest.raises(ValueError, match=r"array lengths do not match: .* energies \(3, 5\)"):
        read_rmd17(path)
    np.savez(path, energies=np.ones((3, 1)), **arrays)  # one column (the original MD17 files' layout) is read
    assert [c.energy for c in read_rmd17(path, limit=2)] == [KCAL_PER_MOL_IN_EV] * 2
    with pytest.raises(ValueError, match="limit must be 1 or more, got 0"):
        read_rmd17(path, limit=0)
    np.savez(path, energies=np.zeros(3), **{**arrays, "nuclear_charges": np.array([1, 0])})
    with pytest.raises(ValueError, match=r"bad.npz \(nuclear_charges\): atomic number 0 is no element"):
        read_rmd17(path)
    np.savez(path, nuclear_charges=np.array([1, 1]), coords=np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="missing arrays"):
        read_rmd17(path)


def test_read_any_dispatches_on_the_suffix(shared_data):
    from gaunt_tp.data import read_any

    assert read_any(shared_data / "rmd17" / "rmd17_ethanol_test_01.npz")[0].config_type == "rmd17_ethanol_test_01"
    assert read_any(shared_data / "ethanol" / "test_MD.xyz", keys=KeySpec())[0].num_atoms == 9


def test_virials_are_read_as_stress_where_there_is_none(tmp_path):
    """MACE's REF_virials (eV): the stress -virials/volume (ASE's sign), where a configuration has no stress label;
    a stress label wins; virials without a cell, or not finite, are clear errors."""
    from gaunt_tp.testing import emt_copper

    frames = emt_copper(2, seed=1, strain=0.03)
    stresses = [a.get_stress(voigt=False) for a in frames]
    for atoms, stress in zip(frames, stresses):
        atoms.info["REF_virials"] = -stress * atoms.get_volume()
        atoms.calc = None  # no stress= written: the virials are the only label
        atoms.info["REF_energy"], atoms.arrays["REF_forces"] = -1.0, np.zeros((len(atoms), 3))
    frames[1].info["REF_virials"] = frames[1].info["REF_virials"].flatten()[[0, 4, 8, 5, 2, 1]]  # Voigt order
    path = tmp_path / "virials.xyz"
    ase.io.write(path, frames, format="extxyz")
    configs = read_configurations(path)
    for c, stress in zip(configs, stresses):
        np.testing.assert_allclose(c.stress, stress, rtol=1e-10, atol=1e-12)
        assert np.abs(c.stress).max() > 1e-3  # strained cells: a stress to read
    frames[0].info["my_virials"] = frames[0].info.pop("REF_virials")
    frames[0].info["REF_stress"] = np.full((3, 3), 0.5)  # wins over the virials
    ase.io.write(path, frames, format="extxyz")
    (c0, c1) = read_configurations(path, keys=KeySpec(virials_key="my_virials"))
    assert (c0.stress == 0.5).all() and c1.stress is None  # frame 1's REF_virials are not the key named
    molecule = GOOD.replace('pbc="F F F"', 'pbc="F F F" REF_virials="1 2 3 4 5 6"')
    with pytest.raises(ValueError, match=r"bad.xyz#1: virials \('REF_virials'\) need a cell that spans a volume"):
        read_configurations(write(tmp_path, GOOD + molecule))
    boxed = molecule.replace('pbc="F F F"', 'Lattice="5 0 0 0 5 0 0 0 5" pbc="T T T"')
    (c,) = read_configurations(write(tmp_path, boxed))
    assert c.stress[1, 2] == pytest.approx(-4.0 / 125)  # Voigt yz, over the volume
    with pytest.raises(ValueError, match=r"#0: virials \('REF_virials'\) are not all finite"):
        read_configurations(write(tmp_path, boxed.replace("1 2 3 4 5 6", "1 2 nan 4 5 6")))
    with pytest.raises(ValueError, match=r"#0: virials must have 6 .Voigt. or 9 components, got 4"):
        read_configurations(write(tmp_path, boxed.replace("1 2 3 4 5 6", "1 2 3 4")))


def test_named_virials_win_over_ases_stress_and_a_misspelt_stress_key_is_a_warning(tmp_path):
    """ASE's own ``stress=`` is the last fallback, as for energies and forces: the named virials come before it, and
    a stress key the user named that is missing (read from ASE's stress instead) is warned about."""
    boxed = GOOD.replace('pbc="F F F"', 'Lattice="5 0 0 0 5 0 0 0 5" pbc="T T T" stress="9 0 0 0 9 0 0 0 9"')
    (c,) = read_configurations(write(tmp_path, boxed))  # ASE's stress alone: read without a word
    assert (np.diag(c.stress) == 9.0).all()
    with_virials = boxed.replace("pbc=", 'REF_virials="125 125 125 0 0 0" pbc=')
    (c,) = read_configurations(write(tmp_path, with_virials))
    np.testing.assert_allclose(np.diag(c.stress), -1.0)  # -virials / volume, not ASE's 9
    with pytest.warns(UserWarning, match=r"bad.xyz: stress key 'DFT_strss' is in none of its 1 configurations"):
        (c,) = read_configurations(write(tmp_path, boxed), keys=KeySpec(stress_key="DFT_strss"))
    assert (np.diag(c.stress) == 9.0).all()


def test_configurations_written_as_atoms_read_back(tmp_path, shared_data):
    """``Configuration.to_atoms`` (gaunt-tp eval's rMD17 output) writes what the reader reads back: the same
    structure, labels in eV and eV/A under the keys given, and the config_type."""
    configs = read_rmd17(shared_data / "rmd17" / "rmd17_ethanol_test_01.npz", limit=3)
    path = tmp_path / "back.xyz"
    ase.io.write(path, [c.to_atoms("DFT_energy", "DFT_forces") for c in configs], format="extxyz")
    back = read_configurations(path, keys=KeySpec(energy_key="DFT_energy", forces_key="DFT_forces"))
    for a, b in zip(configs, back):
        np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
        np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=1e-8)  # extxyz writes 8 decimals
        np.testing.assert_allclose(a.forces, b.forces, rtol=0, atol=1e-8)
        assert b.energy == pytest.approx(a.energy, rel=1e-15) and b.config_type == a.config_type
