# Generated from fastloss._specs by `python -m fastloss._specs --write-stubs`; do not edit.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

Value = np.floating[Any] | NDArray[np.floating[Any]]
Array = NDArray[np.floating[Any]]

@overload
def arcface_loss(
    embeddings: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    scale: float = ...,
    margin: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def arcface_loss(
    embeddings: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    scale: float = ...,
    margin: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def batch_hard_triplet_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def batch_hard_triplet_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def contrastive_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def contrastive_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def cosine_embedding_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def cosine_embedding_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def ge2e_loss(
    embeddings: ArrayLike,
    *,
    w: float = ...,
    b: float = ...,
    method: Literal["softmax", "contrast"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def ge2e_loss(
    embeddings: ArrayLike,
    *,
    w: float = ...,
    b: float = ...,
    method: Literal["softmax", "contrast"] = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
@overload
def info_nce(
    query: ArrayLike,
    positive: ArrayLike,
    negatives: ArrayLike | None = ...,
    *,
    temperature: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def info_nce(
    query: ArrayLike,
    positive: ArrayLike,
    negatives: ArrayLike | None = ...,
    *,
    temperature: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, ...]]: ...
@overload
def kmeans_inertia(
    x: ArrayLike,
    centers: ArrayLike,
    *,
    sample_weight: ArrayLike | None = ...,
    return_grad: Literal[False] = ...,
) -> tuple[np.floating[Any], NDArray[np.int64]]: ...
@overload
def kmeans_inertia(
    x: ArrayLike,
    centers: ArrayLike,
    *,
    sample_weight: ArrayLike | None = ...,
    return_grad: Literal[True],
) -> tuple[np.floating[Any], NDArray[np.int64], tuple[Array, Array]]: ...
@overload
def margin_ranking_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def margin_ranking_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = ...,
    weight: ArrayLike | None = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def multiple_negatives_ranking_loss(
    anchors: ArrayLike,
    positives: ArrayLike,
    *,
    scale: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def multiple_negatives_ranking_loss(
    anchors: ArrayLike,
    positives: ArrayLike,
    *,
    scale: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def nt_xent(
    z1: ArrayLike,
    z2: ArrayLike,
    *,
    temperature: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def nt_xent(
    z1: ArrayLike,
    z2: ArrayLike,
    *,
    temperature: float = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array]]: ...
@overload
def pairwise_contrastive_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = ...,
    reduction: Literal["mean", "sum"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def pairwise_contrastive_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = ...,
    reduction: Literal["mean", "sum"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, Array]: ...
def pairwise_distances(
    x: ArrayLike,
    y: ArrayLike | None = ...,
    *,
    metric: Literal["euclidean", "sqeuclidean", "cosine", "manhattan"] = ...,
) -> Array: ...
@overload
def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: float = ...,
    p: float = ...,
    eps: float = ...,
    swap: bool = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[False] = ...,
) -> Value: ...
@overload
def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: float = ...,
    p: float = ...,
    eps: float = ...,
    swap: bool = ...,
    reduction: Literal["mean", "sum", "none"] = ...,
    return_grad: Literal[True],
) -> tuple[Value, tuple[Array, Array, Array]]: ...
