"""NumPy twins of the class-wise kernels (csrc/fastloss/classwise.hpp), same signature as
fastloss._core.classwise. Scores arrive flat with layout (outer, classes, inner)."""

from __future__ import annotations

import numpy as np

Arr = np.ndarray
_INDEX = {
    "cross_entropy",
    "nll_loss",
    "softmax_focal_loss",
    "poly1_cross_entropy",
    "multiclass_hinge_ww1",
    "multiclass_hinge_ww2",
    "multiclass_hinge_cs1",
    "multiclass_hinge_cs2",
}
_MEAN_BY_POSITION = _INDEX - {"cross_entropy", "nll_loss"}
_PROB = {"cross_entropy_prob"}
_MAPS = {"softmax", "log_softmax", "logsumexp"}
KERNELS = sorted(_INDEX | _PROB | _MAPS)


def _rows(x: Arr, outer: int, classes: int, inner: int) -> Arr:
    """(positions, classes) float64 view-or-copy of a flat (outer, classes, inner) array."""
    return np.moveaxis(x.astype(np.float64).reshape(outer, classes, inner), 1, 2).reshape(-1, classes)


def _unrows(r: Arr, outer: int, classes: int, inner: int, dtype) -> Arr:
    return np.moveaxis(r.reshape(outer, inner, classes), 2, 1).reshape(-1).astype(dtype)


def _lse_parts(x: Arr) -> tuple[Arr, Arr]:
    """logsumexp of each row as shift + log_sum: shift is the row max (when finite) and
    log_sum = log1p(sum of the other rows' exp(x - max) + copies of the max - 1), which keeps the small
    log-probabilities of a confident row accurate (SciPy's logsumexp does the same)."""
    m = np.max(x, axis=1)
    finite = np.isfinite(m)
    shift = np.where(finite, m, 0.0)
    e = np.exp(x - shift[:, None])
    at_max = x == m[:, None]
    others = np.sum(np.where(at_max, 0.0, e), axis=1)
    copies = np.sum(at_max, axis=1)
    log_sum = np.where(finite, np.log1p(others + (copies - 1.0)), np.log(np.sum(e, axis=1)))
    return shift, log_sum


def _softmax(x: Arr, shift: Arr) -> Arr:
    """exp(x - shift) normalised, NaN across a row holding +inf (as SciPy and torch)."""
    e = np.exp(x - shift[:, None])
    p = e / np.sum(e, axis=1, keepdims=True)
    return np.where(np.isposinf(x).any(axis=1, keepdims=True), np.nan, p)


