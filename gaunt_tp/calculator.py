"""ASE calculators for gaunt-tp potentials: one model (energy, free energy, forces, stress, per-atom energies; and, as
MACE's calculator has them, the Hessian and per-atom descriptors), or a committee of models (their mean and spread)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from gaunt_tp.cuda_graphs import GraphedPotential
from gaunt_tp.data.configuration import Configuration
from gaunt_tp.data.graph import ElementTable, GraphBatch, to_graph
from gaunt_tp.devices import torch_device
from gaunt_tp.dtypes import torch_dtype
from gaunt_tp.errors import InputError
from gaunt_tp.nn.model import GauntMACE
from gaunt_tp.nn.serialization import load_model

__all__ = ["CommitteeCalculator", "GauntCalculator"]


def _given_or_last(calculator: Calculator, atoms: Atoms | None) -> Atoms:
    """``atoms``, or else the atoms ``calculator`` last computed (ASE's convention for ``get_*(atoms=None)``)."""
    if atoms is not None:
        return atoms
    if calculator.atoms is None:
        raise ValueError("no atoms: pass them, or attach this calculator to an Atoms and compute on it first")
    return calculator.atoms


class GauntCalculator(Calculator):
    """An ASE calculator backed by a :class:`gaunt_tp.nn.GauntMACE`.

    Args:
        model: a model, or the path of one written by :func:`gaunt_tp.nn.serialization.save_model`
            (or by ``gaunt-tp train``). A model passed in is copied: the calculator's copy is moved to ``device``
            and ``default_dtype`` and frozen, the caller's stays as it was (trainable).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        default_dtype: ``"float64"`` (default: for MD and relaxations) or ``"float32"``.
        cuda_graph: on a CUDA device, replay each call from a captured CUDA graph
            (:class:`gaunt_tp.cuda_graphs.GraphedPotential`: the structure padded to a capacity 25% above its size,
            captured again when it outgrows it). For MD on a GPU, where one call is thousands of small kernels.
        directory, label: ASE's own (where a calculator would write files; this one writes none).
        atoms: an ``ase.Atoms`` to attach the calculator to, as ASE's calculators take it.

    Any other keyword is a ``TypeError`` (a misspelt option is not ignored).

    Beyond ASE's properties, :meth:`get_hessian` (second derivatives of the energy, for vibrational analysis) and
    :meth:`get_descriptors` (each atom's features, invariant or all: for similarity, sampling and active learning).

    Stress is computed wherever the cell spans a volume, periodic in all directions or not (ASE's convention, as
    its EMT calculator: ``(1/V) dE/d(strain)`` with V the cell's volume, Voigt order xx yy zz yz xz xy,
    eV/Angstrom^3): bulk, slabs with vacuum in the cell, molecules in a box. A structure whose cell has a zero
    vector has none (``get_stress`` raises ASE's ``PropertyNotImplementedError``).

    Example:
        >>> from ase.build import molecule
        >>> from gaunt_tp.nn import GauntMACE, ModelConfig
        >>> config = ModelConfig(atomic_numbers=(1, 8), e0s=(-13.6, -2041.9), num_channels=4, max_ell=1, max_L=0)
        >>> model = GauntMACE(config)
        >>> atoms = molecule("H2O")
        >>> atoms.calc = GauntCalculator(model)
        >>> atoms.get_forces().shape
        (3, 3)
        >>> atoms.calc.get_hessian(atoms).shape, atoms.calc.get_descriptors(atoms).shape  # [3n, 3n], [n, 2 x 4]
        ((9, 9), (3, 8))
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        model: GauntMACE | str | Path,
        *,
        device: str = "cpu",
        default_dtype: str = "float64",
        cuda_graph: bool = False,
        directory: str = ".",
        label: str | None = None,
        atoms: Atoms | None = None,
    ) -> None:
        super().__init__(directory=directory, label=label)
        self.dtype, self.device = torch_dtype(default_dtype), torch_device(device)
        model = load_model(model) if isinstance(model, (str, Path)) else copy.deepcopy(model)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.table = ElementTable(model.config.atomic_numbers)
        if cuda_graph and self.device.type != "cuda":
            raise InputError(f"cuda_graph replays CUDA graphs: it needs a CUDA device, got {str(self.device)!r}")
        self.graphed = GraphedPotential(self.model, capture=True) if cuda_graph else None
        if atoms is not None:  # ASE's way of attaching a calculator at construction
            atoms.calc = self

    def _graph(self, atoms: Atoms) -> tuple[Configuration, GraphBatch]:
        config = Configuration.from_atoms(atoms)
        return config, to_graph(config, self.table, self.model.config.r_max, dtype=self.dtype).to(self.device)

    def get_hessian(self, atoms: Atoms | None = None) -> np.ndarray:
        """The energy's second derivatives with respect to the positions, ``[3 n, 3 n]`` (float64, eV/Angstrom^2).

        Rows and columns are atom-major (atom i's x, y, z at ``3 i``, ``3 i + 1``, ``3 i + 2``), as
        ``ase.vibrations.VibrationsData.from_2d(atoms, hessian)`` takes it for frequencies and modes. Exact:
        autograd through the forces, one backward pass per row (3 n), at the neighbour list of ``atoms``' current
        positions. ``atoms``: default the ones the calculator last computed. Not cached, not in ``results``.
        """
        atoms = _given_or_last(self, atoms)
        _, graph = self._graph(atoms)
        graph.positions = graph.positions.detach().requires_grad_(True)
        n = 3 * len(atoms)
        with torch.enable_grad():
            forces = self.model(graph, compute_forces=True, training=True)["forces"].reshape(-1)
            if n == 0 or not forces.requires_grad:  # no atoms, or no edges: the energy is the E0s' sum, flat
                return np.zeros((n, n))
            rows = []
            for k in range(n):
                (row,) = torch.autograd.grad(forces[k], graph.positions, retain_graph=True, allow_unused=True)
                rows.append(torch.zeros_like(graph.positions) if row is None else row)
        return -torch.stack(rows).reshape(n, n).detach().cpu().numpy().astype(np.float64)

    def get_descriptors(  # positional options, unlike gaunt-tp's others: MACE's calculator takes them so
        self, atoms: Atoms | None = None, invariants_only: bool = True, num_layers: int = -1
    ) -> np.ndarray:
        """Each atom's features from the first ``num_layers`` layers (-1: all), float64, no unit; MACE's calculator's
        ``get_descriptors`` (the same arguments, the same numbers for a model converted from mace-torch).

        ``invariants_only``: ``[n, num_layers * num_channels]``, each layer's ``0e`` node features, the ones its
        readout maps to site energies, layer after layer (columns ``i * num_channels`` to ``(i + 1) * num_channels``
        are layer i's): invariant under rotations, reflections and translations, and permuted with the atoms. Else
        each layer's whole output, layer after layer (e3nn's layout of the hidden irreps; the last layer has its
        ``0e`` features alone): equivariant. ``atoms``: default the ones the calculator last computed.
        """
        _, graph = self._graph(_given_or_last(self, atoms))
        with torch.no_grad():
            features = self.model(graph, compute_forces=False, compute_descriptors=True)["node_feats"]
            kept = self.model.descriptors(features, invariants_only, num_layers)
        return kept.cpu().numpy().astype(np.float64)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):  # noqa: ANN001, ANN201
        super().calculate(atoms, properties, system_changes)
        config, graph = self._graph(self.atoms)
        if self.graphed is not None:
            out = self.graphed(graph, compute_stress=config.has_stress)
        else:
            with torch.enable_grad():
                out = self.model(graph, compute_forces=True, compute_stress=config.has_stress)
        energy = float(out["energy"].detach()[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].detach().cpu().numpy().astype(np.float64),
            "energies": out["node_energy"].detach().cpu().numpy().astype(np.float64),
        }
        if config.has_stress:
            s = out["stress"].detach().cpu().numpy()[0].astype(np.float64)
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


class CommitteeCalculator(Calculator):
    """An ASE calculator that gives the mean of several gaunt-tp models' predictions and their spread.

    Args:
        models: two or more models or model paths (each as :class:`GauntCalculator` takes it; they may differ in
            anything, elements and cutoff included, as long as each knows the elements it is given).
        device, default_dtype: as :class:`GauntCalculator`'s, for every member.
        directory, label, atoms: ASE's own, as :class:`GauntCalculator`'s.

    ``energy``, ``free_energy``, ``forces``, ``stress`` and ``energies`` (per atom) are the members' means (so forces
    are minus the gradient of the mean energy, and MD with them conserves it); ``results`` also holds the spread,
    MACE's committee keys where it has them: ``energy_comm [M]`` and ``forces_comm [M, n, 3]`` (each member's),
    ``energy_var`` (eV^2), ``forces_var [n, 3]`` (eV^2/Angstrom^2) and, where there is a stress, ``stress_var [6]``:
    population variances over the M members, as ``numpy.var``. A large spread marks structures unlike the members'
    training data (query-by-committee active learning). The members are :attr:`members` (their descriptors:
    ``members[i].get_descriptors(atoms)``).

    Example:
        >>> from ase.build import molecule
        >>> from gaunt_tp.nn import GauntMACE, ModelConfig
        >>> config = ModelConfig(atomic_numbers=(1, 8), e0s=(-13.6, -2041.9), num_channels=4, max_ell=1, max_L=0)
        >>> models = [GauntMACE(config), GauntMACE(config)]  # two draws of the initial weights
        >>> atoms = molecule("H2O")
        >>> atoms.calc = CommitteeCalculator(models)
        >>> atoms.get_forces().shape, atoms.calc.results["forces_var"].shape, atoms.calc.results["energy_var"] > 0
        ((3, 3), (3, 3), True)
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        models: Sequence[GauntMACE | str | Path],
        *,
        device: str = "cpu",
        default_dtype: str = "float64",
        directory: str = ".",
        label: str | None = None,
        atoms: Atoms | None = None,
    ) -> None:
        models = [models] if isinstance(models, (str, Path, GauntMACE)) else list(models)
        if len(models) < 2:
            raise InputError(f"a committee needs two or more models, got {len(models)}: use GauntCalculator for one")
        super().__init__(directory=directory, label=label)
        self.members = [GauntCalculator(m, device=device, default_dtype=default_dtype) for m in models]
        if atoms is not None:
            atoms.calc = self

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):  # noqa: ANN001, ANN201
        super().calculate(atoms, properties, system_changes)
        for member in self.members:
            member.calculate(self.atoms.copy(), properties, all_changes)
        each = {key: np.stack([m.results[key] for m in self.members]) for key in self.members[0].results}
        self.results = {key: value.mean(axis=0) for key, value in each.items()}
        self.results["energy"] = self.results["free_energy"] = float(self.results["energy"])
        self.results["energy_comm"], self.results["forces_comm"] = each["energy"], each["forces"]
        self.results["energy_var"], self.results["forces_var"] = float(each["energy"].var()), each["forces"].var(axis=0)
        if "stress" in each:
            self.results["stress_var"] = each["stress"].var(axis=0)

    def get_hessian(self, atoms: Atoms | None = None) -> np.ndarray:
        """The mean of the members' Hessians (the Hessian of the mean energy), ``[3 n, 3 n]`` eV/Angstrom^2, in
        :meth:`GauntCalculator.get_hessian`'s layout."""
        atoms = _given_or_last(self, atoms)
        return np.mean([m.get_hessian(atoms) for m in self.members], axis=0)
