"""The pure-NumPy backend: the same kernel signatures as fastloss._core."""

from fastloss._numpy.classwise import KERNELS as CLASSWISE_KERNELS
from fastloss._numpy.classwise import classwise
from fastloss._numpy.elementwise import LOSSES as ELEMENTWISE_FORMULAS
from fastloss._numpy.elementwise import elementwise
from fastloss._numpy.overlap import overlap_grad, overlap_sums
from fastloss._numpy.pairwise import (
    batch_hard,
    kmeans,
    pairwise_contrastive,
    pairwise_distances,
    rowwise,
    sim_ce,
)

ELEMENTWISE_LOSSES = list(ELEMENTWISE_FORMULAS)

__all__ = [
    "CLASSWISE_KERNELS",
    "ELEMENTWISE_LOSSES",
    "batch_hard",
    "classwise",
    "elementwise",
    "kmeans",
    "overlap_grad",
    "overlap_sums",
    "pairwise_contrastive",
    "pairwise_distances",
    "rowwise",
    "sim_ce",
]
