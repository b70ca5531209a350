"""Ranking and metric-learning losses."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fastloss import _elementwise, _pairwise
from fastloss._specs import SPECS, ReductionName, api

__all__ = [
    "arcface_loss",
    "batch_hard_triplet_loss",
    "contrastive_loss",
    "cosine_embedding_loss",
    "ge2e_loss",
    "info_nce",
    "kmeans_inertia",
    "margin_ranking_loss",
    "multiple_negatives_ranking_loss",
    "nt_xent",
    "pairwise_contrastive_loss",
    "pairwise_distances",
    "triplet_margin_loss",
]


@api
def margin_ranking_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    weight: ArrayLike | None = None,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Margin ranking loss ``max(0, -target (x1 - x2) + margin)``, ``target`` exactly -1 or +1.

    Matches ``torch.nn.functional.margin_ranking_loss`` (which does not check the labels; fastloss
    raises ValueError for anything but ±1). With ``return_grad=True`` returns
    ``(value, (d/dx1, d/dx2))``.

    >>> import fastloss
    >>> float(fastloss.margin_ranking_loss([1.0, 0.0], [0.0, 1.0], [1, 1], margin=0.5))
    0.75
    """
    return _elementwise.run(
        SPECS["margin_ranking_loss"],
        {"x1": x1, "target": target, "x2": x2},
        params={"margin": margin},
        weight=weight,
        reduction=reduction,
        return_grad=return_grad,
    )


# --------------------------------------------------------------------------------------------------
# Pairwise distances and the losses over them. The backend primitives stream tiles of the distance
# or similarity matrix and fuse the loss into the tile's epilogue: nothing of size N x M is allocated
# unless the caller asks for the matrix itself (pairwise_distances).


@api
def pairwise_distances(x: ArrayLike, y: ArrayLike | None = None, *, metric: str = "euclidean") -> np.ndarray:
    """Distances between every row of ``x`` (N, d) and every row of ``y`` (M, d): an (N, M) array.

    ``y=None`` means ``y = x``. Metrics: ``"euclidean"``, ``"sqeuclidean"``, ``"manhattan"`` and
    ``"cosine"`` (``1 - x.y / (|x| |y|)``, the cosine clipped to [-1, 1]; a zero vector gives nan as
    0/0). Equals ``scipy.spatial.distance.cdist(x, y, metric)`` (whose name for manhattan is
    ``"cityblock"``).

    The Euclidean distances are computed from exact differences, ``sum_k (x_ik - y_jk)^2``, in cache
    tiles: never through the expansion ``|x|^2 + |y|^2 - 2 x.y``, which cancels catastrophically on
    near-identical rows (where scikit-learn's and PyTorch's GEMM-based distances lose every digit). The
    differences vectorise as well as a GEMM on CPUs with separate add and FMA units. float32 inputs
    accumulate in float32 within a tile row (about sqrt(d) ulp) and give a float32 matrix.

    >>> import fastloss
    >>> fastloss.pairwise_distances([[0.0, 0.0], [3.0, 4.0]], [[0.0, 0.0]]).tolist()
    [[0.0], [5.0]]
    >>> fastloss.pairwise_distances([[1.0, 2.0]], [[2.0, 4.0]], metric="manhattan").tolist()
    [[3.0]]
    """
    return _pairwise.pairwise_distances(x, y, metric=metric)


