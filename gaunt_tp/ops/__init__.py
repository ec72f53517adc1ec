"""Parameter-free differentiable products: a descriptor of *what*, one backend per *how*."""

from gaunt_tp.ops.auto import BACKENDS, choose_backend
from gaunt_tp.ops.descriptor import GauntDescriptor
from gaunt_tp.ops.tensor_product import GauntTensorProduct

__all__ = ["BACKENDS", "GauntDescriptor", "GauntTensorProduct", "choose_backend"]
