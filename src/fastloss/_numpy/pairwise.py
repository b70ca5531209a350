"""NumPy twins of the pairwise / metric-learning kernels (csrc/fastloss/pairwise.hpp), same signatures as
the primitives of fastloss._core: pairwise_distances, pairwise_contrastive, batch_hard, kmeans, sim_ce and
rowwise.

Everything is computed in float64. An (N, M) matrix is never built whole: rows of the first argument are
processed in chunks of ``_ROWS`` (``_CE_ROWS`` for sim_ce), and the (rows, M, d) difference tensors behind
the distances are cut further so that no temporary exceeds about ``_BUDGET`` float64 values (32 MiB).
Distances come from exact differences x_i - y_j, never from |x|^2 + |y|^2 - 2 x.y (which cancels on
near-identical rows). NaN propagates; ties go to the first index. ``num_threads`` is accepted and ignored.
"""

from __future__ import annotations

import numpy as np

from fastloss._numpy.classwise import _lse_parts, _softmax
from fastloss._specs import SPECS

Arr = np.ndarray
_ROWS = 256  # rows of the first argument per chunk
_CE_ROWS = 512  # rows of `a` per chunk in sim_ce
_BUDGET = 1 << 22  # float64 values per difference temporary (32 MiB)
METRICS = SPECS["pairwise_distances"].by_name["metric"].choices
ROWWISE_KERNELS = ("contrastive_loss", "triplet_margin_loss", "cosine_embedding_loss")
_COS_EPS = 1e-12  # torch.nn.functional.cosine_embedding_loss's EPSILON


def _f64(x: Arr) -> Arr:
    """float64 version of x (x itself when already float64: callers only read it)."""
    return np.asarray(x, dtype=np.float64)