@api
def contrastive_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Contrastive loss of paired embeddings (Hadsell, Chopra and LeCun 2006).

    ``l_i = 0.5 [t_i d_i^2 + (1 - t_i) max(0, margin - d_i)^2]`` with ``d_i = ||x1_i - x2_i||`` (Euclidean)
    and ``t_i`` 1 for a similar pair, 0 for a dissimilar one (soft values in [0, 1] are used linearly;
    anything outside raises ValueError). ``x1`` and ``x2`` are (N, d). With ``return_grad=True``
    returns ``(value, (d/dx1, d/dx2))``; a dissimilar pair at distance 0 has gradient 0 (subgradient).

    >>> import fastloss
    >>> float(fastloss.contrastive_loss([[0.0, 0.0], [0.0, 0.0]], [[3.0, 4.0], [0.3, 0.4]], [1, 0]))
    6.3125
    """
    return _pairwise.contrastive_loss(
        x1, x2, target, margin=margin, reduction=reduction, return_grad=return_grad
    )


@api
def pairwise_contrastive_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The contrastive loss over every pair i < j of a batch, similar when ``labels[i] == labels[j]``.

    ``l_ij = 0.5 d_ij^2`` for a similar pair and ``0.5 max(0, margin - d_ij)^2`` for a dissimilar one,
    ``d_ij`` the Euclidean distance; ``"mean"`` divides by the N (N - 1) / 2 pairs (nan for N < 2),
    ``"sum"`` adds them. ``reduction="none"`` would be the N x N matrix and is refused: use
    :func:`pairwise_distances` for that. Computed tile by tile over the distance matrix (O(N d) memory);
    with ``return_grad=True`` returns ``(value, d/dembeddings)``.

    >>> import fastloss
    >>> float(fastloss.pairwise_contrastive_loss([[0.0], [0.5], [3.0]], [0, 0, 1], reduction="sum"))
    0.125
    """
    return _pairwise.pairwise_contrastive_loss(
        embeddings, labels, margin=margin, reduction=reduction, return_grad=return_grad
    )


@api
def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Triplet margin loss ``max(d(a, p) - d(a, n) + margin, 0)`` with ``d(u, v) = ||u - v + eps||_p``.

    Matches ``torch.nn.functional.triplet_margin_loss``, including its ``eps`` added to the difference
    and ``swap`` (the distance swap of Balntas et al. 2016: ``d(a, n)`` becomes ``min(d(a, n), d(p, n))``)
    and its refusal of ``margin <= 0``. At a swap tie the gradient follows ``d(a, n)`` (torch splits it).
    The p-norm is computed scaled by its largest component, so a huge ``p`` gives the max norm (its
    limit) where torch's unscaled sum overflows to inf or 0.
    Inputs are (N, d). With ``return_grad=True`` returns ``(value, (d/danchor, d/dpositive, d/dnegative))``.

    >>> import fastloss
    >>> round(float(fastloss.triplet_margin_loss([[0.0, 0.0]], [[3.0, 4.0]], [[0.0, 1.0]], eps=0.0)), 12)
    5.0
    """
    return _pairwise.triplet_margin_loss(
        anchor,
        positive,
        negative,
        margin=margin,
        p=p,
        eps=eps,
        swap=swap,
        reduction=reduction,
        return_grad=return_grad,
    )


@api
def cosine_embedding_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Cosine embedding loss: ``1 - cos(x1_i, x2_i)`` for ``target = 1``, ``max(0, cos - margin)`` for -1.

    Matches ``torch.nn.functional.cosine_embedding_loss``, including its 1e-12 added to each squared
    norm (so a zero vector has cosine 0, not nan). ``target`` must be exactly -1 or +1. Inputs are (N, d).
    With ``return_grad=True`` returns ``(value, (d/dx1, d/dx2))``.

    >>> import fastloss
    >>> x1, x2 = [[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]
    >>> round(float(fastloss.cosine_embedding_loss(x1, x2, [1, -1])), 6)
    0.853553
    """
    return _pairwise.cosine_embedding_loss(
        x1, x2, target, margin=margin, reduction=reduction, return_grad=return_grad
    )


