# Generated from fastloss._specs by `python -m fastloss._specs --write-stubs`; do not edit.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

Value = np.floating[Any] | NDArray[np.floating[Any]]
Array = NDArray[np.floating[Any]]

@overload
def dice_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    smooth_nr: float = ...,
    smooth_dr: float = ...,
    squared: bool = ...,
    batch: bool = ...,
    include_background: bool = ...,
    activation: Literal[None, "sigmoid", "softmax"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def dice_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    smooth_nr: float = ...,
    smooth_dr: float = ...,
    squared: bool = ...,
    batch: bool = ...,
    include_background: bool = ...,
    activation: Literal[None, "sigmoid", "softmax"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def jaccard_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    smooth_nr: float = ...,
    smooth_dr: float = ...,
    squared: bool = ...,
    batch: bool = ...,
    include_background: bool = ...,
    activation: Literal[None, "sigmoid", "softmax"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def jaccard_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    smooth_nr: float = ...,
    smooth_dr: float = ...,
    squared: bool = ...,
    batch: bool = ...,
    include_background: bool = ...,
    activation: Literal[None, "sigmoid", "softmax"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def tversky_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    beta: float = ...,
    smooth_nr: float = ...,
    smooth_dr: float = ...,
    batch: bool = ...,
    include_background: bool = ...,
    activation: Literal[None, "sigmoid", "softmax"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def tversky_loss(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    beta: float = ...,
    smooth_nr: float = ...,
    smooth_dr: float = ...,
    batch: bool = ...,
    include_background: bool = ...,
    activation: Literal[None, "sigmoid", "softmax"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
