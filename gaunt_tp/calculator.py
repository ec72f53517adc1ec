"""ASE calculator for gaunt-tp potentials (energy, free energy, forces, stress, per-atom energies)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from gaunt_tp.cuda_graphs import GraphedPotential
from gaunt_tp.data.configuration import Configuration
from gaunt_tp.data.graph import ElementTable, to_graph
from gaunt_tp.devices import torch_device
from gaunt_tp.dtypes import torch_dtype
from gaunt_tp.errors import InputError
from gaunt_tp.nn.model import GauntMACE
from gaunt_tp.nn.serialization import load_model

__all__ = ["GauntCalculator"]


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

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):  # noqa: ANN001, ANN201
        super().calculate(atoms, properties, system_changes)
        config = Configuration.from_atoms(self.atoms)
        graph = to_graph(config, self.table, self.model.config.r_max, dtype=self.dtype).to(self.device)
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