def classwise(
    kernel,
    x,
    outer,
    classes,
    inner,
    target,
    target_prob,
    class_weight,
    ignore_index,
    params,
    reduction,
    want_grad,
    num_threads,
):
    """Same contract as fastloss._core.classwise: (value, weight_sum, first_bad, out, rows)."""
    dtype = x.dtype
    npos = outer * inner
    if npos == 0 or classes == 0:
        out = np.zeros(npos, dtype) if (kernel in _MAPS or reduction == 0) else None
        rows = np.zeros(x.size, dtype) if (kernel in _MAPS or want_grad) else None
        return (np.nan if reduction == 2 else 0.0), 0.0, -1, out, rows
    xr = _rows(x, outer, classes, inner)
    with np.errstate(all="ignore"):
        shift, log_sum = _lse_parts(xr)
        lse = shift + log_sum
        d = shift[:, None] - xr  # lse - x = d + log_sum, without cancellation
        if kernel in _MAPS:
            rows = None
            if kernel == "softmax":
                rows = _softmax(xr, shift)
            elif kernel == "log_softmax":
                rows = -d - log_sum[:, None]
            rows_flat = _unrows(rows, outer, classes, inner, dtype) if rows is not None else None
            return 0.0, 0.0, -1, lse.astype(dtype), rows_flat
        cw = class_weight.astype(np.float64) if class_weight is not None else np.ones(classes)
        eps = params[0] if params else 0.0
        if kernel in _PROB:
            tp = _rows(target_prob, outer, classes, inner)
            bad = np.flatnonzero(np.any((tp < 0) | (tp > 1), axis=1))
            if bad.size:
                return 0.0, 0.0, int(bad[0]), None, None
            tt = (1.0 - eps) * tp + eps / classes
            wt = cw * tt
            loss = np.sum(wt * (d + log_sum[:, None]), axis=1)
            pw = np.ones(npos)
            grad = np.sum(wt, axis=1, keepdims=True) * _softmax(xr, shift) - wt
        else:
            y = target.astype(np.int64)
            ign = (y == ignore_index) if ignore_index is not None else np.zeros(y.shape, bool)
            ok = ign | ((y >= 0) & (y < classes))
            if not ok.all():
                return 0.0, 0.0, int(np.flatnonzero(~ok)[0]), None, None
            keep = ~ign
            yc = np.where(keep, y, 0)
            wy = np.where(keep, cw[yc], 0.0)
            onehot = np.zeros_like(xr)
            onehot[np.arange(npos), yc] = 1.0
            xy = xr[np.arange(npos), yc]
            nll = d[np.arange(npos), yc] + log_sum  # lse - x_y
            p = _softmax(xr, shift)
            py = p[np.arange(npos), yc]
            if kernel == "nll_loss":
                loss = -wy * xy
                grad = -wy[:, None] * onehot
            elif kernel == "softmax_focal_loss":
                gamma = params[0]
                q = np.sum(np.where(onehot == 1.0, 0.0, p), axis=1)  # 1 - p_y without cancellation
                lp = -nll
                mod = np.ones_like(q) if gamma == 0.0 else q**gamma
                dmod = np.where(q > 0.0, gamma * mod / np.where(q > 0.0, q, 1.0), 0.0)
                loss = -wy * mod * lp
                grad = (wy * (mod - dmod * py * lp))[:, None] * (p - onehot)
            elif kernel == "poly1_cross_entropy":
                q = np.sum(np.where(onehot == 1.0, 0.0, p), axis=1)
                loss = nll + params[0] * q
                grad = (1.0 + params[0] * py)[:, None] * (p - onehot)
            elif kernel.startswith("multiclass_hinge_ww"):
                power = int(kernel[-1])
                v = params[0] - xy[:, None] + xr
                h = np.where((onehot == 1.0) | (v < 0.0), 0.0, v)
                dh = np.where(h > 0.0, 1.0, np.where(np.isnan(h), h, 0.0)) if power == 1 else 2.0 * h
                k = wy / classes
                loss = k * np.sum(h if power == 1 else h * h, axis=1)
                grad = k[:, None] * dh
                grad[np.arange(npos), yc] = -k * np.sum(dh, axis=1)
            elif kernel.startswith("multiclass_hinge_cs"):
                power = int(kernel[-1])
                others = np.where(onehot == 1.0, -np.inf, xr)
                if classes == 1:
                    loss = np.zeros(npos)
                    grad = np.zeros_like(xr)
                else:
                    jmax = np.argmax(others, axis=1)
                    v = params[0] + others[np.arange(npos), jmax] - xy
                    h = np.where(v < 0.0, 0.0, v)
                    loss = wy * (h if power == 1 else h * h)
                    dh = np.where(h > 0.0, wy * (1.0 if power == 1 else 2.0 * h), 0.0)
                    grad = np.zeros_like(xr)
                    grad[np.arange(npos), jmax] = dh
                    grad[np.arange(npos), yc] = -dh
                    nan_rows = np.isnan(xr).any(axis=1)
                    loss = np.where(nan_rows, np.nan, loss)
                    grad[nan_rows] = np.nan
            else:
                loss = (1.0 - eps) * wy * nll
                grad = (1.0 - eps) * wy[:, None] * (p - onehot)
                if eps != 0.0:
                    k = eps / classes
                    loss = loss + k * np.where(keep, np.sum(cw * (d + log_sum[:, None]), axis=1), 0.0)
                    grad = grad + k * keep[:, None] * (cw.sum() * p - cw)
            loss = np.where(keep, loss, 0.0)
            grad = np.where(keep[:, None], grad, 0.0)
            pw = keep.astype(np.float64) if kernel in _MEAN_BY_POSITION else wy
        total, wsum = float(np.sum(loss)), float(np.sum(pw))
        value = float(np.float64(total) / np.float64(wsum)) if reduction == 2 else total
        out = loss.astype(dtype) if reduction == 0 else None
        g = None
        if want_grad:
            # every position ignored: zero gradient rows, as in torch (not 0 * inf)
            scale = (0.0 if wsum == 0.0 else 1.0 / wsum) if reduction == 2 else 1.0
            g = _unrows(grad * scale, outer, classes, inner, dtype)
    return value, wsum, -1, out, g
