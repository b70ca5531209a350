"""The call path of the pairwise and metric-learning losses: validation, row normalisation, the
reductions they share, and each loss's composition of the backend primitives (the bodies of the public
functions of :mod:`fastloss.metric`). The heavy work (distance and similarity tiles, their fused losses)
happens in the primitives; what is here is O(N d)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fastloss import _backend, _validate
from fastloss._specs import SPECS, Reduction, ReductionName

NORM_EPS = 1e-12  # torch.nn.functional.normalize's default


def as_embeddings(func: str, named: dict[str, Any], ndim: int = 2) -> tuple[list[np.ndarray], np.dtype]:
    """The named arrays as C-contiguous arrays of one compute dtype, each of `ndim` dimensions and the
    same last (feature) dimension."""
    arrays = []
    for name, value in named.items():
        a = _validate.as_array(value, name)
        if a.ndim != ndim:
            want = "(N, d)" if ndim == 2 else "(S, U, d)"
            raise ValueError(f"{func}: {name} must be a {ndim}-D array {want}, got shape {a.shape}")
        arrays.append(a)
    names = list(named)
    for name, a in zip(names[1:], arrays[1:]):
        if a.shape[-1] != arrays[0].shape[-1]:
            raise ValueError(
                f"{func}: {names[0]} and {name} must have the same number of features, "
                f"got shapes {arrays[0].shape} and {a.shape}"
            )
    dtype = _validate.compute_dtype(*arrays)
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrays], dtype


def same_shape(func: str, names: tuple[str, ...], arrays: list[np.ndarray]) -> None:
    for name, a in zip(names[1:], arrays[1:]):
        if a.shape != arrays[0].shape:
            raise ValueError(
                f"{func}: {names[0]} and {name} must have the same shape, got {arrays[0].shape} and {a.shape}"
            )


def int_labels(func: str, labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """Integer labels of shape (n,) as int64."""
    y = _validate.as_array(labels, name)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{func}: {name} must hold integers, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{func}: {name} must have shape ({n},), one per row, got {y.shape}")
    if y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{func}: {name} hold values beyond the int64 range")
    return np.ascontiguousarray(y, dtype=np.int64)


def row_target(func: str, target: Any, n: int, kind: str) -> np.ndarray:
    """A per-row float64 target of shape (n,): kind "unit" (values in [0, 1]) or "pm1" (exactly -1 or +1)."""
    t = _validate.as_array(target, "target")
    if t.shape != (n,):
        raise ValueError(f"{func}: target must have shape ({n},), one per row, got {t.shape}")
    t = np.ascontiguousarray(t, dtype=np.float64)
    if kind == "unit":
        bad = (t < 0.0) | (t > 1.0)  # NaN passes and propagates
        what = "must lie in [0, 1] (1: similar, 0: dissimilar)"
    else:
        bad = ~((t == 1.0) | (t == -1.0))
        what = "must be exactly -1 or +1"
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{func}: target {what}; found target[{i}] = {float(t[i])!r}")
    return t


def grad_scale(code: int, count: int) -> float:
    """The factor that turns gradients of the sum into gradients of the reduction."""
    return 1.0 / count if code == Reduction.MEAN and count > 0 else 1.0


def reduce_rows(loss: np.ndarray, code: int, dtype: np.dtype, count: int | None = None, shape=None) -> Any:
    """Reduce float64 per-row losses: mean (over `count`, default the number of rows), sum or none."""
    if code == Reduction.NONE:
        return loss.astype(dtype, copy=False).reshape(shape if shape is not None else loss.shape)
    total = float(np.sum(loss))
    if code == Reduction.SUM:
        return _validate.scalar(total, dtype)
    count = loss.size if count is None else count
    return _validate.scalar(total / count if count else np.nan, dtype)


# Rows per float64 temporary of the gradient helpers: chunks of about this many bytes, so that a
# backward pass over huge embeddings adds two chunks, not copies of the whole (N, d) matrix.
_CHUNK_BYTES = 4 * 2**20


def _row_chunks(n: int, d: int):
    step = max(1, _CHUNK_BYTES // max(8 * d, 1))
    return ((lo, min(lo + step, n)) for lo in range(0, n, step))


class Gather:
    """The rows k[i] * src[idx[i]] (src[i] without idx) in float64, formed on demand for a slice of rows:
    a gradient term that is never materialised whole (normalize_backward's `plus`)."""

    def __init__(self, k: np.ndarray, src: np.ndarray, idx: np.ndarray | None = None):
        self.k, self.src, self.idx = k, src, idx

    def __getitem__(self, sl: slice) -> np.ndarray:
        rows = self.src[sl] if self.idx is None else self.src[self.idx[sl]]
        return self.k[sl, None] * rows


class Scatter:
    """The rows sum over {i : idx[i] = r} of k[i] * src[i] for r < nrows in float64, formed on demand for a
    slice of rows r (by chunks of the contributing i, in increasing i): the gradient term of a gather."""

    def __init__(self, k: np.ndarray, src: np.ndarray, idx: np.ndarray, nrows: int):
        self.k, self.src, self.idx = k, src, idx
        self.order = np.argsort(idx, kind="stable")
        self.bounds = np.searchsorted(idx[self.order], np.arange(nrows + 1))

    def __getitem__(self, sl: slice) -> np.ndarray:
        lo, hi = sl.start, sl.stop
        out = np.zeros((hi - lo, self.src.shape[1]))
        a, b = int(self.bounds[lo]), int(self.bounds[hi])
        for c0, c1 in _row_chunks(b - a, self.src.shape[1]):
            ii = self.order[a + c0 : a + c1]
            np.add.at(out, self.idx[ii] - lo, self.k[ii, None] * self.src[ii])
        return out


@_validate.ieee
def normalize(x: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x over max(||x||, 1e-12) in x's dtype (into `out` if given), and the float64 factors
    1 / max(||x||, 1e-12). The product is formed in float64 and rounded once, without an (N, d) float64
    temporary."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    inv = 1.0 / np.maximum(norms, NORM_EPS)
    if out is None and x.dtype == np.float64:  # no rounding to do: the plain product
        return x * inv[:, None], inv
    out = np.empty_like(x) if out is None else out
    np.multiply(x, inv[:, None], out=out, dtype=np.float64, casting="unsafe")
    return out, inv


@_validate.ieee
def normalize_backward(
    g: np.ndarray,
    xhat: np.ndarray,
    inv: np.ndarray,
    dtype: np.dtype,
    plus: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """d/dx from d/dxhat = g (+ plus) for xhat = x / max(||x||, eps): (g - xhat (xhat . g)) / ||x|| where
    the norm is above eps, g / eps below (where the map is linear). In float64, by chunks of rows, into
    `out` (which may be g itself) or a new array of `dtype`."""
    n, d = g.shape
    out = np.empty(g.shape, dtype) if out is None else out
    for lo, hi in _row_chunks(n, d):
        gc = g[lo:hi].astype(np.float64)
        if plus is not None:
            gc += plus[lo:hi]
        xh = xhat[lo:hi].astype(np.float64)
        radial = np.einsum("ij,ij->i", xh, gc)
        radial = np.where(inv[lo:hi] < 1.0 / NORM_EPS, radial, 0.0)
        xh *= radial[:, None]
        gc -= xh
        gc *= inv[lo:hi, None]
        out[lo:hi] = gc
    return out


def rowdot(a: np.ndarray, b: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Row-wise dot products a_i . b_i (a_i . b_{idx_i} with idx, gathering chunk by chunk) in float64."""
    if idx is None:
        return np.einsum("ij,ij->i", a, b, dtype=np.float64)
    out = np.empty(a.shape[0])
    for lo, hi in _row_chunks(*a.shape):
        out[lo:hi] = np.einsum("ij,ij->i", a[lo:hi], b[idx[lo:hi]], dtype=np.float64)
    return out


def _reduction(func: str, reduction: object, return_grad: object) -> tuple[Reduction, bool]:
    spec = SPECS[func]
    return spec.check("reduction", reduction), spec.check("return_grad", return_grad)


def pairwise_distances(x: ArrayLike, y: ArrayLike | None = None, *, metric: str = "euclidean") -> np.ndarray:
    """The body of :func:`fastloss.pairwise_distances`."""
    SPECS["pairwise_distances"].check("metric", metric)
    named = {"x": x} if y is None else {"x": x, "y": y}
    arrays, _ = as_embeddings("pairwise_distances", named)
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


def contrastive_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.contrastive_loss`."""
    func = "contrastive_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)
    (a, b), dtype = as_embeddings(func, {"x1": x1, "x2": x2})
    same_shape(func, ("x1", "x2"), [a, b])
    t = row_target(func, target, a.shape[0], "unit")
    return _rowwise(func, [a, b], t, {"margin": m}, code, return_grad, dtype)


def _rowwise(func, arrays, target, params, code, return_grad, dtype) -> Any:
    n = arrays[0].shape[0]
    loss, grads = _backend.kernels().rowwise(
        SPECS[func].kernels[0].key,
        arrays,
        target,
        _validate.fits(func, dtype, params, list(params.values())),
        return_grad,
        grad_scale(code, n),
        _backend.thread_arg(),
    )
    value = reduce_rows(loss, code, dtype)
    return (value, tuple(grads)) if return_grad else value


@_validate.ieee
def pairwise_contrastive_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.pairwise_contrastive_loss`."""
    func = "pairwise_contrastive_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)
    (x,), dtype = as_embeddings(func, {"embeddings": embeddings})
    n = x.shape[0]
    y = int_labels(func, labels, n)
    pairs = n * (n - 1) // 2
    value, grad = _backend.kernels().pairwise_contrastive(
        x,
        y,
        *_validate.fits(func, dtype, ("margin",), [m]),
        return_grad,
        grad_scale(code, pairs),
        _backend.thread_arg(),
    )
    if code == Reduction.MEAN:
        value = value / pairs if pairs else np.nan
    value = _validate.scalar(value, dtype)
    return (value, grad) if return_grad else value


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
    """The body of :func:`fastloss.triplet_margin_loss`."""
    func = "triplet_margin_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)  # torch refuses margin <= 0 too
    pn = SPECS[func].check("p", p)
    e = SPECS[func].check("eps", eps)
    sw = SPECS[func].check("swap", swap)
    arrays, dtype = as_embeddings(func, {"anchor": anchor, "positive": positive, "negative": negative})
    same_shape(func, ("anchor", "positive", "negative"), arrays)
    return _rowwise(
        func,
        arrays,
        None,
        {"margin": m, "p": pn, "eps": e, "swap": float(sw)},
        code,
        return_grad,
        dtype,
    )


def cosine_embedding_loss(
    x1: ArrayLike,
    x2: ArrayLike,
    target: ArrayLike,
    *,
    margin: float = 0.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.cosine_embedding_loss`."""
    func = "cosine_embedding_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)
    (a, b), dtype = as_embeddings(func, {"x1": x1, "x2": x2})
    same_shape(func, ("x1", "x2"), [a, b])
    t = row_target(func, target, a.shape[0], "pm1")
    return _rowwise(func, [a, b], t, {"margin": m}, code, return_grad, dtype)


@_validate.ieee
def batch_hard_triplet_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.batch_hard_triplet_loss`."""
    func = "batch_hard_triplet_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    m = SPECS[func].check("margin", margin)
    (x,), dtype = as_embeddings(func, {"embeddings": embeddings})
    n = x.shape[0]
    y = int_labels(func, labels, n)
    dp, ip, dn, ineg = _backend.kernels().batch_hard(x, y, _backend.thread_arg())
    valid = (ip >= 0) & (ineg >= 0)
    loss = np.where(valid, np.maximum(dp - dn + m, 0.0), 0.0)
    loss = np.where(valid & np.isnan(dp - dn), np.nan, loss)  # np.maximum keeps NaN; be explicit
    count = int(np.count_nonzero(valid))
    value = reduce_rows(loss, code, dtype, count=count)
    if not return_grad:
        return value
    scale = grad_scale(code, count)
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


def _sim_ce(a, b, scale, target, exclude, extra, code, return_grad, count, row_scale=None):
    return _backend.kernels().sim_ce(
        a,
        b,
        scale,
        target,
        exclude,
        extra,
        return_grad,
        grad_scale(code, count),
        _backend.thread_arg(),
        row_scale,
    )


def info_nce(
    query: ArrayLike,
    positive: ArrayLike,
    negatives: ArrayLike | None = None,
    *,
    temperature: float = 0.1,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.info_nce`."""
    func = "info_nce"
    code, return_grad = _reduction(func, reduction, return_grad)
    s = 1.0 / SPECS[func].check("temperature", temperature)
    named = {"query": query, "positive": positive}
    if negatives is not None:
        named["negatives"] = negatives
    arrays, dtype = as_embeddings(func, named)
    same_shape(func, ("query", "positive"), arrays[:2])
    n = arrays[0].shape[0]
    (qh, qi), (ph, pi) = normalize(arrays[0]), normalize(arrays[1])
    if negatives is None:
        target = np.arange(n, dtype=np.int64)
        loss, _, ga, gb = _sim_ce(qh, ph, s, target, None, None, code, return_grad, n)
        value = reduce_rows(loss, code, dtype)
        if not return_grad:
            return value
        return value, (
            normalize_backward(ga, qh, qi, dtype),
            normalize_backward(gb, ph, pi, dtype),
        )
    nh, ni = normalize(arrays[2])
    extra = s * rowdot(qh, ph)
    loss, dextra, ga, gb = _sim_ce(qh, nh, s, None, None, extra, code, return_grad, n)
    value = reduce_rows(loss, code, dtype)
    if not return_grad:
        return value
    k = (s * dextra)[:, None]
    gq = ga.astype(np.float64) + k * ph
    gp = k * qh
    return value, (
        normalize_backward(gq, qh, qi, dtype),
        normalize_backward(gp, ph, pi, dtype),
        normalize_backward(gb, nh, ni, dtype),
    )


def nt_xent(
    z1: ArrayLike,
    z2: ArrayLike,
    *,
    temperature: float = 0.5,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.nt_xent`."""
    func = "nt_xent"
    code, return_grad = _reduction(func, reduction, return_grad)
    s = 1.0 / SPECS[func].check("temperature", temperature)
    (a, b), dtype = as_embeddings(func, {"z1": z1, "z2": z2})
    same_shape(func, ("z1", "z2"), [a, b])
    n = a.shape[0]
    zh = np.empty((2 * n, a.shape[1]), a.dtype)  # normalize(concat(z1, z2)), without the concatenation
    zi = np.concatenate([normalize(a, zh[:n])[1], normalize(b, zh[n:])[1]])
    k = np.arange(2 * n, dtype=np.int64)
    loss, _, ga, gb = _sim_ce(zh, zh, s, (k + n) % max(2 * n, 1), k, None, code, return_grad, 2 * n)
    value = reduce_rows(loss, code, dtype)
    if not return_grad:
        return value
    # zh is both sides of the similarity: the kernel adds b's gradient into ga (gb is None).
    g = normalize_backward(ga, zh, zi, dtype, out=ga if ga.dtype == dtype else None)
    return value, (g[:n], g[n:])


@_validate.ieee
def multiple_negatives_ranking_loss(
    anchors: ArrayLike,
    positives: ArrayLike,
    *,
    scale: float = 20.0,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.multiple_negatives_ranking_loss`."""
    func = "multiple_negatives_ranking_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    sc = SPECS[func].check("scale", scale)
    (a, p), dtype = as_embeddings(func, {"anchors": anchors, "positives": positives})
    n, m = a.shape[0], p.shape[0]
    if m < n:
        raise ValueError(
            f"{func}: positives must have at least as many rows as anchors (extra rows are hard negatives), "
            f"got shapes {a.shape} and {p.shape}"
        )
    (ah, ai), (ph, pi) = normalize(a), normalize(p)
    loss, _, ga, gb = _sim_ce(ah, ph, sc, np.arange(n, dtype=np.int64), None, None, code, return_grad, n)
    value = reduce_rows(loss, code, dtype)
    if not return_grad:
        return value
    return value, (
        normalize_backward(ga, ah, ai, dtype),
        normalize_backward(gb, ph, pi, dtype),
    )


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
    """The body of :func:`fastloss.ge2e_loss`."""
    func = "ge2e_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    wv = SPECS[func].check("w", w)
    bv = SPECS[func].check("b", b)
    method = SPECS[func].check("method", method)
    (e3,), dtype = as_embeddings(func, {"embeddings": embeddings}, ndim=3)
    S, U, d = e3.shape
    if S < 2 or U < 2:
        raise ValueError(f"{func}: needs at least 2 speakers and 2 utterances each, got shape {e3.shape}")
    e = e3.reshape(S * U, d)
    spk = np.repeat(np.arange(S, dtype=np.int64), U)
    # Row-local work goes by chunks of whole speakers (about _CHUNK_BYTES of float64 rows): the
    # normalised embeddings, a speaker's sum, its leave-one-out centroids and every float64 gradient term
    # exist a chunk at a time (computed again in a later pass when there are several chunks). The kernel
    # reads the embeddings with their norms as row scales. What stays whole is the centroids and the
    # kernel's gradient, which becomes the output.
    step = U * max(1, _CHUNK_BYTES // max(8 * d * U, 1))
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
        return cached("eh", lambda: normalize(e[lo:hi]))

    def speaker_sums(lo: int, hi: int) -> np.ndarray:  # sum_i e_ji of the chunk's speakers, float64
        return cached("sums", lambda: e[lo:hi].reshape(-1, U, d).sum(axis=1, dtype=np.float64))

    def excl_rows(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:  # normalised c_j^(-i), 1 / norms
        def make():
            sums = speaker_sums(lo, hi)
            return normalize(((sums[spk[lo:hi] - lo // U] - e[lo:hi]) / (U - 1)).astype(dtype))

        return cached("x", make)

    ch, ci, ei = np.empty((S, d), dtype), np.empty(S), np.empty(S * U)  # centroids, 1 / norms
    cos_own = np.empty(S * U)
    for lo, hi in chunks:
        s0, s1 = lo // U, hi // U
        ci[s0:s1] = normalize((speaker_sums(lo, hi) / U).astype(dtype), out=ch[s0:s1])[1]
        eh, ei[lo:hi] = eh_rows(lo, hi)
        cos_own[lo:hi] = rowdot(eh, excl_rows(lo, hi)[0])
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
            gs = grad_scale(code, S * U)
            gcos = np.zeros_like(cos)
            gcos[r, kmax] = gs * wv * sig[r, kmax] * (1.0 - sig[r, kmax])
            k_x = -gs * wv * own * (1.0 - own)
            gb = np.zeros((S, d))  # d loss / d ch, over every utterance
            for lo, hi in chunks:
                gb += gcos[lo:hi].T @ eh_rows(lo, hi)[0].astype(np.float64)
    value = reduce_rows(loss, code, dtype, shape=(S, U))
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
        g_x = normalize_backward(k_x[lo:hi, None] * eh, xh, xi, np.float64)
        g_sum = normalize_backward(gb[s0:s1].astype(np.float64), ch[s0:s1], ci[s0:s1], np.float64)
        g_sum /= U
        g_sum += np.add.reduceat(g_x, np.arange(0, hi - lo, U), axis=0) / (U - 1)
        g_e = normalize_backward(g_eh, eh, ei[lo:hi], np.float64)
        g_e -= g_x / (U - 1)  # c_j^(-i) = (sum_j - e_ji) / (U - 1)
        g_e += g_sum[spk[lo:hi] - s0]
        out[lo:hi] = g_e
    return value, out.reshape(S, U, d)


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
    """The body of :func:`fastloss.arcface_loss`."""
    func = "arcface_loss"
    code, return_grad = _reduction(func, reduction, return_grad)
    sc = SPECS[func].check("scale", scale)
    m = SPECS[func].check("margin", margin)
    (e, wt), dtype = as_embeddings(func, {"embeddings": embeddings, "weight": weight})
    n, c = e.shape[0], wt.shape[0]
    y = int_labels(func, labels, n)
    bad = (y < 0) | (y >= c)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{func}: labels must be class indices in [0, {c}); found labels[{i}] = {int(y[i])}")
    (eh, ei), (wh, wi) = normalize(e), normalize(wt)
    cos_y = rowdot(eh, wh, y)
    sin_y = np.sqrt(np.clip(1.0 - cos_y * cos_y, 0.0, 1.0))
    cm, sm = np.cos(m), np.sin(m)
    arc = cos_y > np.cos(np.pi - m)
    phi = np.where(arc, cos_y * cm - sin_y * sm, cos_y - np.sin(np.pi - m) * m)
    loss, dextra, ga, gb = _sim_ce(eh, wh, sc, None, y, sc * phi, code, return_grad, n)
    value = reduce_rows(loss, code, dtype)
    if not return_grad:
        return value
    dphi = np.where(arc, cm + np.where(sin_y > 0.0, sm * cos_y / sin_y, 0.0), 1.0)
    k = sc * dextra * dphi  # d loss / d cos_y
    # The target logit adds k_i wh[y_i] to d/deh_i and k_i eh_i to d/dwh[y_i]: both formed chunk by chunk.
    same = ga.dtype == dtype
    return value, (
        normalize_backward(ga, eh, ei, dtype, Gather(k, wh, y), ga if same else None),
        normalize_backward(gb, wh, wi, dtype, Scatter(k, eh, y, c), gb if same else None),
    )


@_validate.ieee
def kmeans_inertia(
    x: ArrayLike,
    centers: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.kmeans_inertia`."""
    func = "kmeans_inertia"
    return_grad = SPECS[func].check("return_grad", return_grad)
    (xa, ca), dtype = as_embeddings(func, {"x": x, "centers": centers})
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
