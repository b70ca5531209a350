"""The pure-NumPy backend: the same kernel signatures as fastloss._core."""

from fastloss._numpy.classwise import classwise
from fastloss._numpy.elementwise import LOSSES as ELEMENTWISE_SPECS
from fastloss._numpy.elementwise import elementwise

ELEMENTWISE_LOSSES = list(ELEMENTWISE_SPECS)
CLASSWISE_KERNELS = [
    "cross_entropy",
    "cross_entropy_prob",
    "nll",
    "softmax_focal",
    "poly1",
    "multi_margin_ww1",
    "multi_margin_ww2",
    "multi_margin_cs1",
    "multi_margin_cs2",
    "softmax",
    "log_softmax",
    "logsumexp",
]

__all__ = ["CLASSWISE_KERNELS", "ELEMENTWISE_LOSSES", "ELEMENTWISE_SPECS", "classwise", "elementwise"]
