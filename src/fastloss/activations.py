"""Activations over an axis: softmax, log_softmax, logsumexp (SciPy's results), and sigmoid."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fastloss import _classwise, _elementwise
from fastloss._specs import SPECS, Reduction, api

__all__ = ["log_softmax", "logsumexp", "sigmoid", "softmax"]


@api
def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """``exp(x - logsumexp(x))`` along ``axis``, stable for any input (``scipy.special.softmax``).

    >>> import fastloss
    >>> fastloss.softmax([0.0, 0.0, 0.0, 0.0]).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    return _classwise.row_map(SPECS["softmax"], x, axis)[1]


@api
def log_softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """``x - logsumexp(x)`` along ``axis`` (``scipy.special.log_softmax``).

    >>> import fastloss
    >>> round(float(fastloss.log_softmax([1.0, 1.0])[0]), 12)
    -0.69314718056
    """
    return _classwise.row_map(SPECS["log_softmax"], x, axis)[1]


@api
def logsumexp(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(x)))`` along ``axis``, without overflow; the axis is removed
    (``scipy.special.logsumexp(x, axis=axis)``). A row of -inf gives -inf; NaN propagates.

    >>> import fastloss
    >>> round(float(fastloss.logsumexp([1000.0, 1000.0])), 9)
    1000.693147181
    """
    return _classwise.row_map(SPECS["logsumexp"], x, axis)[0]


@api
def sigmoid(x: ArrayLike) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))``, elementwise and stable (``scipy.special.expit``).

    >>> import fastloss
    >>> fastloss.sigmoid([0.0]).tolist()
    [0.5]
    """
    return _elementwise.run(SPECS["sigmoid"], {"x": x, "x_": x}, reduction=Reduction.NONE)