def _steps(m: int, d: int) -> tuple[int, int]:
    """(rows, d-block) per step so that a (rows, m, d-block) temporary holds about _BUDGET values."""
    if m * d <= _BUDGET:
        return max(1, _BUDGET // max(1, m * d)), max(1, d)
    return 1, max(1, _BUDGET // max(1, m))


def _diff_sum(xc: Arr, y: Arr, kind: str) -> Arr:
    """(c, m): sum_k (xc_ik - y_jk)^2 (kind "sq") or sum_k |xc_ik - y_jk| (kind "abs")."""
    c, d = xc.shape
    m = y.shape[0]
    out = np.zeros((c, m))
    if c == 0 or m == 0 or d == 0:
        return out
    rs, ds = _steps(m, d)
    for r in range(0, c, rs):
        for k in range(0, d, ds):
            diff = xc[r : r + rs, None, k : k + ds] - y[None, :, k : k + ds]
            if kind == "sq":
                out[r : r + rs] += np.einsum("ijk,ijk->ij", diff, diff)
            else:
                out[r : r + rs] += np.abs(diff, out=diff).sum(axis=2)
    return out


def _pull(xc: Arr, y: Arr, w: Arr) -> Arr:
    """(c, d): sum_j w_ij (xc_i - y_j), from exact differences."""
    c, d = xc.shape
    m = y.shape[0]
    out = np.zeros((c, d))
    if c == 0 or m == 0 or d == 0:
        return out
    rs, ds = _steps(m, d)
    for r in range(0, c, rs):
        for k in range(0, d, ds):
            diff = xc[r : r + rs, None, k : k + ds] - y[None, :, k : k + ds]
            out[r : r + rs, k : k + ds] = np.einsum("ijk,ij->ik", diff, w[r : r + rs])
    return out


def pairwise_distances(x: Arr, y: Arr, metric: str, num_threads: int) -> Arr:
    """(N, M) distances between the rows of x and y, of x's dtype.

    euclidean sqrt(sum (x - y)^2), sqeuclidean, manhattan sum |x - y| (all from exact differences);
    cosine 1 - clip(x.y / sqrt(|x|^2 |y|^2), -1, 1), nan for a zero vector (0/0), as SciPy's cdist.
    """
    if metric not in METRICS:
        raise ValueError(f"pairwise_distances: unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    xf, yf = _f64(x), _f64(y)
    n, m = xf.shape[0], yf.shape[0]
    out = np.empty((n, m), dtype=x.dtype)
    with np.errstate(all="ignore"):
        if metric == "cosine":
            ny2 = np.einsum("ij,ij->i", yf, yf)
        for r0 in range(0, n, _ROWS):
            xc = xf[r0 : r0 + _ROWS]
            if metric == "cosine":
                nx2 = np.einsum("ij,ij->i", xc, xc)
                ratio = (xc @ yf.T) / np.sqrt(nx2[:, None] * ny2[None, :])
                block = 1.0 - np.clip(ratio, -1.0, 1.0)  # np.clip keeps nan
            elif metric == "manhattan":
                block = _diff_sum(xc, yf, "abs")
            else:
                block = _diff_sum(xc, yf, "sq")
                if metric == "euclidean":
                    np.sqrt(block, out=block)
            out[r0 : r0 + _ROWS] = block
    return out


def pairwise_contrastive(
    x: Arr, labels: Arr, margin: float, want_grad: bool, grad_scale: float, num_threads: int
) -> tuple[float, Arr | None]:
    """Hadsell contrastive loss summed over all pairs i < j (similar when labels are equal).

    l_ij = 0.5 d_ij^2 (similar) or 0.5 max(0, margin - d_ij)^2 (dissimilar), d_ij Euclidean. The gradient
    (N, d) of x's dtype is grad_scale * sum_{j != i} c_ij (x_i - x_j) with c_ij = 1 (similar),
    -(margin - d)/d for a dissimilar pair with 0 < d < margin, else 0; c_ij = nan when d_ij is nan.
    """
    xf = _f64(x)
    lab = np.asarray(labels)
    n = xf.shape[0]
    margin = float(margin)
    total = 0.0
    grad = np.zeros(xf.shape) if want_grad else None
    with np.errstate(all="ignore"):
        for r0 in range(0, n, _ROWS):
            r1 = min(n, r0 + _ROWS)
            xc = xf[r0:r1]
            sq = _diff_sum(xc, xf, "sq")
            dist = np.sqrt(sq)
            same = lab[r0:r1, None] == lab[None, :]
            hinge = np.maximum(margin - dist, 0.0)  # np.maximum propagates nan
            loss = np.where(same, 0.5 * sq, 0.5 * hinge * hinge)
            upper = np.arange(n)[None, :] > np.arange(r0, r1)[:, None]
            total += float(np.sum(loss[upper]))
            if want_grad:
                inside = (dist > 0.0) & (dist < margin)
                c_dis = np.where(inside, -(margin - dist) / np.where(inside, dist, 1.0), 0.0)
                c = np.where(np.isnan(dist), np.nan, np.where(same, 1.0, c_dis))
                c[np.arange(r1 - r0), np.arange(r0, r1)] = 0.0  # no self pair
                grad[r0:r1] = _pull(xc, xf, c)
    if grad is not None:
        grad = (grad * float(grad_scale)).astype(x.dtype)
    return total, grad


def batch_hard(x: Arr, labels: Arr, num_threads: int) -> tuple[Arr, Arr, Arr, Arr]:
    """For each anchor i: the farthest positive (j != i, same label) and the nearest negative (other label).

    Returns (d_pos float64, i_pos int64, d_neg float64, i_neg int64), Euclidean distances; the first index
    at a tie; nan and -1 when the anchor has no such j.
    """
    xf = _f64(x)
    lab = np.asarray(labels)
    n = xf.shape[0]
    d_pos = np.full(n, np.nan)
    d_neg = np.full(n, np.nan)
    i_pos = np.full(n, -1, dtype=np.int64)
    i_neg = np.full(n, -1, dtype=np.int64)
    with np.errstate(all="ignore"):
        for r0 in range(0, n, _ROWS):
            r1 = min(n, r0 + _ROWS)
            rows = np.arange(r1 - r0)
            dist = np.sqrt(_diff_sum(xf[r0:r1], xf, "sq"))
            same = lab[r0:r1, None] == lab[None, :]
            pos = same.copy()
            pos[rows, np.arange(r0, r1)] = False
            neg = ~same
            # NaN handling: non-candidates are replaced (np.where also replaces a NaN there) by -inf for the
            # max and +inf for the min, candidates keep their distance, NaN included. np.argmax/np.argmin
            # return the first NaN when there is one, so a NaN candidate distance gives d = nan and the
            # index of the first NaN candidate instead of being skipped (np.nanmax semantics are not used).
            # Candidate distances are >= 0, +inf or nan, never -inf, so the max always lands on a candidate.
            dp = np.where(pos, dist, -np.inf)
            jp = np.argmax(dp, axis=1)
            has = pos.any(axis=1)
            d_pos[r0:r1] = np.where(has, dp[rows, jp], np.nan)
            i_pos[r0:r1] = np.where(has, jp, -1)
            dn = np.where(neg, dist, np.inf)
            jn = np.argmin(dn, axis=1)
            # the min is +inf and every candidate is +inf: argmin may pick an earlier non-candidate;
            # the answer is then the first candidate
            jn = np.where(neg[rows, jn], jn, np.argmax(neg, axis=1))
            has = neg.any(axis=1)
            d_neg[r0:r1] = np.where(has, dn[rows, jn], np.nan)
            i_neg[r0:r1] = np.where(has, jn, -1)
    return d_pos, i_pos, d_neg, i_neg


def kmeans(x: Arr, centers: Arr, num_threads: int) -> tuple[Arr, Arr]:
    """(min_k ||x_i - c_k||^2 float64, argmin int64) per row of x; the lowest index at a tie.

    A NaN distance wins (np.argmin returns the first NaN), so a NaN row or center propagates.
    """
    xf, cf = _f64(x), _f64(centers)
    n = xf.shape[0]
    best = np.empty(n)
    idx = np.empty(n, dtype=np.int64)
    with np.errstate(all="ignore"):
        for r0 in range(0, n, _ROWS):
            r1 = min(n, r0 + _ROWS)
            sq = _diff_sum(xf[r0:r1], cf, "sq")
            k = np.argmin(sq, axis=1)
            idx[r0:r1] = k
            best[r0:r1] = sq[np.arange(r1 - r0), k]
    return best, idx


def sim_ce(
    a: Arr,
    b: Arr,
    scale: float,
    target: Arr | None,
    exclude: Arr | None,
    extra: Arr | None,
    want_grad: bool,
    grad_scale: float,
    num_threads: int,
    row_scale: Arr | None = None,
) -> tuple[Arr, Arr | None, Arr | None, Arr | None]:
    """Cross-entropy over similarity logits: row i's logits are scale * a_i . b_j for j != exclude[i],
    plus extra[i] (unscaled) when extra is given; target[i] in [0, M) or -1 (the extra logit; target None
    means -1 everywhere). loss[i] = logsumexp(row) - target logit. With row_scale, row i of a is
    row_scale[i] a_i throughout, and grad_a is the gradient of those scaled rows.

    Returns (loss, dextra, grad_a, grad_b), the last three None without want_grad (dextra also when extra
    is None), gradients of grad_scale * sum_i loss[i]. When a is b (one matrix), grad_a holds the whole
    gradient, b's part added, and grad_b is None (as the compiled kernel).
    """
    af, bf = _f64(a), _f64(b)
    if row_scale is not None:
        if a is b:
            raise ValueError("sim_ce: row_scale needs a and b to be different arrays")
        rs = np.asarray(row_scale, dtype=np.float64)
        if rs.shape != (af.shape[0],):
            raise ValueError("sim_ce: row_scale has the wrong length")
        af = af * rs[:, None]
    n, d = af.shape
    m = bf.shape[0]
    scale, grad_scale = float(scale), float(grad_scale)
    ext = None if extra is None else _f64(extra)
    tgt = np.full(n, -1, dtype=np.int64) if target is None else np.asarray(target, dtype=np.int64)
    exc = None if exclude is None else np.asarray(exclude, dtype=np.int64)
    if ext is None and n and (m == 0 or np.any(tgt == -1)):
        raise ValueError("sim_ce: the extra logit is required when M == 0 or a target is -1")
    if n and (np.any(tgt < -1) or np.any(tgt >= m)):
        raise ValueError(f"sim_ce: targets must lie in [-1, {m})")
    if exc is not None and n and np.any(exc >= m):
        raise ValueError(f"sim_ce: exclude must be < {m}")
    width = m + (ext is not None)
    col = np.where(tgt >= 0, tgt, m)  # the extra logit is column m
    loss = np.empty(n)
    dextra = np.empty(n) if (want_grad and ext is not None) else None
    grad_a = np.empty((n, d)) if want_grad else None
    grad_b = np.zeros((m, d)) if want_grad else None
    with np.errstate(all="ignore"):
        for r0 in range(0, n, _CE_ROWS):
            r1 = min(n, r0 + _CE_ROWS)
            rows = np.arange(r1 - r0)
            logits = np.empty((r1 - r0, width))
            logits[:, :m] = scale * (af[r0:r1] @ bf.T)
            if ext is not None:
                logits[:, m] = ext[r0:r1]
            if exc is not None:
                e = exc[r0:r1]
                hit = e >= 0
                logits[rows[hit], e[hit]] = -np.inf  # probability 0
            shift, log_sum = _lse_parts(logits)
            c = col[r0:r1]
            loss[r0:r1] = (shift - logits[rows, c]) + log_sum  # lse - x_t without cancellation
            if want_grad:
                g = _softmax(logits, shift)
                g[rows, c] -= 1.0
                gm = g[:, :m]
                grad_a[r0:r1] = (grad_scale * scale) * (gm @ bf)
                grad_b += gm.T @ af[r0:r1]
                if dextra is not None:
                    dextra[r0:r1] = grad_scale * g[:, m]
    if not want_grad:
        return loss, None, None, None
    grad_b *= grad_scale * scale
    if a is b:
        return loss, dextra, (grad_a + grad_b).astype(a.dtype), None
    return loss, dextra, grad_a.astype(a.dtype), grad_b.astype(b.dtype)


def _hinge_slope(z: Arr) -> Arr:
    """d max(z, 0) / dz: 1 for z > 0, 0 for z <= 0 (the subgradient at the kink), nan for nan."""
    return np.where(np.isnan(z), np.nan, (z > 0.0).astype(np.float64))


def _pnorm(v: Arr, p: float) -> Arr:
    """||v_i||_p per row, as m (sum_k (|v_k| / m)^p)^(1/p) with m = max_k |v_k|: no power over- or
    underflows, so a huge p gives the max norm (its limit) where torch.norm's unscaled sum is inf or 0."""
    if p == 2.0:
        return np.sqrt(np.einsum("ij,ij->i", v, v))
    av = np.abs(v)
    if p == 1.0:
        return av.sum(axis=1)
    if np.isinf(p):
        return av.max(axis=1, initial=0.0)
    m = av.max(axis=1, initial=0.0)  # NaN propagates
    ok = (m > 0.0) & (m < np.inf)
    scale = np.where(ok, m, 1.0)
    return np.where(ok, scale * np.sum((av / scale[:, None]) ** p, axis=1) ** (1.0 / p), m)


def _pnorm_grad(v: Arr, norm: Arr, p: float) -> Arr:
    """d ||v||_p / dv = sign(v) |v|^(p-1) / ||v||^(p-1), 0 where ||v|| == 0 (and where v_k == 0)."""
    nz = (norm != 0.0)[:, None]
    safe = np.where(norm != 0.0, norm, 1.0)[:, None]
    if p == 2.0:
        return np.where(nz, v / safe, 0.0)
    if p == 1.0:
        return np.sign(v)
    if np.isinf(p):  # torch: the gradient is shared by the entries at the max
        at_max = (np.abs(v) == norm[:, None]) | np.isnan(v)
        count = np.maximum(at_max.sum(axis=1, keepdims=True), 1)
        return np.where(nz, np.sign(v) * at_max / count, 0.0)
    ratio = np.abs(v) / safe  # in [0, 1]: (|v_k| / ||v||)^(p-1) avoids over/underflow of |v_k|^(p-1)
    g = np.sign(v) * np.where(v == 0.0, 0.0, ratio ** (p - 1.0))
    return np.where(nz, g, 0.0)


def _rowwise_contrastive(xs, t, params, want_grad):
    x1, x2 = xs
    margin = float(params[0])
    diff = x1 - x2
    sq = np.einsum("ij,ij->i", diff, diff)
    dist = np.sqrt(sq)
    hinge = np.maximum(margin - dist, 0.0)
    loss = 0.5 * (t * sq + (1.0 - t) * hinge * hinge)
    if not want_grad:
        return loss, None
    inside = (dist > 0.0) & (dist < margin)
    pull = np.where(inside, (1.0 - t) * (margin - dist) / np.where(inside, dist, 1.0), 0.0)
    coef = np.where(np.isnan(dist), np.nan, t - pull)
    g1 = coef[:, None] * diff
    return loss, (g1, -g1)


def _rowwise_triplet(xs, params, want_grad):
    a, p, n = xs
    margin, p_norm, eps, swap = (float(q) for q in params[:4])
    v_ap = a - p + eps
    v_an = a - n + eps
    d_ap = _pnorm(v_ap, p_norm)
    d_an = _pnorm(v_an, p_norm)
    use_pn = np.zeros(a.shape[0], dtype=bool)
    if swap != 0.0:
        v_pn = p - n + eps
        d_pn = _pnorm(v_pn, p_norm)
        use_pn = d_pn < d_an  # a tie keeps dist(a, n)
        d_neg = np.minimum(d_an, d_pn)  # np.minimum propagates nan, as torch.min
    else:
        d_neg = d_an
    z = margin + d_ap - d_neg  # torch's order of operations
    loss = np.maximum(z, 0.0)
    if not want_grad:
        return loss, None
    # torch's clamp_min backward: slope 1 where z > 0 and 0 elsewhere, a NaN z (inf - inf at 1e300) too
    h = (z > 0.0).astype(np.float64)[:, None]
    g_ap = _pnorm_grad(v_ap, d_ap, p_norm)
    g_an = _pnorm_grad(v_an, d_an, p_norm)
    if swap != 0.0:
        g_pn = _pnorm_grad(v_pn, d_pn, p_norm)
        sw = use_pn[:, None]
        g_neg_a = np.where(sw, 0.0, g_an)  # d d_neg / da
        g_neg_p = np.where(sw, g_pn, 0.0)  # d d_neg / dp
        g_neg_n = -np.where(sw, g_pn, g_an)  # d d_neg / dn
    else:
        g_neg_a, g_neg_p, g_neg_n = g_an, 0.0, -g_an
    return loss, (h * (g_ap - g_neg_a), h * (-g_ap - g_neg_p), h * -g_neg_n)


def _rowwise_cosine(xs, t, params, want_grad):
    x1, x2 = xs
    margin = float(params[0])
    s = np.einsum("ij,ij->i", x1, x2)
    m1 = np.einsum("ij,ij->i", x1, x1) + _COS_EPS
    m2 = np.einsum("ij,ij->i", x2, x2) + _COS_EPS
    den = np.sqrt(m1 * m2)
    cos = s / den
    pos, neg = t == 1.0, t == -1.0
    z = cos - margin
    loss = np.where(pos, 1.0 - cos, np.where(neg, np.maximum(z, 0.0), 0.0))
    if not want_grad:
        return loss, None
    # d cos / dx1 = x2 / den - cos x1 / |x1|^2_eps, and symmetrically for x2
    dc1 = x2 / den[:, None] - (cos / m1)[:, None] * x1
    dc2 = x1 / den[:, None] - (cos / m2)[:, None] * x2
    k = np.where(pos, -1.0, np.where(neg, _hinge_slope(z), 0.0))[:, None]  # d loss / d cos
    return loss, (k * dc1, k * dc2)


def rowwise(
    kernel: str,
    inputs: list[Arr],
    target: Arr | None,
    params: list[float],
    want_grad: bool,
    grad_scale: float,
    num_threads: int,
) -> tuple[Arr, tuple[Arr, ...] | None]:
    """Row-paired losses loss[i] = f(inputs[0][i], inputs[1][i], ...), float64 (N,).

    kernel "contrastive_loss" ([x1, x2], target in [0, 1], params [margin]), "triplet_margin_loss"
    ([a, p, n], params [margin, p, eps, swap]: torch.nn.functional.triplet_margin_loss),
    "cosine_embedding_loss" ([x1, x2],
    target +-1, params [margin]: torch.nn.functional.cosine_embedding_loss). With want_grad, grads is one
    array per input, grad_scale * d loss[i] / d input row i, of that input's dtype.
    """
    xs = [_f64(x) for x in inputs]
    t = None if target is None else _f64(target)
    with np.errstate(all="ignore"):
        if kernel == "contrastive_loss":
            loss, grads = _rowwise_contrastive(xs, t, params, want_grad)
        elif kernel == "triplet_margin_loss":
            loss, grads = _rowwise_triplet(xs, params, want_grad)
        elif kernel == "cosine_embedding_loss":
            loss, grads = _rowwise_cosine(xs, t, params, want_grad)
        else:
            raise ValueError(f"rowwise: unknown kernel {kernel!r}; valid: {', '.join(ROWWISE_KERNELS)}")
        if grads is not None:
            gs = float(grad_scale)
            grads = tuple((gs * g).astype(x.dtype) for g, x in zip(grads, inputs))
    return loss, grads
