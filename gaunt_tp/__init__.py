"""gaunt-tp: fast, exact Gaunt tensor products for E(3)-equivariant networks."""

from gaunt_tp.math.gaunt import gaunt
from gaunt_tp.ops.tensor_product import GauntTensorProduct

__all__ = ["GauntTensorProduct", "gaunt"]
__version__ = "0.1.0"
