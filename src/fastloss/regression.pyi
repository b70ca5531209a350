# Generated from fastloss._specs by `python -m fastloss._specs --write-stubs`; do not edit.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

Value = np.floating[Any] | NDArray[np.floating[Any]]
Array = NDArray[np.floating[Any]]

@overload
def huber(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def huber(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def log_cosh(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def log_cosh(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def mae(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def mae(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def mse(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def mse(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def pinball(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    quantile: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def pinball(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    quantile: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def pseudo_huber(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def pseudo_huber(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    delta: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def rmse(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def rmse(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def smooth_l1(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    beta: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def smooth_l1(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    beta: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
