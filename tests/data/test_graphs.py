import dataclasses
import re
import warnings

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from gaunt_tp.data import (
    Configuration,
    ElementTable,
    KeySpec,
    collate,
    e0s_average,
    e0s_from_isolated_atoms,
    edge_pairs,
    neighbor_list,
    read_configurations,
    resolve_e0s,
    shift_and_scale,
    split_isolated_atoms,
    to_graph,
    train_valid_split,
)
from gaunt_tp.errors import InputWarning


def as_set(i, j, shifts):
    return sorted(zip(i.tolist(), j.tolist(), *np.asarray(shifts).T.tolist()))


@pytest.mark.parametrize("cutoff", [2.5, 4.0, 6.0])
def test_periodic_neighbours_match_ase(cutoff):
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    mine = neighbor_list(atoms.positions, atoms.cell.array, tuple(atoms.pbc), cutoff)
    assert as_set(*mine) == as_set(*ase_neighbor_list("ijS", atoms, cutoff))


def test_mixed_and_non_periodic_neighbours_match_ase():
    slab = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 2, 2)
    slab.pbc = (True, True, False)
    slab.rattle(0.05, seed=2)
    assert as_set(*neighbor_list(slab.positions, slab.cell.array, (True, True, False), 3.5)) == as_set(
        *ase_neighbor_list("ijS", slab, 3.5)
    )
    mol = molecule("CH3CH2OH")
    assert as_set(*neighbor_list(mol.positions, mol.cell.array, (False,) * 3, 2.0)) == as_set(
        *ase_neighbor_list("ijS", mol, 2.0)
    )


@pytest.mark.parametrize("build", ["graphene", "nanotube", "slab"])
def test_cells_with_zero_vectors_along_their_vacuum_match_ase(build):
    """ASE's builders leave the non-periodic cell vectors of sheets, wires and slabs at zero (no volume)."""
    from ase.build import fcc111, graphene, nanotube

    atoms = {
        "graphene": lambda: graphene(size=(2, 2, 1)),
        "nanotube": lambda: nanotube(3, 0, length=2),
        "slab": lambda: fcc111("Al", (2, 2, 3)),
    }[build]()
    assert abs(np.linalg.det(atoms.cell.array)) < 1e-12 and not atoms.pbc.all()
    atoms.rattle(0.05, seed=4)
    atoms.positions[0] += 20.0 * np.asarray(~atoms.pbc, dtype=float)  # one atom far out into the vacuum
    for cutoff in (2.0, 5.0):
        mine = neighbor_list(atoms.positions, atoms.cell.array, tuple(atoms.pbc), cutoff)
        assert as_set(*mine) == as_set(*ase_neighbor_list("ijS", atoms, cutoff))
    assert len(mine[0]) > 0


def test_dependent_periodic_cell_vectors_are_an_error_naming_the_configuration():
    cell = np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 0]])
    config = Configuration(atomic_numbers=np.array([1, 1]), positions=np.eye(3)[:2], cell=cell,
                           pbc=(True, True, False), source="x.xyz#2")  # fmt: skip
    with pytest.raises(ValueError, match=r"x.xyz#2: the cell vectors along the periodic directions must be"):
        to_graph(config, ElementTable([1]), cutoff=3.0)


