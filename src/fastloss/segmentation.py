"""Segmentation overlap losses: Dice, Jaccard (soft IoU) and Tversky, with MONAI's semantics.

One kernel pass computes, for every (batch, channel), the sums I = sum p g, P = sum p (or p^2) and
G = sum g (or g^2) over the spatial positions, with the activation applied to the prediction and integer
labels turned into one-hot inside the pass (never materialised). The losses are formulas of these sums;
their gradient is one more pass.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import ArrayLike

from fastloss import _overlap
from fastloss._specs import ReductionName, api

__all__ = ["dice_loss", "jaccard_loss", "tversky_loss"]


@api
def dice_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    squared: bool = False,
    batch: bool = False,
    include_background: bool = True,
    activation: str | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Soft Dice loss ``1 - (2 I + smooth_nr) / (P + G + smooth_dr)`` per (batch, channel), as MONAI's
    ``DiceLoss``.

    ``pred`` is (B, C, spatial...). ``target`` is either of ``pred``'s shape (dense, used as given) or
    integer class labels of shape (B, spatial...), one-hot inside the kernel (MONAI's ``to_onehot_y``); a
    label outside [0, C) raises ValueError. ``activation`` None, ``"sigmoid"`` or ``"softmax"`` (over the
    channels) is applied to ``pred`` in the same pass. ``I = sum p g``, ``P = sum p``, ``G = sum g`` over
    the spatial axes (``squared=True``: ``sum p^2``, ``sum g^2``, MONAI's ``squared_pred``); ``batch=True``
    sums over the batch too; ``include_background=False`` leaves channel 0 out (after the softmax, as
    MONAI). ``reduction``: mean or sum over the (batch, channel) terms, or ``"none"`` for the (B, C')
    array ((C',) with ``batch=True``; MONAI keeps singleton spatial axes). With ``return_grad=True``
    returns ``(value, d value / d pred)``.

    >>> import numpy as np, fastloss
    >>> p = np.array([[[0.9, 0.1, 0.8, 0.2]]])
    >>> round(float(fastloss.dice_loss(p, np.array([[[1.0, 0.0, 1.0, 0.0]]]))), 6)
    0.15
    """
    return _overlap.run(
        "dice_loss",
        "dice",
        pred,
        target,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        squared=squared,
        batch=batch,
        include_background=include_background,
        activation=activation,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def jaccard_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    squared: bool = False,
    batch: bool = False,
    include_background: bool = True,
    activation: str | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Soft Jaccard (IoU) loss ``1 - (2 I + smooth_nr) / (2 (P + G - I) + smooth_dr)``, as MONAI's
    ``DiceLoss(jaccard=True)``; the options are those of :func:`dice_loss`.

    >>> import numpy as np, fastloss
    >>> p = np.array([[[0.9, 0.1, 0.8, 0.2]]])
    >>> round(float(fastloss.jaccard_loss(p, np.array([[[1.0, 0.0, 1.0, 0.0]]]))), 6)
    0.260869
    """
    return _overlap.run(
        "jaccard_loss",
        "jaccard",
        pred,
        target,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        squared=squared,
        batch=batch,
        include_background=include_background,
        activation=activation,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def tversky_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = False,
    include_background: bool = True,
    activation: str | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Tversky loss ``1 - (TP + smooth_nr) / (TP + alpha FP + beta FN + smooth_dr)``, as MONAI's
    ``TverskyLoss``: ``TP = sum p g``, ``FP = sum p (1 - g)``, ``FN = sum (1 - p) g``. ``alpha = beta = 0.5``
    is the Dice loss; the other options are those of :func:`dice_loss`.

    >>> import numpy as np, fastloss
    >>> p = np.array([[[0.9, 0.3, 0.8, 0.2]]])
    >>> round(float(fastloss.tversky_loss(p, np.array([[[1.0, 0.0, 1.0, 0.0]]]), alpha=0.7, beta=0.3)), 6)
    0.205607
    """
    return _overlap.run(
        "tversky_loss",
        "tversky",
        pred,
        target,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        squared=False,
        batch=batch,
        include_background=include_background,
        activation=activation,
        reduction=reduction,
        return_grad=return_grad,
        alpha=alpha,
        beta=beta,
    )
