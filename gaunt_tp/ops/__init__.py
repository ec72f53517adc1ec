"""Parameter-free differentiable products: a descriptor of *what*, one backend per *how*."""

from gaunt_tp.ops.auto import BACKENDS, choose_backend
from gaunt_tp.ops.convolution import GauntConvolution
from gaunt_tp.ops.descriptor import GauntDescriptor
from gaunt_tp.ops.odd import OddPathProduct
from gaunt_tp.ops.tensor_product import GauntTensorProduct

__all__ = ["BACKENDS", "GauntConvolution", "GauntDescriptor", "GauntTensorProduct", "OddPathProduct", "choose_backend"]
