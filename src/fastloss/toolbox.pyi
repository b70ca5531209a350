# Generated from fastloss._specs by `python -m fastloss._specs --write-stubs`; do not edit.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

Value = np.floating[Any] | NDArray[np.floating[Any]]
Array = NDArray[np.floating[Any]]

@overload
def flow_matching_loss(
    v_pred: ArrayLike,
    x0: ArrayLike,
    x1: ArrayLike,
    *,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def flow_matching_loss(
    v_pred: ArrayLike,
    x0: ArrayLike,
    x1: ArrayLike,
    *,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
def gram_matrix(features: ArrayLike, *, normalize: bool = ...) -> Array: ...
@overload
def graph_matching_loss(
    a1: ArrayLike,
    a2: ArrayLike,
    perm: ArrayLike,
    *,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def graph_matching_loss(
    a1: ArrayLike,
    a2: ArrayLike,
    perm: ArrayLike,
    *,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def perceptual_loss(
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def perceptual_loss(
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def prior_preservation_loss(
    pred: ArrayLike,
    target: ArrayLike,
    prior_pred: ArrayLike,
    prior_target: ArrayLike,
    *,
    prior_weight: float = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def prior_preservation_loss(
    pred: ArrayLike,
    target: ArrayLike,
    prior_pred: ArrayLike,
    prior_target: ArrayLike,
    *,
    prior_weight: float = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def style_loss(
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def style_loss(
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def temporal_consistency_loss(
    frames: ArrayLike,
    *,
    p: float = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def temporal_consistency_loss(
    frames: ArrayLike,
    *,
    p: float = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
