"""Regression losses: MSE, MAE, RMSE, Huber, smooth L1, log-cosh, pseudo-Huber, pinball.

Each function is its signature, its docstring (the parameters' sections come from its spec in
``fastloss._specs``) and one call of the elementwise driver.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import ArrayLike

from fastloss import _elementwise
from fastloss._specs import SPECS, ReductionName, api

__all__ = ["huber", "log_cosh", "mae", "mse", "pinball", "pseudo_huber", "rmse", "smooth_l1"]


def _pair(name: str, pred: ArrayLike, target: ArrayLike, **kw: Any) -> Any:
    return _elementwise.run(SPECS[name], {"pred": pred, "target": target}, **kw)


@api
def mse(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Mean squared error, ``l = (pred - target)^2``; ``dl/dpred = 2 (pred - target)``.

    Matches ``torch.nn.functional.mse_loss`` (and ``sklearn.metrics.mean_squared_error``).

    >>> import fastloss
    >>> float(fastloss.mse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]))
    1.3333333333333333
    """
    return _pair("mse", pred, target, weight=weight, reduction=reduction, return_grad=return_grad)


@api
def mae(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Mean absolute error, ``l = |pred - target|``; ``dl/dpred = sign(pred - target)`` (0 at 0).

    Matches ``torch.nn.functional.l1_loss`` (and ``sklearn.metrics.mean_absolute_error``).

    >>> import fastloss
    >>> float(fastloss.mae([1.0, 2.0, 3.0], [2.0, 2.0, 5.0]))
    1.0
    """
    return _pair("mae", pred, target, weight=weight, reduction=reduction, return_grad=return_grad)


@api
def rmse(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Root mean squared error, ``sqrt(sum(w (pred - target)^2) / sum(w))``.

    ``reduction`` must be ``"mean"`` (a root of a sum or per element is not an RMSE). The gradient is
    ``w (pred - target) / (sum(w) rmse)``; where the error is exactly zero it is 0 (a subgradient).
    Matches ``sklearn.metrics.root_mean_squared_error``.

    >>> import fastloss
    >>> float(fastloss.rmse([0.0, 0.0], [3.0, 4.0]))
    3.5355339059327378
    """
    return _elementwise.root_mean(
        SPECS["rmse"],
        {"pred": pred, "target": target},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def huber(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = 1.0,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Huber loss: ``0.5 d^2`` if ``|d| < delta`` else ``delta (|d| - 0.5 delta)``, ``d = pred - target``.

    ``dl/dpred = clip(d, -delta, delta)``. Matches ``torch.nn.functional.huber_loss``; ``delta`` must be
    > 0. With a weight, ``"mean"`` is the weighted mean (PyTorch's divides by N instead). Computed
    branch-free, so its speed does not depend on how many residuals exceed ``delta``.

    >>> import fastloss
    >>> float(fastloss.huber([0.0, 0.0], [0.5, 3.0]))
    1.3125
    """
    return _pair(
        "huber",
        pred,
        target,
        params={"delta": delta},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def smooth_l1(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    beta: float = 1.0,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Smooth L1: ``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``; ``beta = 0`` is L1.

    Matches ``torch.nn.functional.smooth_l1_loss``; ``beta`` must be >= 0. Equals ``huber / beta``.

    >>> import fastloss
    >>> float(fastloss.smooth_l1([0.0, 0.0], [0.5, 3.0]))
    1.3125
    """
    b = SPECS["smooth_l1"].check("beta", beta)
    return _pair(
        "smooth_l1",
        pred,
        target,
        kernel="mae" if b == 0.0 else "smooth_l1",
        params={} if b == 0.0 else {"beta": b},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def log_cosh(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Log-cosh loss, ``l = log(cosh(d))``, ``d = pred - target``; ``dl/dpred = tanh(d)``.

    Computed in the stable form ``|d| + log1p(exp(-2|d|)) - log 2`` (no overflow for large ``|d|``), and
    by its series ``d^2/2 - d^4/12 + d^6/45`` for ``|d| < 2^-7`` where that form cancels. Matches Keras's
    ``log_cosh`` (PyTorch has no such loss).

    >>> import fastloss
    >>> round(float(fastloss.log_cosh([0.0], [1.0])), 12)
    0.433780830483
    """
    return _pair("log_cosh", pred, target, weight=weight, reduction=reduction, return_grad=return_grad)


@api
def pseudo_huber(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = 1.0,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Pseudo-Huber loss, ``delta^2 (sqrt(1 + (d / delta)^2) - 1)``; ``dl/dpred = d / sqrt(1 + (d/delta)^2)``.

    Matches ``scipy.special.pseudo_huber(delta, d)``; ``delta`` must be > 0 (SciPy returns inf for
    ``delta < 0`` and 0 for ``delta = 0``; fastloss raises instead).

    >>> import fastloss
    >>> round(float(fastloss.pseudo_huber([0.0], [1.0])), 12)
    0.414213562373
    """
    return _pair(
        "pseudo_huber",
        pred,
        target,
        params={"delta": delta},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def pinball(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    quantile: float = 0.5,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Pinball (quantile) loss: ``q (t - p)`` if ``t >= p`` else ``(q - 1)(t - p)``.

    Matches ``sklearn.metrics.mean_pinball_loss(target, pred, alpha=quantile, sample_weight=weight)``;
    ``quantile`` must lie in [0, 1]. ``dl/dpred`` is ``-q`` above, ``1 - q`` below, 0 at ``t = p``.

    >>> import fastloss
    >>> float(fastloss.pinball([0.0, 0.0], [1.0, -1.0], quantile=0.9))
    0.5
    """
    return _pair(
        "pinball",
        pred,
        target,
        params={"quantile": quantile},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )
