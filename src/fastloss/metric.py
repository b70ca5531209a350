"""Ranking and metric-learning losses."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fastloss import _backend, _elementwise, _pairwise, _validate
from fastloss._specs import SPECS, Reduction, ReductionName, api

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


def _reduction(func: str, reduction: object, return_grad: object) -> tuple[Reduction, bool]:
    spec = SPECS[func]
    return spec.check("reduction", reduction), spec.check("return_grad", return_grad)


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
    SPECS["pairwise_distances"].check("metric", metric)
    named = {"x": x} if y is None else {"x": x, "y": y}
    arrays, _ = _pairwise.embeddings("pairwise_distances", named)
    xa = arrays[0]
    ya = xa if y is None else arrays[1]
    # Squares of float32 values beyond ~1e19 overflow and below ~1e-19 lose digits to underflow: such
    # inputs are scaled by a power of two (exactly) into a safe range, and the distances scaled back.
    e = _safe_exponent(xa, ya)
    if e:
        xa = np.ldexp(xa, -e).astype(xa.dtype, copy=False)
        ya = xa if y is None else np.ldexp(ya, -e).astype(ya.dtype, copy=False)
    out = _backend.kernels().pairwise_distances(xa, ya, metric, _backend.thread_arg())
    if e and metric != "cosine":
        out = np.ldexp(out, 2 * e if metric == "sqeuclidean" else e).astype(out.dtype, copy=False)
    return out


def _safe_exponent(*arrays: np.ndarray) -> int:
    """0 when the squares of the arrays' values are safe in their dtype, else the binary exponent of
    their largest magnitude (scaling by 2**-e brings it to [0.5, 1))."""
    if not all(a.size for a in arrays):
        return 0
    amax = max(max(float(np.max(a)), -float(np.min(a))) for a in arrays)
    limit = 2.0**40 if arrays[0].dtype == np.float32 else 2.0**400
    if not np.isfinite(amax) or amax == 0.0 or 1.0 / limit <= amax <= limit:
        return 0
    return int(np.frexp(amax)[1])


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
    func = "contrastive_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)
    (a, b), dtype = _pairwise.embeddings(func, {"x1": x1, "x2": x2})
    _pairwise.same_shape(func, ("x1", "x2"), [a, b])
    t = _pairwise.row_target(func, target, a.shape[0], "unit")
    return _rowwise(func, [a, b], t, {"margin": m}, code, return_grad, dtype)


def _rowwise(func, arrays, target, params, code, return_grad, dtype) -> Any:
    n = arrays[0].shape[0]
    loss, grads = _backend.kernels().rowwise(
        SPECS[func].kernels[0].key,
        arrays,
        target,
        _validate.fits(func, dtype, params, list(params.values())),
        return_grad,
        _pairwise.grad_scale(code, n),
        _backend.thread_arg(),
    )
    value = _pairwise.reduce_rows(loss, code, dtype)
    return (value, tuple(grads)) if return_grad else value


@api
@_validate.ieee
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
    func = "pairwise_contrastive_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)
    (x,), dtype = _pairwise.embeddings(func, {"embeddings": embeddings})
    n = x.shape[0]
    y = _pairwise.int_labels(func, labels, n)
    pairs = n * (n - 1) // 2
    value, grad = _backend.kernels().pairwise_contrastive(
        x,
        y,
        *_validate.fits(func, dtype, ("margin",), [m]),
        return_grad,
        _pairwise.grad_scale(code, pairs),
        _backend.thread_arg(),
    )
    if code == Reduction.MEAN:
        value = value / pairs if pairs else np.nan
    value = _validate.scalar(value, dtype)
    return (value, grad) if return_grad else value


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
    func = "triplet_margin_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)  # torch refuses margin <= 0 too
    pn = SPECS[func].check("p", p)
    e = SPECS[func].check("eps", eps)
    sw = SPECS[func].check("swap", swap)
    arrays, dtype = _pairwise.embeddings(func, {"anchor": anchor, "positive": positive, "negative": negative})
    _pairwise.same_shape(func, ("anchor", "positive", "negative"), arrays)
    return _rowwise(
        func,
        arrays,
        None,
        {"margin": m, "p": pn, "eps": e, "swap": float(sw)},
        code,
        return_grad,
        dtype,
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
    func = "cosine_embedding_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)
    (a, b), dtype = _pairwise.embeddings(func, {"x1": x1, "x2": x2})
    _pairwise.same_shape(func, ("x1", "x2"), [a, b])
    t = _pairwise.row_target(func, target, a.shape[0], "pm1")
    return _rowwise(func, [a, b], t, {"margin": m}, code, return_grad, dtype)


@api
@_validate.ieee
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
    func = "batch_hard_triplet_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)
    (x,), dtype = _pairwise.embeddings(func, {"embeddings": embeddings})
    n = x.shape[0]
    y = _pairwise.int_labels(func, labels, n)
    dp, ip, dn, ineg = _backend.kernels().batch_hard(x, y, _backend.thread_arg())
    valid = (ip >= 0) & (ineg >= 0)
    loss = np.where(valid, np.maximum(dp - dn + m, 0.0), 0.0)
    loss = np.where(valid & np.isnan(dp - dn), np.nan, loss)  # np.maximum keeps NaN; be explicit
    count = int(np.count_nonzero(valid))
    value = _pairwise.reduce_rows(loss, code, dtype, count=count)
    if not return_grad:
        return value
    scale = _pairwise.grad_scale(code, count)
    active = valid & (dp - dn + m > 0.0)
    xf = x.astype(np.float64)
    g = np.zeros_like(xf)
    i = np.nonzero(active)[0]
    if i.size:
        up = (xf[i] - xf[ip[i]]) / dp[i, None]
        un = (xf[i] - xf[ineg[i]]) / dn[i, None]
        up[dp[i] == 0.0] = 0.0  # the subgradient at distance 0
        un[dn[i] == 0.0] = 0.0
        np.add.at(g, i, scale * (up - un))
        np.add.at(g, ip[i], -scale * up)
        np.add.at(g, ineg[i], scale * un)
    return value, g.astype(dtype)


# --------------------------------------------------------------------------------------------------
# Similarity-matrix cross-entropies: one streaming primitive (sim_ce) evaluates, for every row of A,
# the cross-entropy of the logits scale * A_i . B_j (with an optional excluded column and an optional
# extra logit) with an online log-sum-exp over tiles of B: memory O((N + M) d), never O(N M).


def _sim_ce(a, b, scale, target, exclude, extra, code, return_grad, count, row_scale=None):
    return _backend.kernels().sim_ce(
        a,
        b,
        scale,
        target,
        exclude,
        extra,
        return_grad,
        _pairwise.grad_scale(code, count),
        _backend.thread_arg(),
        row_scale,
    )


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
    func = "info_nce"
    code, return_grad = _reduction(func, reduction, return_grad)
    s = 1.0 / SPECS[func].check("temperature", temperature)
    named = {"query": query, "positive": positive}
    if negatives is not None:
        named["negatives"] = negatives
    arrays, dtype = _pairwise.embeddings(func, named)
    _pairwise.same_shape(func, ("query", "positive"), arrays[:2])
    n = arrays[0].shape[0]
    (qh, qi), (ph, pi) = _pairwise.normalize(arrays[0]), _pairwise.normalize(arrays[1])
    if negatives is None:
        target = np.arange(n, dtype=np.int64)
        loss, _, ga, gb = _sim_ce(qh, ph, s, target, None, None, code, return_grad, n)
        value = _pairwise.reduce_rows(loss, code, dtype)
        if not return_grad:
            return value
        return value, (
            _pairwise.normalize_backward(ga, qh, qi, dtype),
            _pairwise.normalize_backward(gb, ph, pi, dtype),
        )
    nh, ni = _pairwise.normalize(arrays[2])
    extra = s * _pairwise.rowdot(qh, ph)
    loss, dextra, ga, gb = _sim_ce(qh, nh, s, None, None, extra, code, return_grad, n)
    value = _pairwise.reduce_rows(loss, code, dtype)
    if not return_grad:
        return value
    k = (s * dextra)[:, None]
    gq = ga.astype(np.float64) + k * ph
    gp = k * qh
    return value, (
        _pairwise.normalize_backward(gq, qh, qi, dtype),
        _pairwise.normalize_backward(gp, ph, pi, dtype),
        _pairwise.normalize_backward(gb, nh, ni, dtype),
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
    func = "nt_xent"
    code, return_grad = _reduction(func, reduction, return_grad)
    s = 1.0 / SPECS[func].check("temperature", temperature)
    (a, b), dtype = _pairwise.embeddings(func, {"z1": z1, "z2": z2})
    _pairwise.same_shape(func, ("z1", "z2"), [a, b])
    n = a.shape[0]
    zh = np.empty((2 * n, a.shape[1]), a.dtype)  # normalize(concat(z1, z2)), without the concatenation
    zi = np.concatenate([_pairwise.normalize(a, zh[:n])[1], _pairwise.normalize(b, zh[n:])[1]])
    k = np.arange(2 * n, dtype=np.int64)
    loss, _, ga, gb = _sim_ce(zh, zh, s, (k + n) % max(2 * n, 1), k, None, code, return_grad, 2 * n)
    value = _pairwise.reduce_rows(loss, code, dtype)
    if not return_grad:
        return value
    # zh is both sides of the similarity: the kernel adds b's gradient into ga (gb is None).
    g = _pairwise.normalize_backward(ga, zh, zi, dtype, out=ga if ga.dtype == dtype else None)
    return value, (g[:n], g[n:])


@api
@_validate.ieee
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
    func = "multiple_negatives_ranking_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    sc = SPECS[func].check("scale", scale)
    (a, p), dtype = _pairwise.embeddings(func, {"anchors": anchors, "positives": positives})
    n, m = a.shape[0], p.shape[0]
    if m < n:
        raise ValueError(
            f"{func}: positives must have at least as many rows as anchors (extra rows are hard negatives), "
            f"got shapes {a.shape} and {p.shape}"
        )
    (ah, ai), (ph, pi) = _pairwise.normalize(a), _pairwise.normalize(p)
    loss, _, ga, gb = _sim_ce(ah, ph, sc, np.arange(n, dtype=np.int64), None, None, code, return_grad, n)
    value = _pairwise.reduce_rows(loss, code, dtype)
    if not return_grad:
        return value
    return value, (
        _pairwise.normalize_backward(ga, ah, ai, dtype),
        _pairwise.normalize_backward(gb, ph, pi, dtype),
    )


@api
@_validate.ieee
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
    func = "ge2e_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    wv = SPECS[func].check("w", w)
    bv = SPECS[func].check("b", b)
    method = SPECS[func].check("method", method)
    (e3,), dtype = _pairwise.embeddings(func, {"embeddings": embeddings}, ndim=3)
    S, U, d = e3.shape
    if S < 2 or U < 2:
        raise ValueError(f"{func}: needs at least 2 speakers and 2 utterances each, got shape {e3.shape}")
    e = e3.reshape(S * U, d)
    spk = np.repeat(np.arange(S, dtype=np.int64), U)
    # Row-local work goes by chunks of whole speakers (about _pairwise._CHUNK_BYTES of float64 rows): the
    # normalised embeddings, a speaker's sum, its leave-one-out centroids and every float64 gradient term
    # exist a chunk at a time (computed again in a later pass when there are several chunks). The kernel
    # reads the embeddings with their norms as row scales. What stays whole is the centroids and the
    # kernel's gradient, which becomes the output.
    step = U * max(1, _pairwise._CHUNK_BYTES // max(8 * d * U, 1))
    chunks = [(lo, min(lo + step, S * U)) for lo in range(0, S * U, step)]
    kept: dict[str, Any] = {}

    def cached(key: str, make):
        if key in kept:
            return kept[key]
        value = make()
        if len(chunks) == 1:
            kept[key] = value
        return value

    def eh_rows(lo: int, hi: int) -> np.ndarray:  # the normalised embeddings of the chunk, 1 / norms
        return cached("eh", lambda: _pairwise.normalize(e[lo:hi]))

    def speaker_sums(lo: int, hi: int) -> np.ndarray:  # sum_i e_ji of the chunk's speakers, float64
        return cached("sums", lambda: e[lo:hi].reshape(-1, U, d).sum(axis=1, dtype=np.float64))

    def excl_rows(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:  # normalised c_j^(-i), 1 / norms
        def make():
            sums = speaker_sums(lo, hi)
            return _pairwise.normalize(((sums[spk[lo:hi] - lo // U] - e[lo:hi]) / (U - 1)).astype(dtype))

        return cached("x", make)

    ch, ci, ei = np.empty((S, d), dtype), np.empty(S), np.empty(S * U)  # centroids, 1 / norms
    cos_own = np.empty(S * U)
    for lo, hi in chunks:
        s0, s1 = lo // U, hi // U
        ci[s0:s1] = _pairwise.normalize((speaker_sums(lo, hi) / U).astype(dtype), out=ch[s0:s1])[1]
        eh, ei[lo:hi] = eh_rows(lo, hi)
        cos_own[lo:hi] = _pairwise.rowdot(eh, excl_rows(lo, hi)[0])
    if method == "softmax":
        loss, dextra, ga, gb = _sim_ce(e, ch, wv, None, spk, wv * cos_own, code, return_grad, S * U, ei)
        if return_grad:
            k_x = wv * dextra  # d loss / d cos_own
    else:
        ch64 = ch.astype(np.float64)
        cos = np.empty((S * U, S))
        for lo, hi in chunks:
            cos[lo:hi] = eh_rows(lo, hi)[0].astype(np.float64) @ ch64.T
        cos[np.arange(S * U), spk] = cos_own
        sig = 1.0 / (1.0 + np.exp(-(wv * cos + bv)))
        others = np.where(np.arange(S)[None, :] == spk[:, None], -np.inf, sig)
        kmax = np.argmax(others, axis=1)
        r = np.arange(S * U)
        own = sig[r, spk]
        loss = 1.0 - own + sig[r, kmax]
        if return_grad:
            gs = _pairwise.grad_scale(code, S * U)
            gcos = np.zeros_like(cos)
            gcos[r, kmax] = gs * wv * sig[r, kmax] * (1.0 - sig[r, kmax])
            k_x = -gs * wv * own * (1.0 - own)
            gb = np.zeros((S, d))  # d loss / d ch, over every utterance
            for lo, hi in chunks:
                gb += gcos[lo:hi].T @ eh_rows(lo, hi)[0].astype(np.float64)
    value = _pairwise.reduce_rows(loss, code, dtype, shape=(S, U))
    if not return_grad:
        return value
    # Back through the normalisations and the centroids, a chunk at a time: d loss / d (sum_j e_j) per
    # speaker, g_sum = g_c / U + sum_i g_x / (U - 1), then each row, into the kernel's gradient (softmax: a
    # chunk reads its own rows of it before it writes them) or a new array (contrast).
    out = ga if method == "softmax" else np.empty(e.shape, dtype)
    for lo, hi in chunks:
        s0, s1 = lo // U, hi // U
        eh = eh_rows(lo, hi)[0]
        xh, xi = excl_rows(lo, hi)
        g_eh = ga[lo:hi].astype(np.float64) if method == "softmax" else gcos[lo:hi] @ ch64
        g_eh += k_x[lo:hi, None] * xh
        g_x = _pairwise.normalize_backward(k_x[lo:hi, None] * eh, xh, xi, np.float64)
        g_sum = _pairwise.normalize_backward(gb[s0:s1].astype(np.float64), ch[s0:s1], ci[s0:s1], np.float64)
        g_sum /= U
        g_sum += np.add.reduceat(g_x, np.arange(0, hi - lo, U), axis=0) / (U - 1)
        g_e = _pairwise.normalize_backward(g_eh, eh, ei[lo:hi], np.float64)
        g_e -= g_x / (U - 1)  # c_j^(-i) = (sum_j - e_ji) / (U - 1)
        g_e += g_sum[spk[lo:hi] - s0]
        out[lo:hi] = g_e
    return value, out.reshape(S, U, d)


@api
@_validate.ieee
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
    func = "arcface_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    sc = SPECS[func].check("scale", scale)
    m = SPECS[func].check("margin", margin)
    (e, wt), dtype = _pairwise.embeddings(func, {"embeddings": embeddings, "weight": weight})
    n, c = e.shape[0], wt.shape[0]
    y = _pairwise.int_labels(func, labels, n)
    bad = (y < 0) | (y >= c)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{func}: labels must be class indices in [0, {c}); found labels[{i}] = {int(y[i])}")
    (eh, ei), (wh, wi) = _pairwise.normalize(e), _pairwise.normalize(wt)
    cos_y = _pairwise.rowdot(eh, wh, y)
    sin_y = np.sqrt(np.clip(1.0 - cos_y * cos_y, 0.0, 1.0))
    cm, sm = np.cos(m), np.sin(m)
    arc = cos_y > np.cos(np.pi - m)
    phi = np.where(arc, cos_y * cm - sin_y * sm, cos_y - np.sin(np.pi - m) * m)
    loss, dextra, ga, gb = _sim_ce(eh, wh, sc, None, y, sc * phi, code, return_grad, n)
    value = _pairwise.reduce_rows(loss, code, dtype)
    if not return_grad:
        return value
    dphi = np.where(arc, cm + np.where(sin_y > 0.0, sm * cos_y / sin_y, 0.0), 1.0)
    k = sc * dextra * dphi  # d loss / d cos_y
    # The target logit adds k_i wh[y_i] to d/deh_i and k_i eh_i to d/dwh[y_i]: both formed chunk by chunk.
    same = ga.dtype == dtype
    return value, (
        _pairwise.normalize_backward(ga, eh, ei, dtype, _pairwise.Gather(k, wh, y), ga if same else None),
        _pairwise.normalize_backward(gb, wh, wi, dtype, _pairwise.Scatter(k, eh, y, c), gb if same else None),
    )


@api
@_validate.ieee
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
    func = "kmeans_inertia"
    return_grad = SPECS[func].check("return_grad", return_grad)
    (xa, ca), dtype = _pairwise.embeddings(func, {"x": x, "centers": centers})
    n, k = xa.shape[0], ca.shape[0]
    if k == 0:
        raise ValueError(f"{func}: centers must hold at least one center, got shape {ca.shape}")
    w = None
    if sample_weight is not None:
        w = np.ascontiguousarray(_validate.as_array(sample_weight, "sample_weight"), dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"{func}: sample_weight must have shape ({n},), got {w.shape}")
        if (w < 0).any():
            i = int(np.argmax(w < 0))
            raise ValueError(
                f"{func}: sample_weight must be non-negative; found sample_weight[{i}] = {w[i]!r}"
            )
    d2, labels = _backend.kernels().kmeans(xa, ca, _backend.thread_arg())
    inertia = _validate.scalar(float(np.sum(d2 if w is None else w * d2)), dtype)
    if not return_grad:
        return inertia, labels
    diff = xa.astype(np.float64) - ca[labels].astype(np.float64)
    gx = 2.0 * diff * (1.0 if w is None else w[:, None])
    gc = np.zeros((k, xa.shape[1]))
    np.add.at(gc, labels, -gx)
    return inertia, labels, (gx.astype(dtype), gc.astype(dtype))
