"""Classification losses: binary (hinge, cross-entropy on probabilities and logits, focal) and class-wise
(softmax cross-entropy, NLL, focal, Poly-1, multi-class hinge), and the KL divergence."""

from __future__ import annotations

from typing import Any, Literal

from numpy.typing import ArrayLike

from fastloss import _classwise, _elementwise
from fastloss._specs import SPECS, ReductionName, api

__all__ = [
    "cross_entropy",
    "kl_div",
    "multiclass_hinge",
    "nll_loss",
    "poly1_cross_entropy",
    "softmax_focal_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "hinge",
    "sigmoid_focal_loss",
]


@api
def hinge(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 1.0,
    squared: bool = False,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Hinge loss ``max(0, margin - target * scores)``, squared if ``squared=True``.

    ``target`` must be exactly -1 or +1 (ValueError naming the first bad position otherwise).
    ``dl/dscores = -target`` where the margin is violated, else 0. With ``margin=1`` the mean matches
    ``sklearn.metrics.hinge_loss`` for binary labels.

    >>> import fastloss
    >>> float(fastloss.hinge([2.0, 0.5, -1.0], [1, 1, 1]))
    0.8333333333333334
    """
    spec = SPECS["hinge"]
    return _elementwise.run(
        spec,
        {"scores": scores, "target": target},
        kernel="hinge_squared" if spec.check("squared", squared) else "hinge",
        params={"margin": margin},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Binary cross-entropy on probabilities: ``-(t log p + (1 - t) log(1 - p))``.

    Matches ``torch.nn.functional.binary_cross_entropy``: each log is clamped at -100, so ``p`` of
    exactly 0 or 1 gives a finite loss, and the gradient is ``(p - t) / max(p (1 - p), 1e-12)``. ``probs``
    and ``target`` must lie in [0, 1] (ValueError otherwise). Prefer
    :func:`binary_cross_entropy_with_logits` where logits are available: it is exact where this clamps.

    >>> import fastloss
    >>> round(float(fastloss.binary_cross_entropy([0.9, 0.2], [1.0, 0.0])), 12)
    0.164252033486
    """
    return _elementwise.run(
        SPECS["binary_cross_entropy"],
        {"probs": probs, "target": target},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    pos_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Binary cross-entropy on logits: ``t w softplus(-x) + (1 - t) softplus(x)``, ``w = pos_weight``.

    Matches ``torch.nn.functional.binary_cross_entropy_with_logits`` (``pos_weight`` broadcasts to the
    logits, as there). Computed stably for any logit; the sum of two non-negative terms above equals
    PyTorch's ``(1 - t) x + (1 + (w - 1) t) softplus(-x)`` without its cancellation, and a hard label with
    an infinite logit gives the limit rather than NaN. ``target`` must lie in [0, 1].
    ``dl/dx = (1 - t) sigmoid(x) - t w sigmoid(-x)``.

    >>> import fastloss
    >>> round(float(fastloss.binary_cross_entropy_with_logits([2.0, -1.0], [1.0, 0.0])), 12)
    0.220094849281
    """
    spec = SPECS["binary_cross_entropy_with_logits"]
    if pos_weight is None:
        return _elementwise.run(
            spec,
            {"logits": logits, "target": target},
            params={"pos_weight": 1.0},
            weight=weight,
            reduction=reduction,
            return_grad=return_grad,
        )
    return _elementwise.run(
        spec,
        {"logits": logits, "target": target},
        kernel="binary_cross_entropy_with_logits_pw",
        params={"pos_weight": 1.0},
        aux=("pos_weight", pos_weight, "binary_cross_entropy_with_logits"),
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Sigmoid focal loss (Lin et al. 2017): ``alpha_t (1 - p_t)^gamma BCE_with_logits(x, t)``.

    ``p = sigmoid(x)``, ``p_t = p t + (1 - p)(1 - t)``, ``alpha_t = alpha t + (1 - alpha)(1 - t)``; a
    negative ``alpha`` turns the class balancing off (``alpha_t = 1``). With ``gamma = 0`` it is the
    alpha-balanced binary cross-entropy. Matches ``torchvision.ops.sigmoid_focal_loss``; note that
    torchvision's default ``reduction`` is ``"none"`` and ours is ``"mean"``. ``gamma`` must be >= 0,
    ``alpha`` <= 1, ``target`` in [0, 1].

    >>> import fastloss
    >>> round(float(fastloss.sigmoid_focal_loss([2.0, -1.0], [1.0, 0.0])), 11)
    0.00872221692
    """
    return _elementwise.run(
        SPECS["sigmoid_focal_loss"],
        {"logits": logits, "target": target},
        params={"alpha": alpha, "gamma": gamma},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Softmax cross-entropy over the class axis 1, with PyTorch's semantics exactly.

    ``logits`` is (N, C), (N, C, d1, ...) (a segmentation map, no transpose needed) or (C,). ``target``
    holds class indices of shape (N, d1, ...), or class probabilities of the logits' shape (a float
    dtype). With indices and smoothing ``eps``:
    ``l = (1 - eps) w_y (lse - x_y) + eps/C sum_c w_c (lse - x_c)``, ``lse = log sum_c exp(x_c)``; positions
    whose target is ``ignore_index`` count nothing, and ``"mean"`` divides by the sum of ``w_y`` over the
    other positions (nan if every position is ignored). With probabilities ``t``:
    ``l = sum_c w_c t'_c (lse - x_c)``, ``t' = (1 - eps) t + eps/C``, and ``"mean"`` divides by the number
    of positions. ``weight`` holds C class weights. Matches ``torch.nn.functional.cross_entropy``.

    One pass over memory per row: the row's max, its exps and their sum are computed on an L1-resident
    copy; no (N, C) temporary exists beyond the gradient you ask for with ``return_grad``.

    >>> import fastloss
    >>> round(float(fastloss.cross_entropy([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], [0, 1])), 12)
    0.360645366744
    """
    return _classwise.class_loss(
        SPECS["cross_entropy"],
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        params={"label_smoothing": label_smoothing},
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Negative log-likelihood ``l = -w_y log_probs[y]`` over the class axis 1 (PyTorch's ``nll_loss``).

    Shapes, ``weight``, ``ignore_index`` and the weighted ``"mean"`` are as in :func:`cross_entropy`
    (class-index targets only); ``log_probs`` are typically ``log_softmax`` outputs.

    >>> import fastloss
    >>> float(fastloss.nll_loss([[-0.5, -1.0], [-2.0, -0.1]], [0, 1]))
    0.3
    """
    return _classwise.class_loss(
        SPECS["nll_loss"],
        log_probs,
        target,
        weight=weight,
        ignore_index=ignore_index,
        params={},
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def softmax_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    gamma: float = 2.0,
    alpha: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Multi-class focal loss (Lin et al. 2017): ``l = -alpha_y (1 - p_y)^gamma log p_y``, ``p = softmax``.

    ``alpha`` is None (1 for every class), a scalar, or C per-class factors; ``gamma >= 0``. With
    ``gamma = 0`` and ``alpha = None`` it equals :func:`cross_entropy`. Shapes and ``ignore_index`` as
    there; ``"mean"`` averages over the non-ignored positions (alpha is a factor, not a weight to divide
    by). ``1 - p_y`` is summed from the other classes' probabilities, so it does not cancel when ``p_y``
    is near 1.

    >>> import fastloss
    >>> round(float(fastloss.softmax_focal_loss([[2.0, 0.0, -1.0]], [0], gamma=0.0)), 12)
    0.169846019556
    """
    return _classwise.class_loss(
        SPECS["softmax_focal_loss"],
        logits,
        target,
        weight=alpha,
        ignore_index=ignore_index,
        params={"gamma": gamma},
        reduction=reduction,
        return_grad=return_grad,
        weight_name="alpha",
    )


@api
def poly1_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    epsilon: float = 1.0,
    ignore_index: int = -100,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Poly-1 cross-entropy (Leng et al. 2022): ``l = -log p_y + epsilon (1 - p_y)``, ``p = softmax``.

    Shapes and ``ignore_index`` as in :func:`cross_entropy`; ``"mean"`` averages over the non-ignored
    positions. ``epsilon = 0`` is cross-entropy.

    >>> import fastloss
    >>> round(float(fastloss.poly1_cross_entropy([[0.0, 0.0]], [0], epsilon=1.0)), 12)
    1.19314718056
    """
    return _classwise.class_loss(
        SPECS["poly1_cross_entropy"],
        logits,
        target,
        weight=None,
        ignore_index=ignore_index,
        params={"epsilon": epsilon},
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def multiclass_hinge(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 1.0,
    p: int = 1,
    weight: ArrayLike | None = None,
    method: str = "weston_watkins",
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Multi-class hinge loss over the class axis 1, ``p`` in {1, 2}, ``weight`` C class weights.

    ``method="weston_watkins"``: ``l = w_y / C sum_{j != y} max(0, margin - s_y + s_j)^p``, PyTorch's
    ``multi_margin_loss``. ``method="crammer_singer"``: ``l = w_y max(0, margin + max_{j != y} s_j - s_y)^p``,
    scikit-learn's multi-class ``hinge_loss`` (margin 1, p 1); its gradient goes to the first maximising
    class. ``"mean"`` averages over positions (as both libraries do).

    >>> import fastloss
    >>> float(fastloss.multiclass_hinge([[1.0, 0.5, -1.0]], [0]))
    0.16666666666666666
    """
    spec = SPECS["multiclass_hinge"]
    power = int(spec.check("p", p))
    kind = "ww" if spec.check("method", method) == "weston_watkins" else "cs"
    return _classwise.class_loss(
        spec,
        scores,
        target,
        kernel=f"multiclass_hinge_{kind}{power}",
        weight=weight,
        ignore_index=None,
        params={"margin": margin},
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    log_target: bool = False,
    reduction: Literal["batchmean", "sum", "mean", "none"] = "batchmean",
    return_grad: bool = False,
) -> Any:
    """Kullback-Leibler divergence terms ``target (log target - input)``, PyTorch's ``kl_div``.

    ``input`` holds log-probabilities ``log Q``, ``target`` probabilities ``P`` (or ``log P`` with
    ``log_target=True``), of identical shapes. A term with ``P = 0`` is 0 (PyTorch gives NaN when
    ``log Q = -inf`` there); ``P`` must be >= 0. Reductions: ``"batchmean"`` (the sum divided by the first
    dimension: the mathematical KL divergence per sample), ``"sum"``, ``"mean"`` (over all elements, as
    PyTorch), ``"none"``. ``D_KL(P || Q) = kl_div(log(Q), P, reduction="sum")`` for one distribution.
    The gradient is with respect to ``input``.

    >>> import numpy as np, fastloss
    >>> P, Q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    >>> round(float(fastloss.kl_div(np.log(Q), P, reduction="sum")), 12)
    0.510825623766
    """
    spec = SPECS["kl_div"]
    return _elementwise.batch_mean(
        spec,
        {"input": input, "target": target},
        kernel="kl_div_log_target" if spec.check("log_target", log_target) else "kl_div",
        reduction=reduction,
        return_grad=return_grad,
    )