@api
def batch_hard_triplet_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Batch-hard triplet loss (Hermans, Beyer and Leibe 2017) with Euclidean distances.

    For each anchor i: ``l_i = max(0, max_p d(i, p) - min_n d(i, n) + margin)`` over its positives
    (same label, p != i) and negatives (other labels), found in one fused pass over tiles of the distance
    matrix (O(N d) memory; ties go to the lowest index). An anchor without a positive or without a
    negative has no triplet and is not counted: ``"mean"`` divides by the number of valid anchors (nan
    when there is none, as every empty mean in fastloss), ``"none"`` gives 0 for it. NaN in a distance
    propagates to its anchor's loss. With ``return_grad=True`` returns ``(value, d/dembeddings)``; the
    gradient reaches each anchor, its hardest positive and its hardest negative (with ``"none"``, the
    gradient of the sum).

    >>> import fastloss
    >>> float(fastloss.batch_hard_triplet_loss([[0.0], [1.0], [1.5]], [0, 0, 1], margin=1.0))
    1.0
    """
    return _pairwise.batch_hard_triplet_loss(
        embeddings, labels, margin=margin, reduction=reduction, return_grad=return_grad
    )


# --------------------------------------------------------------------------------------------------
# Similarity-matrix cross-entropies: one streaming primitive (sim_ce) evaluates, for every row of A,
# the cross-entropy of the logits scale * A_i . B_j (with an optional excluded column and an optional
# extra logit) with an online log-sum-exp over tiles of B: memory O((N + M) d), never O(N M).


@api
def info_nce(
    query: ArrayLike,
    positive: ArrayLike,
    negatives: ArrayLike | None = None,
    *,
    temperature: float = 0.1,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """InfoNCE (van den Oord et al. 2018) of L2-normalised embeddings.

    Rows are normalised as ``torch.nn.functional.normalize`` does (``x / max(||x||, 1e-12)``). With
    ``negatives=None``, query i's logits are ``q_i . p_j / temperature`` over every positive j: its own
    positive is the target and the batch's other positives are its negatives. With ``negatives`` of
    shape (M, d), query i's logits are ``[q_i . p_i, q_i . n_1, ..., q_i . n_M] / temperature``, the
    negatives shared by every query (the ``info-nce-pytorch`` package's ``negative_mode="unpaired"``).
    The loss of a query is the cross-entropy of its logits. With ``return_grad=True`` returns
    ``(value, (d/dquery, d/dpositive[, d/dnegatives]))``; with ``"none"``, gradients of the sum.

    >>> import fastloss
    >>> q = [[1.0, 0.0], [0.0, 1.0]]
    >>> round(float(fastloss.info_nce(q, q, temperature=1.0)), 6)  # log(1 + e^-1)
    0.313262
    """
    return _pairwise.info_nce(
        query, positive, negatives, temperature=temperature, reduction=reduction, return_grad=return_grad
    )


@api
def nt_xent(
    z1: ArrayLike,
    z2: ArrayLike,
    *,
    temperature: float = 0.5,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020).

    ``z = normalize(concat(z1, z2))`` holds the 2N views; view k's logits are ``z_k . z_j / temperature``
    over every j != k and its target is the other view of the same example (k + N mod 2N). ``"mean"``
    averages over the 2N views, ``"none"`` returns the (2N,) losses in the order of ``concat(z1, z2)``.
    With ``return_grad=True`` returns ``(value, (d/dz1, d/dz2))``.

    >>> import fastloss
    >>> z = [[1.0, 0.0], [0.0, 1.0]]
    >>> round(float(fastloss.nt_xent(z, z, temperature=1.0)), 6)  # log(1 + 2 e^-1)
    0.551445
    """
    return _pairwise.nt_xent(z1, z2, temperature=temperature, reduction=reduction, return_grad=return_grad)


@api
def multiple_negatives_ranking_loss(
    anchors: ArrayLike,
    positives: ArrayLike,
    *,
    scale: float = 20.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Multiple negatives ranking loss, as sentence-transformers' ``MultipleNegativesRankingLoss``.

    ``scores = scale * cos_sim(anchors, positives)``, (N, M) with M >= N, and anchor i's target is
    positive i: every other positive, and the M - N extra rows (hard negatives), are its negatives. The
    loss of an anchor is the cross-entropy of its scores. With ``return_grad=True`` returns
    ``(value, (d/danchors, d/dpositives))``.

    >>> import fastloss
    >>> a = [[1.0, 0.0], [0.0, 1.0]]
    >>> round(float(fastloss.multiple_negatives_ranking_loss(a, a, scale=1.0)), 6)
    0.313262
    """
    return _pairwise.multiple_negatives_ranking_loss(
        anchors, positives, scale=scale, reduction=reduction, return_grad=return_grad
    )


@api
def ge2e_loss(
    embeddings: ArrayLike,
    *,
    w: float = 10.0,
    b: float = -5.0,
    method: str = "softmax",
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Generalised end-to-end speaker-verification loss (Wan, Wang, Papir and Lopez Moreno 2018).

    ``embeddings`` is (S speakers, U utterances, d). Centroids ``c_k = mean_i e_ki``; for an utterance's
    own speaker the centroid leaves the utterance out, ``c_j^(-i) = (U c_j - e_ji) / (U - 1)``.
    Similarities ``S_ji,k = w cos(e_ji, c_k) + b`` (own speaker: with ``c_j^(-i)``), cosines of vectors
    normalised as ``x / max(||x||, 1e-12)``. ``method="softmax"``: ``L_ji = -S_ji,j + log sum_k exp S_ji,k``
    (``b`` cancels); ``"contrast"``: ``L_ji = 1 - sigmoid(S_ji,j) + max_{k != j} sigmoid(S_ji,k)``.
    ``"mean"`` averages over the S U utterances (the paper sums: use ``"sum"``), ``"none"`` returns
    (S, U). ``w > 0``, as the paper constrains it. With ``return_grad=True`` returns
    ``(value, d/dembeddings)`` (``w`` and ``b`` are taken as constants).

    The softmax method streams the similarities through the same kernel as :func:`info_nce`; the
    contrast method forms the (S U, S) similarity matrix, S times smaller than the embeddings' Gram matrix.

    >>> import fastloss
    >>> e = [[[1.0, 0.0], [1.0, 0.1]], [[0.0, 1.0], [0.1, 1.0]]]
    >>> round(float(fastloss.ge2e_loss(e, w=1.0)), 6)
    0.3427
    """
    return _pairwise.ge2e_loss(
        embeddings, w=w, b=b, method=method, reduction=reduction, return_grad=return_grad
    )


@api
def arcface_loss(
    embeddings: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    scale: float = 64.0,
    margin: float = 0.5,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """ArcFace, the additive angular margin loss (Deng, Guo, Xue and Zafeiriou 2019).

    Embeddings (N, d) and class weights (C, d) are L2-normalised (``x / max(||x||, 1e-12)``); with
    ``cos_c`` their cosines, the target class's logit becomes ``scale * cos(theta_y + margin)`` and the
    others stay ``scale * cos_c``; the loss is the cross-entropy. Where ``theta_y + margin > pi``, where
    cos(theta + m) would stop decreasing, the target logit is ``scale * (cos_y - margin sin(margin))``,
    InsightFace's fallback (``cos_y - sin(pi - m) m``). The logits stream through tiles of the class
    weights (memory O((N + C) d)). ``labels`` are class indices in [0, C). With ``return_grad=True``
    returns ``(value, (d/dembeddings, d/dweight))``.

    >>> import fastloss
    >>> round(float(fastloss.arcface_loss([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [0], scale=1.0)), 6)
    0.347685
    """
    return _pairwise.arcface_loss(
        embeddings, weight, labels, scale=scale, margin=margin, reduction=reduction, return_grad=return_grad
    )


@api
def kmeans_inertia(
    x: ArrayLike,
    centers: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    return_grad: bool = False,
) -> Any:
    """k-means inertia ``sum_i w_i min_k ||x_i - c_k||^2`` and each row's nearest center.

    Returns ``(inertia, labels)`` (labels int64, the lowest index at a tie), what scikit-learn's
    ``KMeans`` gives for fixed ``cluster_centers_``: ``-KMeans.score(x, sample_weight=w)`` and
    ``KMeans.predict(x)``. The squared distances come from exact differences in cache tiles (no N x K
    matrix is stored), so near-ties are decided on accurate distances. With ``return_grad=True``
    returns ``(inertia, labels, (d/dx, d/dcenters))``.

    >>> import fastloss
    >>> inertia, labels = fastloss.kmeans_inertia([[0.0], [1.0], [9.0]], [[0.0], [10.0]])
    >>> float(inertia), labels.tolist()
    (2.0, [0, 0, 1])
    """
    return _pairwise.kmeans_inertia(x, centers, sample_weight=sample_weight, return_grad=return_grad)
