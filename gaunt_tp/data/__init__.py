"""Reading reference data, E0s, neighbour lists and batching of atomic graphs."""

from gaunt_tp.data.configuration import KCAL_PER_MOL_IN_EV, Configuration, KeySpec
from gaunt_tp.data.e0s import e0s_average, e0s_from_isolated_atoms, resolve_e0s, shift_and_scale, split_isolated_atoms
from gaunt_tp.data.graph import ElementTable, GraphBatch, collate, to_graph
from gaunt_tp.data.neighbors import edge_pairs, neighbor_list
from gaunt_tp.data.padding import BatchCapacity, pad_batch
from gaunt_tp.data.readers import read_any, read_configurations, read_rmd17
from gaunt_tp.data.split import train_valid_split

__all__ = [
    "KCAL_PER_MOL_IN_EV",
    "BatchCapacity",
    "Configuration",
    "ElementTable",
    "GraphBatch",
    "KeySpec",
    "collate",
    "e0s_average",
    "e0s_from_isolated_atoms",
    "edge_pairs",
    "neighbor_list",
    "pad_batch",
    "read_any",
    "read_configurations",
    "read_rmd17",
    "resolve_e0s",
    "shift_and_scale",
    "split_isolated_atoms",
    "to_graph",
    "train_valid_split",
]
