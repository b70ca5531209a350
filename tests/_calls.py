"""One small, valid call of every public loss and function, for the tests that must reach every family
(inputs that crossed a process, byte orders, alignment, narrow floats, warnings).

`CALLS[name](rng, dtype)` returns (args, kwargs): the array arguments positionally, in the order of the
signature, so a test can transform each array and call ``getattr(fastloss, name)(*args, **kwargs)``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

Gen = Callable[[np.random.Generator, Any], tuple[tuple, dict]]


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


def _reg(rng, dt):
    return (_f(rng, dt, 7, 9), _f(rng, dt, 7, 9)), {"return_grad": True}


CALLS: dict[str, Gen] = {
    # regression (elementwise)
    "mse": _reg,
    "mae": _reg,
    "rmse": _reg,
    "huber": lambda rng, dt: ((_f(rng, dt, 63), _f(rng, dt, 63)), {"delta": 0.5, "return_grad": True}),
    "smooth_l1": _reg,
    "log_cosh": _reg,
    "pseudo_huber": _reg,
    "pinball": lambda rng, dt: ((_f(rng, dt, 63), _f(rng, dt, 63)), {"quantile": 0.3, "return_grad": True}),
    # binary classification and ranking (elementwise)
    "hinge": lambda rng, dt: ((_f(rng, dt, 63), _pm1(rng, dt, 63)), {"return_grad": True}),
    "binary_cross_entropy": lambda rng, dt: ((_u(rng, dt, 63), _u(rng, dt, 63)), {"return_grad": True}),
    "binary_cross_entropy_with_logits": lambda rng, dt: (
        (_f(rng, dt, 8, 5), _u(rng, dt, 8, 5)),
        {"pos_weight": _u(rng, dt, 5), "weight": _u(rng, dt, 8, 5), "return_grad": True},
    ),
    "sigmoid_focal_loss": lambda rng, dt: ((_f(rng, dt, 63), _u(rng, dt, 63)), {"return_grad": True}),
    "margin_ranking_loss": lambda rng, dt: (
        (_f(rng, dt, 63), _f(rng, dt, 63), _pm1(rng, dt, 63)),
        {"margin": 0.2, "return_grad": True},
    ),
    "kl_div": lambda rng, dt: ((_log_probs(rng, dt, 6, 5), _probs(rng, dt, 6, 5)), {"return_grad": True}),
    # class-wise
    "cross_entropy": lambda rng, dt: (
        (_f(rng, dt, 9, 5, 3), _cls(rng, 9, 5, 3)),
        {"label_smoothing": 0.1, "weight": _u(rng, dt, 5), "return_grad": True},
    ),
    "nll_loss": lambda rng, dt: ((_log_probs(rng, dt, 9, 5), _cls(rng, 9, 5)), {"return_grad": True}),
    "softmax_focal_loss": lambda rng, dt: ((_f(rng, dt, 9, 5), _cls(rng, 9, 5)), {"return_grad": True}),
    "poly1_cross_entropy": lambda rng, dt: ((_f(rng, dt, 9, 5), _cls(rng, 9, 5)), {"return_grad": True}),
    "multiclass_hinge": lambda rng, dt: ((_f(rng, dt, 9, 5), _cls(rng, 9, 5)), {"p": 2, "return_grad": True}),
    "softmax": lambda rng, dt: ((_f(rng, dt, 4, 6),), {"axis": 0}),
    "log_softmax": lambda rng, dt: ((_f(rng, dt, 4, 6),), {}),
    "logsumexp": lambda rng, dt: ((_f(rng, dt, 4, 6),), {}),
    "sigmoid": lambda rng, dt: ((_f(rng, dt, 4, 6),), {}),
    # pairwise and metric learning
    "pairwise_distances": lambda rng, dt: ((_f(rng, dt, 9, 4), _f(rng, dt, 7, 4)), {}),
    "pairwise_contrastive_loss": lambda rng, dt: (
        (_f(rng, dt, 12, 4), _cls(rng, 12, 3)),
        {"return_grad": True},
    ),
    "batch_hard_triplet_loss": lambda rng, dt: (
        (_f(rng, dt, 12, 4), _cls(rng, 12, 3)),
        {"return_grad": True},
    ),
    "contrastive_loss": lambda rng, dt: (
        (_f(rng, dt, 8, 4), _f(rng, dt, 8, 4), (rng.random(8) < 0.5).astype(dt)),
        {"return_grad": True},
    ),
    "cosine_embedding_loss": lambda rng, dt: (
        (_f(rng, dt, 8, 4), _f(rng, dt, 8, 4), _pm1(rng, dt, 8)),
        {"margin": 0.1, "return_grad": True},
    ),
    "triplet_margin_loss": lambda rng, dt: (
        (_f(rng, dt, 8, 4), _f(rng, dt, 8, 4), _f(rng, dt, 8, 4)),
        {"swap": True, "return_grad": True},
    ),
    "info_nce": lambda rng, dt: (
        (_f(rng, dt, 6, 4), _f(rng, dt, 6, 4), _f(rng, dt, 5, 4)),
        {"return_grad": True},
    ),
    "nt_xent": lambda rng, dt: ((_f(rng, dt, 6, 4), _f(rng, dt, 6, 4)), {"return_grad": True}),
    "multiple_negatives_ranking_loss": lambda rng, dt: (
        (_f(rng, dt, 6, 4), _f(rng, dt, 6, 4)),
        {"return_grad": True},
    ),
    "arcface_loss": lambda rng, dt: (
        (_f(rng, dt, 6, 4), _f(rng, dt, 5, 4), _cls(rng, 6, 5)),
        {"return_grad": True},
    ),
    "ge2e_loss": lambda rng, dt: ((_f(rng, dt, 3, 4, 5),), {"return_grad": True}),
    "kmeans_inertia": lambda rng, dt: (
        (_f(rng, dt, 20, 3), _f(rng, dt, 4, 3)),
        {"sample_weight": rng.random(20), "return_grad": True},
    ),
    # segmentation overlap
    "dice_loss": lambda rng, dt: ((_u(rng, dt, 2, 3, 4, 5), _cls(rng, 2, 3, 4, 5)), {"return_grad": True}),
    "jaccard_loss": lambda rng, dt: (
        (_u(rng, dt, 2, 3, 20), _u(rng, dt, 2, 3, 20).round()),
        {"return_grad": True},
    ),
    "tversky_loss": lambda rng, dt: (
        (_u(rng, dt, 2, 3, 20), _u(rng, dt, 2, 3, 20).round()),
        {"return_grad": True},
    ),
    # regularisers and the toolbox
    "l1_penalty": lambda rng, dt: ((_f(rng, dt, 5, 3), _f(rng, dt, 4)), {"return_grad": True}),
    "l2_penalty": lambda rng, dt: ((_f(rng, dt, 5, 3), _f(rng, dt, 4)), {"return_grad": True}),
    "gram_matrix": lambda rng, dt: ((_f(rng, dt, 2, 3, 4, 5),), {}),
    "style_loss": lambda rng, dt: ((_f(rng, dt, 2, 3, 4, 5), _f(rng, dt, 2, 3, 4, 5)), {"return_grad": True}),
    "perceptual_loss": lambda rng, dt: (
        (_f(rng, dt, 2, 3, 4, 5), _f(rng, dt, 2, 3, 4, 5)),
        {"return_grad": True},
    ),
    "temporal_consistency_loss": lambda rng, dt: ((_f(rng, dt, 4, 3, 5),), {"return_grad": True}),
    "flow_matching_loss": lambda rng, dt: (
        (_f(rng, dt, 6, 3), _f(rng, dt, 6, 3), _f(rng, dt, 6, 3)),
        {"return_grad": True},
    ),
    "prior_preservation_loss": lambda rng, dt: (
        tuple(_f(rng, dt, 6, 3) for _ in range(4)),
        {"return_grad": True},
    ),
    "graph_matching_loss": lambda rng, dt: (
        (_f(rng, dt, 5, 5), _f(rng, dt, 5, 5), np.array([2, 0, 1, 4, 3])),
        {"return_grad": True},
    ),
}


def leaves(result: Any) -> list[np.ndarray]:
    """Every array of a (possibly nested tuple) result, as NumPy arrays."""
    if isinstance(result, (tuple, list)):
        return [leaf for r in result for leaf in leaves(r)]
    if hasattr(result, "value") and hasattr(result, "grads"):  # CompositeResult
        return leaves((result.value, tuple(result.grads.values())))
    return [np.asarray(result)]
