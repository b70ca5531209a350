"""The benchmark tooling: each loss on synthetic data, with the idiomatic NumPy expression and the peers.

Shared by ``fastloss bench`` and the pytest-benchmark suite in ``bench/``; the cases live in one module
per family (``elementwise``, ``classwise``, ``pairwise``, ``overlap``, ``toolbox``, ``grad``), the timing
loop in ``runner``, ``fastloss eval`` in ``eval`` and ``--plot`` in ``plot``. A case makes its inputs once
and returns callables that take no arguments, so timing measures only the computation.

``build(name, n, dtype)`` maps the size ``n`` to the case's shapes, every one sensible (clamped) from
n = 1000 to 10^7:

- elementwise losses, activations, penalties and most of the toolbox: about n elements per input;
- class-wise losses: (n // C, C) scores (a segmentation map for ``cross_entropy_seg``);
- N x N cases (a tile over every pair: pairwise distances, the pairwise contrastive and batch-hard
  losses, InfoNCE, NT-Xent, MNRL, ArcFace, GE2E): n is about the number of pairs, N = sqrt(n) rounded to
  a multiple of 64 (at least 64) rows of d = 128 (N = 1024 at n = 10^6, 3136 at 10^7); see
  :func:`pair_rows`;
- ``kmeans_inertia``: n // d points (at least 2) against min(256, points // 4) centers taken from them;
- paired-row losses (triplet margin, contrastive, cosine embedding): n // d rows of each input.

A case is named after the public function it times (its spec's name), or that name and a variant
(``cross_entropy_c1000``, ``mse_grad``); ``composite`` times a :class:`fastloss.Composite`. ``NAMES`` is
the default list, ``EXTRA`` holds cases run only when named, and ``COVERS`` maps every case to the public
fastloss functions it exercises (derived from the names).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fastloss._bench import classwise, elementwise, grad, overlap, pairwise, toolbox
from fastloss._bench.common import Case, pair_rows
from fastloss._specs import SPECS

__all__ = ["BUILDERS", "COVERS", "EXTRA", "MEMORY_BOUND", "NAMES", "Case", "build", "pair_rows"]

BUILDERS: dict[str, Callable[[str, int, np.dtype], Case]] = {
    **elementwise.BUILDERS,
    **classwise.BUILDERS,
    **pairwise.BUILDERS,
    **overlap.BUILDERS,
    **toolbox.BUILDERS,
    **grad.BUILDERS,
}
# Cases run only when named (large inputs).
EXTRA = ("dice_loss_3d",)
# The default list: every family in turn, the gradients last.
NAMES = tuple(name for name in BUILDERS if name not in EXTRA)
# The memory-bound losses whose speed is judged against the read bandwidth.
MEMORY_BOUND = (
    "mse",
    "mae",
    "huber",
    "smooth_l1",
    "pinball",
    "hinge",
    "margin_ranking_loss",
    "rmse",
    "l1_penalty",
    "l2_penalty",
    "perceptual_loss",
)


def _covers(case: str) -> tuple[str, ...]:
    """The public functions case `case` exercises: the spec it is named after (the longest name it starts
    with), or the terms of the Composite."""
    if case.startswith("composite"):
        return ("Composite", "cross_entropy", "l2_penalty")
    if case in SPECS:
        return (case,)
    return (max((s for s in SPECS if case.startswith(s + "_")), key=len),)


COVERS: dict[str, tuple[str, ...]] = {name: _covers(name) for name in BUILDERS}


def build(name: str, n: int, dtype: Any) -> Case:
    """The benchmark case `name` on n elements of `dtype`."""
    builder = BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown benchmark case {name!r}; known: {', '.join(NAMES + EXTRA)}")
    return builder(name, n, np.dtype(dtype))