@pytest.mark.parametrize("case", ["periodic", "molecule"])
def test_edge_pairs_group_each_edge_with_its_reverse(case):
    if case == "periodic":  # cutoff beyond the cell: an atom's own images are neighbours too
        atoms = bulk("Cu", "fcc", a=3.6)
        atoms.rattle(0.05, seed=3)
        i, j, s = neighbor_list(atoms.positions, atoms.cell.array, (True,) * 3, 6.0)
        assert (i == j).any()
    else:
        atoms = molecule("CH3CH2OH")
        i, j, s = neighbor_list(atoms.positions, atoms.cell.array, (False,) * 3, 2.5)
    pair, rep = edge_pairs(i, j, s)
    assert pair.shape == i.shape and rep.shape == (len(i) // 2,)  # a full list: two edges per pair
    assert np.bincount(pair).tolist() == [2] * len(rep)
    assert (pair[rep] == np.arange(len(rep))).all()
    for e in range(len(i)):
        r = rep[pair[e]]
        same = (i[r], j[r], *s[r]) == (i[e], j[e], *s[e])
        reverse = (i[r], j[r], *s[r]) == (j[e], i[e], *(-s[e]))
        assert same or reverse
    # indices too large for one int64 key per edge take the row-wise path, with the same pairs
    big_pair, big_rep = edge_pairs(i + 2**40, j + 2**40, s * 2**20)
    assert (big_pair == pair).all() and (big_rep == rep).all()
    # an edge listed without its reverse is a pair of its own
    pair, rep = edge_pairs(i[:1], j[:1], s[:1])
    assert pair.tolist() == [0] and rep.tolist() == [0]
    assert edge_pairs(i[:0], j[:0], s[:0])[1].shape == (0,)


def test_graph_edges_and_batching(shared_data):
    configs = read_configurations(shared_data / "ethanol" / "train.xyz", index=":3")
    table = ElementTable([1, 6, 8])
    graphs = [to_graph(c, table, cutoff=3.0) for c in configs]
    batch = collate(graphs)
    assert batch.num_graphs == 3 and batch.positions.shape == (27, 3)
    assert batch.ptr.tolist() == [0, 9, 18, 27] and batch.batch.tolist() == [0] * 9 + [1] * 9 + [2] * 9
    # edges of graph 1 point into atoms 9..17 and keep their vectors
    e0 = graphs[0].edge_index.shape[1]
    e1 = graphs[1].edge_index.shape[1]
    torch.testing.assert_close(batch.edge_index[:, e0 : e0 + e1], graphs[1].edge_index + 9)
    vec = batch.positions[batch.edge_index[1]] + batch.shifts - batch.positions[batch.edge_index[0]]
    assert float(vec.norm(dim=1).max()) < 3.0
    # pairs stay within their graph and pair edges of equal length
    lengths = vec.norm(dim=1)
    torch.testing.assert_close(lengths, lengths[batch.pair_edge][batch.edge_pair], rtol=1e-14, atol=0)
    assert batch.pair_edge.shape[0] == sum(g.pair_edge.shape[0] for g in graphs)
    graph_of_edge = batch.batch[batch.edge_index[0]]
    assert (graph_of_edge[batch.pair_edge][batch.edge_pair] == graph_of_edge).all()
    torch.testing.assert_close(batch.energy, torch.tensor([c.energy for c in configs], dtype=torch.float64))


def test_unknown_element_is_named():
    config = Configuration(atomic_numbers=np.array([1, 29]), positions=np.zeros((2, 3)), source="x.xyz#4")
    with pytest.raises(ValueError, match=r"x.xyz#4: elements Z=\[29\]"):
        to_graph(config, ElementTable([1, 6]), cutoff=3.0)


def test_e0s(shared_data, tmp_path):
    isolated = read_configurations(shared_data / "ethanol" / "isolated_atoms.xyz", require_forces=False)
    e0s = e0s_from_isolated_atoms(isolated)
    assert {1, 6, 8} <= set(e0s) and e0s[1] == pytest.approx(-13.568422383046626)
    assert resolve_e0s(str(shared_data / "ethanol" / "isolated_atoms.xyz"), [], [1, 6, 8]) == e0s
    assert resolve_e0s("{1: -1.0, 8: -2.0}", [], [1, 8]) == {1: -1.0, 8: -2.0}
    # the isolated atoms' energies under the training data's own key, not the calculator's
    relabelled = tmp_path / "isolated.xyz"
    frames = ase.io.read(shared_data / "ethanol" / "isolated_atoms.xyz", index=":")
    for atoms in frames:
        atoms.info["DFT_energy"] = 2.0 * atoms.get_potential_energy()
    ase.io.write(relabelled, frames)
    doubled = resolve_e0s(str(relabelled), [], [1, 6, 8], KeySpec(energy_key="DFT_energy"))
    assert doubled == {z: 2.0 * e for z, e in e0s.items()}
    with pytest.raises(ValueError, match=r"Z=\[6\]"):
        resolve_e0s("{1: -1.0, 8: -2.0}", [], [1, 6, 8])
    with pytest.raises(ValueError, match="neither 'average'"):
        resolve_e0s("nonsense", [], [1])
    # average: least squares recovers exact E0s from mixed compositions
    rng = np.random.default_rng(0)
    truth = {1: -0.5, 8: -3.0}
    configs = []
    for _ in range(6):
        z = rng.choice([1, 8], size=rng.integers(2, 6))
        configs.append(
            Configuration(atomic_numbers=z, positions=np.zeros((z.size, 3)), energy=sum(truth[int(a)] for a in z))
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # determined: no warning
        fitted = e0s_average(configs, [1, 8])
    assert fitted[1] == pytest.approx(-0.5) and fitted[8] == pytest.approx(-3.0)
    # one composition (rMD17, 3BPA): the E0s are undetermined, and said to be
    water = [dataclasses.replace(configs[0], atomic_numbers=np.array([8, 1, 1]), positions=np.zeros((3, 3)),
                                 energy=-4.0 + 0.1 * k) for k in range(3)]  # fmt: skip
    with pytest.warns(InputWarning, match=r"fix only 1 combination\(s\) of the 2 E0s .* not for isolated atoms"):
        e0s_average(water, [1, 8])
    # an element in no training configuration has no least-squares E0 (lstsq would give it 0 eV)
    with pytest.raises(ValueError, match=r"'average': elements Z=\[7\] appear in no training configuration"):
        e0s_average(configs, [1, 7, 8])


def test_shift_and_scale_for_each_of_maces_scalings():
    """The shift is the mean interaction energy per atom; the scale the RMS force component, the standard deviation
    (n - 1) of the interaction energies per atom, or 1; configurations without labels are left out."""
    e0s = {1: -1.0, 8: -2.0}
    water = lambda energy, forces: Configuration(  # noqa: E731
        atomic_numbers=np.array([8, 1, 1]), positions=np.zeros((3, 3)), energy=energy,
        forces=None if forces is None else np.full((3, 3), forces),
    )  # fmt: skip
    configs = [water(-4.3, 0.5), water(-4.6, -1.0), water(-4.0, None), water(None, 2.0)]
    per_atom = np.array([-0.3, -0.6, 0.0]) / 3
    forces = np.array([0.5] * 9 + [-1.0] * 9 + [2.0] * 9)
    shift, rms = shift_and_scale(configs, e0s)
    assert shift == pytest.approx(per_atom.mean()) and rms == pytest.approx(np.sqrt(np.mean(forces**2)))
    assert shift_and_scale(configs, e0s, "std_scaling") == pytest.approx((shift, np.std(per_atom, ddof=1)))
    assert shift_and_scale(configs, e0s, "no_scaling") == pytest.approx((shift, 1.0))
    assert shift_and_scale(configs[:1], e0s, "std_scaling")[1] == 1.0  # one energy: no deviation
    with pytest.raises(ValueError, match="scaling must be 'rms_forces_scaling' or 'std_scaling' or 'no_scaling'"):
        shift_and_scale(configs, e0s, "rms")


def test_e0s_in_every_form_a_mace_user_writes(tmp_path):
    """Element symbols or atomic numbers as keys, MACE's JSON file, a mapping too long to be a file name; anything
    else is an InputError that says what is wrong."""
    want = {1: -13.6, 8: -2041.9}
    assert resolve_e0s("{'H': -13.6, 'O': -2041.9}", [], [1, 8]) == want
    assert resolve_e0s({"1": "-13.6", 8: -2041.9}, [], [1, 8]) == want
    path = tmp_path / "e0s.json"
    path.write_text('{"1": -13.6, "8": -2041.9}')
    assert resolve_e0s(str(path), [], [1, 8]) == want
    assert resolve_e0s("{H: -13.6, O: -2041.9}", [], [1, 8]) == want  # YAML's flow mapping, symbols unquoted
    many = {z: -100.0 * z - 0.123456789012345 for z in range(1, 30)}
    assert len(str(many)) > 255 and resolve_e0s(str(many), [], [1, 8]) == many
    for spec, message in (("{'Hx': -13.6}", "'Hx' is neither an atomic number nor an element symbol"),
                          ("{1: 'low'}", "the E0 of 1 must be a number, got 'low'"),
                          ("{1: [1.0]}", "the E0 of 1 must be a number"), ("{1: nan}", "the E0 of 1 is 'nan'"),
                          ("iso.xyz", "E0s 'iso.xyz': no such file"),
                          ("[1, 2]", "must be a dict")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)):
            resolve_e0s(spec, [], [1])
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON mapping"):
        resolve_e0s(str(path), [], [1])
    path.write_text("{1: 2")
    with pytest.raises(ValueError, match="not a JSON mapping"):
        resolve_e0s(str(path), [], [1])


def test_isolated_atoms_of_a_training_file_replace_average_but_not_explicit_e0s(tmp_path):
    """MACE's convention: one-atom configurations tagged IsolatedAtom (forces not needed) are set aside as the E0s;
    a one-atom configuration with another config_type, or an IsolatedAtom one with two atoms, is data."""
    text = (
        '1\nProperties=species:S:1:pos:R:3 energy=-13.5 config_type=IsolatedAtom pbc="F F F"\nH 0 0 0\n'
        '1\nProperties=species:S:1:pos:R:3 energy=-2040.0 config_type=IsolatedAtom pbc="F F F"\nO 0 0 0\n'
        '1\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-13.0 pbc="F F F"\nH 0 0 0 0 0 0\n'
        '2\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-27.5 config_type=IsolatedAtom pbc="F F F"\n'
        "H 0 0 0 0 0 1\nH 0 0 0.7 0 0 -1\n"
    )
    path = tmp_path / "with_isolated.xyz"
    path.write_text(text)
    isolated, rest = split_isolated_atoms(read_configurations(path))
    assert [c.energy for c in isolated] == [-13.5, -2040.0] and [c.energy for c in rest] == [-13.0, -27.5]
    assert resolve_e0s("average", rest, [1, 8], isolated=isolated) == {1: -13.5, 8: -2040.0}
    assert resolve_e0s("{1: -1.0, 8: -2.0}", rest, [1, 8], isolated=isolated) == {1: -1.0, 8: -2.0}
    assert e0s_from_isolated_atoms([*isolated, isolated[0]]) == {1: -13.5, 8: -2040.0}  # two files joined
    other = dataclasses.replace(isolated[0], energy=-13.6)
    with pytest.raises(ValueError, match=r"Z=1 appears twice among the isolated atoms, with -13.5 and -13.6 eV"):
        e0s_from_isolated_atoms([*isolated, other])
    with pytest.raises(ValueError, match=re.escape("E0s (from the training file's IsolatedAtom configurations) "
                                                   "have no value for elements Z=[6]")):  # fmt: skip
        resolve_e0s("average", rest, [1, 6, 8], isolated=isolated)
    path.write_text(text.replace("energy=-13.0 pbc", "energy=-13.0 config_type=Default pbc").replace(
        ":forces:R:3 energy=-13.0", " energy=-13.0").replace("H 0 0 0 0 0 0", "H 0 0 0"))  # fmt: skip
    with pytest.raises(ValueError, match=r"with_isolated.xyz#2: no forces"):
        read_configurations(path)


def test_split_is_seeded_and_disjoint():
    a = train_valid_split(list(range(50)), 0.1, seed=3)
    b = train_valid_split(list(range(50)), 0.1, seed=3)
    c = train_valid_split(list(range(50)), 0.1, seed=4)
    assert a == b and a != c and len(a[1]) == 5 and not set(a[0]) & set(a[1])
    with pytest.raises(ValueError, match="valid_fraction"):
        train_valid_split([1, 2], 1.5, seed=0)
