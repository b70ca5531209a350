# Generated from fastloss._specs by `python -m fastloss._specs --write-stubs`; do not edit.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

Value = np.floating[Any] | NDArray[np.floating[Any]]
Array = NDArray[np.floating[Any]]

@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    pos_weight: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    pos_weight: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def hinge(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    squared: bool = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def hinge(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    squared: bool = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    log_target: bool = ...,
    reduction: Literal["batchmean", "sum", "mean", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    log_target: bool = ...,
    reduction: Literal["batchmean", "sum", "mean", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def multiclass_hinge(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    p: float = ...,
    weight: ArrayLike | None = ...,
    method: Literal["weston_watkins", "crammer_singer"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def multiclass_hinge(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    p: float = ...,
    weight: ArrayLike | None = ...,
    method: Literal["weston_watkins", "crammer_singer"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def poly1_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    epsilon: float = ...,
    ignore_index: int = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def poly1_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    epsilon: float = ...,
    ignore_index: int = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    gamma: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    gamma: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def softmax_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    gamma: float = ...,
    alpha: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def softmax_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    gamma: float = ...,
    alpha: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
