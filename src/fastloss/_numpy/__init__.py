"""The pure-NumPy backend: the same kernel signatures as fastloss._core."""

from fastloss._numpy.classwise import KERNELS as CLASSWISE_KERNELS
from fastloss._numpy.classwise import classwise
from fastloss._numpy.elementwise import LOSSES as ELEMENTWISE_SPECS
from fastloss._numpy.elementwise import elementwise

ELEMENTWISE_LOSSES = list(ELEMENTWISE_SPECS)

__all__ = ["CLASSWISE_KERNELS", "ELEMENTWISE_LOSSES", "ELEMENTWISE_SPECS", "classwise", "elementwise"]
