"""One small, valid call of every public loss and function, for the tests that must reach every family
(inputs that crossed a process, byte orders, alignment, narrow floats, warnings).

`CALLS[name](rng, dtype)` returns (args, kwargs): the array arguments positionally, in the order of the
signature, so a test can transform each array and call ``getattr(fastloss, name)(*args, **kwargs)``.
`CALLS[name](rng, dtype, k)` makes the leading (row, batch or speaker) dimension k times larger, for the
tests that need inputs big enough to run in parallel (``scaled(name, rng, dtype, n)``: about n elements).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

Gen = Callable[..., tuple[tuple, dict]]


def _f(rng, dtype, *shape):
    return rng.standard_normal(shape).astype(dtype)


def _u(rng, dtype, *shape):
    return rng.uniform(0.05, 0.95, shape).astype(dtype)


def _pm1(rng, dtype, n):
    return np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dtype)


def _cls(rng, n, c, *more):
    return rng.integers(0, c, (n, *more)).astype(np.int64)


def _log_probs(rng, dtype, n, c):
    x = rng.standard_normal((n, c))
    return (x - np.log(np.exp(x).sum(1, keepdims=True))).astype(dtype)


def _probs(rng, dtype, n, c):
    x = rng.random((n, c)) + 0.1
    return (x / x.sum(1, keepdims=True)).astype(dtype)


def _reg(rng, dt, k=1):
    return (_f(rng, dt, 7 * k, 9), _f(rng, dt, 7 * k, 9)), {"return_grad": True}


CALLS: dict[str, Gen] = {
    # regression (elementwise)
    "mse": _reg,
    "mae": _reg,
    "rmse": _reg,
    "huber": lambda rng, dt, k=1: (
        (_f(rng, dt, 63 * k), _f(rng, dt, 63 * k)),
        {"delta": 0.5, "return_grad": True},
    ),
    "smooth_l1": _reg,
    "log_cosh": _reg,
    "pseudo_huber": _reg,
    "pinball": lambda rng, dt, k=1: (
        (_f(rng, dt, 63 * k), _f(rng, dt, 63 * k)),
        {"quantile": 0.3, "return_grad": True},
    ),
    # binary classification and ranking (elementwise)
    "hinge": lambda rng, dt, k=1: ((_f(rng, dt, 63 * k), _pm1(rng, dt, 63 * k)), {"return_grad": True}),
    "binary_cross_entropy": lambda rng, dt, k=1: (
        (_u(rng, dt, 63 * k), _u(rng, dt, 63 * k)),
        {"return_grad": True},
    ),
    "binary_cross_entropy_with_logits": lambda rng, dt, k=1: (
        (_f(rng, dt, 8 * k, 5), _u(rng, dt, 8 * k, 5)),
        {"pos_weight": _u(rng, dt, 5), "weight": _u(rng, dt, 8 * k, 5), "return_grad": True},
    ),
    "sigmoid_focal_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 63 * k), _u(rng, dt, 63 * k)),
        {"return_grad": True},
    ),
    "margin_ranking_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 63 * k), _f(rng, dt, 63 * k), _pm1(rng, dt, 63 * k)),
        {"margin": 0.2, "return_grad": True},
    ),
    "kl_div": lambda rng, dt, k=1: (
        (_log_probs(rng, dt, 6 * k, 5), _probs(rng, dt, 6 * k, 5)),
        {"return_grad": True},
    ),
    # class-wise
    "cross_entropy": lambda rng, dt, k=1: (
        (_f(rng, dt, 9 * k, 5, 3), _cls(rng, 9 * k, 5, 3)),
        {"label_smoothing": 0.1, "weight": _u(rng, dt, 5), "return_grad": True},
    ),
    "nll_loss": lambda rng, dt, k=1: (
        (_log_probs(rng, dt, 9 * k, 5), _cls(rng, 9 * k, 5)),
        {"return_grad": True},
    ),
    "softmax_focal_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 9 * k, 5), _cls(rng, 9 * k, 5)),
        {"return_grad": True},
    ),
    "poly1_cross_entropy": lambda rng, dt, k=1: (
        (_f(rng, dt, 9 * k, 5), _cls(rng, 9 * k, 5)),
        {"return_grad": True},
    ),
    "multiclass_hinge": lambda rng, dt, k=1: (
        (_f(rng, dt, 9 * k, 5), _cls(rng, 9 * k, 5)),
        {"p": 2, "return_grad": True},
    ),
    "softmax": lambda rng, dt, k=1: ((_f(rng, dt, 4 * k, 6),), {"axis": 0}),
    "log_softmax": lambda rng, dt, k=1: ((_f(rng, dt, 4 * k, 6),), {}),
    "logsumexp": lambda rng, dt, k=1: ((_f(rng, dt, 4 * k, 6),), {}),
    "sigmoid": lambda rng, dt, k=1: ((_f(rng, dt, 4 * k, 6),), {}),
    # pairwise and metric learning
    "pairwise_distances": lambda rng, dt, k=1: ((_f(rng, dt, 9 * k, 4), _f(rng, dt, 7 * k, 4)), {}),
    "pairwise_contrastive_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 12 * k, 4), _cls(rng, 12 * k, 3)),
        {"return_grad": True},
    ),
    "batch_hard_triplet_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 12 * k, 4), _cls(rng, 12 * k, 3)),
        {"return_grad": True},
    ),
    "contrastive_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 8 * k, 4), _f(rng, dt, 8 * k, 4), (rng.random(8 * k) < 0.5).astype(dt)),
        {"return_grad": True},
    ),
    "cosine_embedding_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 8 * k, 4), _f(rng, dt, 8 * k, 4), _pm1(rng, dt, 8 * k)),
        {"margin": 0.1, "return_grad": True},
    ),
    "triplet_margin_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 8 * k, 4), _f(rng, dt, 8 * k, 4), _f(rng, dt, 8 * k, 4)),
        {"swap": True, "return_grad": True},
    ),
    "info_nce": lambda rng, dt, k=1: (
        (_f(rng, dt, 6 * k, 4), _f(rng, dt, 6 * k, 4), _f(rng, dt, 5 * k, 4)),
        {"return_grad": True},
    ),
    "nt_xent": lambda rng, dt, k=1: ((_f(rng, dt, 6 * k, 4), _f(rng, dt, 6 * k, 4)), {"return_grad": True}),
    "multiple_negatives_ranking_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 6 * k, 4), _f(rng, dt, 6 * k, 4)),
        {"return_grad": True},
    ),
    "arcface_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 6 * k, 4), _f(rng, dt, 5, 4), _cls(rng, 6 * k, 5)),
        {"return_grad": True},
    ),
    "ge2e_loss": lambda rng, dt, k=1: ((_f(rng, dt, 3 * k, 4, 5),), {"return_grad": True}),
    "kmeans_inertia": lambda rng, dt, k=1: (
        (_f(rng, dt, 20 * k, 3), _f(rng, dt, 4, 3)),
        {"sample_weight": rng.random(20 * k), "return_grad": True},
    ),
    # segmentation overlap
    "dice_loss": lambda rng, dt, k=1: (
        (_u(rng, dt, 2 * k, 3, 4, 5), _cls(rng, 2 * k, 3, 4, 5)),
        {"return_grad": True},
    ),
    "jaccard_loss": lambda rng, dt, k=1: (
        (_u(rng, dt, 2 * k, 3, 20), _u(rng, dt, 2 * k, 3, 20).round()),
        {"return_grad": True},
    ),
    "tversky_loss": lambda rng, dt, k=1: (
        (_u(rng, dt, 2 * k, 3, 20), _u(rng, dt, 2 * k, 3, 20).round()),
        {"return_grad": True},
    ),
    # regularisers and the toolbox
    "l1_penalty": lambda rng, dt, k=1: ((_f(rng, dt, 5 * k, 3), _f(rng, dt, 4 * k)), {"return_grad": True}),
    "l2_penalty": lambda rng, dt, k=1: ((_f(rng, dt, 5 * k, 3), _f(rng, dt, 4 * k)), {"return_grad": True}),
    "gram_matrix": lambda rng, dt, k=1: ((_f(rng, dt, 2 * k, 3, 4, 5),), {}),
    "style_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 2 * k, 3, 4, 5), _f(rng, dt, 2 * k, 3, 4, 5)),
        {"return_grad": True},
    ),
    "perceptual_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 2 * k, 3, 4, 5), _f(rng, dt, 2 * k, 3, 4, 5)),
        {"return_grad": True},
    ),
    "temporal_consistency_loss": lambda rng, dt, k=1: ((_f(rng, dt, 4 * k, 3, 5),), {"return_grad": True}),
    "flow_matching_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 6 * k, 3), _f(rng, dt, 6 * k, 3), _f(rng, dt, 6 * k, 3)),
        {"return_grad": True},
    ),
    "prior_preservation_loss": lambda rng, dt, k=1: (
        tuple(_f(rng, dt, 6 * k, 3) for _ in range(4)),
        {"return_grad": True},
    ),
    "graph_matching_loss": lambda rng, dt, k=1: (
        (_f(rng, dt, 5, 5), _f(rng, dt, 5, 5), np.array([2, 0, 1, 4, 3])),  # not scaled
        {"return_grad": True},
    ),
}


def scaled(name: str, rng: np.random.Generator, dtype: Any, n: int) -> tuple[tuple, dict]:
    """The call of `name` with about n elements in its largest input, or about n pairs of rows for the
    all-pairs losses (at least the default call)."""
    from fastloss._specs import SPECS

    args = CALLS[name](np.random.default_rng(0), np.float64)[0]
    if SPECS[name].family in ("pairwise", "similarity"):
        k = int(np.sqrt(n)) // np.shape(args[0])[0]
    else:
        k = n // max(np.size(a) for a in args)
    return CALLS[name](rng, dtype, max(1, k))


def leaves(result: Any) -> list[np.ndarray]:
    """Every array of a (possibly nested tuple) result, as NumPy arrays."""
    if isinstance(result, (tuple, list)):
        return [leaf for r in result for leaf in leaves(r)]
    if hasattr(result, "value") and hasattr(result, "grads"):  # CompositeResult
        return leaves((result.value, tuple(result.grads.values())))
    return [np.asarray(result)]
