"""NumPy twins of the class-wise kernels (csrc/fastloss/classwise.hpp), same signature as
fastloss._core.classwise. Scores arrive flat with layout (outer, classes, inner)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from fastloss._specs import Reduction

Arr = np.ndarray


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


class _Rows(NamedTuple):
    """What every class-index formula reads, per position (row) of the (positions, classes) scores."""

    x: Arr  # scores
    p: Arr  # softmax
    onehot: Arr
    xy: Arr  # the target's score
    nll: Arr  # lse - x_y
    py: Arr  # the target's probability
    wy: Arr  # the target's class weight (0 where ignored)
    y: Arr  # the target (0 where ignored)
    keep: Arr  # not ignored
    cw: Arr  # class weights
    d: Arr  # shift - x (lse - x = d + log_sum)
    log_sum: Arr
    classes: int
    n: int
    params: list[float]


def _cross_entropy(r: _Rows) -> tuple[Arr, Arr]:
    eps = r.params[0] if r.params else 0.0
    loss = (1.0 - eps) * r.wy * r.nll
    grad = (1.0 - eps) * r.wy[:, None] * (r.p - r.onehot)
    if eps != 0.0:
        k = eps / r.classes
        loss = loss + k * np.where(r.keep, np.sum(r.cw * (r.d + r.log_sum[:, None]), axis=1), 0.0)
        grad = grad + k * r.keep[:, None] * (r.cw.sum() * r.p - r.cw)
    return loss, grad


def _nll(r: _Rows) -> tuple[Arr, Arr]:
    return -r.wy * r.xy, -r.wy[:, None] * r.onehot


def _others(r: _Rows) -> Arr:
    """1 - p_y, summed from the other classes' probabilities (no cancellation when p_y is near 1)."""
    return np.sum(np.where(r.onehot == 1.0, 0.0, r.p), axis=1)


def _softmax_focal(r: _Rows) -> tuple[Arr, Arr]:
    gamma = r.params[0]
    q, lp = _others(r), -r.nll
    mod = np.ones_like(q) if gamma == 0.0 else q**gamma
    dmod = np.where(q > 0.0, gamma * mod / np.where(q > 0.0, q, 1.0), 0.0)
    return -r.wy * mod * lp, (r.wy * (mod - dmod * r.py * lp))[:, None] * (r.p - r.onehot)


def _poly1(r: _Rows) -> tuple[Arr, Arr]:
    eps = r.params[0]
    return r.nll + eps * _others(r), (1.0 + eps * r.py)[:, None] * (r.p - r.onehot)


def _weston_watkins(power: int) -> Callable[[_Rows], tuple[Arr, Arr]]:
    def formula(r: _Rows) -> tuple[Arr, Arr]:
        v = r.params[0] - r.xy[:, None] + r.x
        h = np.where((r.onehot == 1.0) | (v < 0.0), 0.0, v)
        dh = np.where(h > 0.0, 1.0, np.where(np.isnan(h), h, 0.0)) if power == 1 else 2.0 * h
        k = r.wy / r.classes
        grad = k[:, None] * dh
        grad[np.arange(r.n), r.y] = -k * np.sum(dh, axis=1)
        return k * np.sum(h if power == 1 else h * h, axis=1), grad

    return formula


def _crammer_singer(power: int) -> Callable[[_Rows], tuple[Arr, Arr]]:
    def formula(r: _Rows) -> tuple[Arr, Arr]:
        if r.classes == 1:
            return np.zeros(r.n), np.zeros_like(r.x)
        others = np.where(r.onehot == 1.0, -np.inf, r.x)
        jmax = np.argmax(others, axis=1)
        v = r.params[0] + others[np.arange(r.n), jmax] - r.xy
        h = np.where(v < 0.0, 0.0, v)
        loss = r.wy * (h if power == 1 else h * h)
        dh = np.where(h > 0.0, r.wy * (1.0 if power == 1 else 2.0 * h), 0.0)
        grad = np.zeros_like(r.x)
        grad[np.arange(r.n), jmax] = dh
        grad[np.arange(r.n), r.y] = -dh
        nan_rows = np.isnan(r.x).any(axis=1)
        grad[nan_rows] = np.nan
        return np.where(nan_rows, np.nan, loss), grad

    return formula


# kernel -> (formula, whether "mean" divides by the targets' class weights (else by the positions))
INDEX_KERNELS: dict[str, tuple[Callable[[_Rows], tuple[Arr, Arr]], bool]] = {
    "cross_entropy": (_cross_entropy, True),
    "nll_loss": (_nll, True),
    "softmax_focal_loss": (_softmax_focal, False),
    "poly1_cross_entropy": (_poly1, False),
    "multiclass_hinge_ww1": (_weston_watkins(1), False),
    "multiclass_hinge_ww2": (_weston_watkins(2), False),
    "multiclass_hinge_cs1": (_crammer_singer(1), False),
    "multiclass_hinge_cs2": (_crammer_singer(2), False),
}
# the activations: kernel -> rows of (x, shift, d, log_sum), or None (logsumexp: the per-position value only)
MAPS: dict[str, Callable[[Arr, Arr, Arr, Arr], Arr | None]] = {
    "softmax": lambda x, shift, d, log_sum: _softmax(x, shift),
    "log_softmax": lambda x, shift, d, log_sum: -d - log_sum[:, None],
    "logsumexp": lambda x, shift, d, log_sum: None,
}
KERNELS = sorted([*INDEX_KERNELS, "cross_entropy_prob", *MAPS])


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
        out = np.zeros(npos, dtype) if (kernel in MAPS or reduction == Reduction.NONE) else None
        rows = np.zeros(x.size, dtype) if (kernel in MAPS or want_grad) else None
        return (np.nan if reduction == Reduction.MEAN else 0.0), 0.0, -1, out, rows
    xr = _rows(x, outer, classes, inner)
    with np.errstate(all="ignore"):
        shift, log_sum = _lse_parts(xr)
        lse = shift + log_sum
        d = shift[:, None] - xr  # lse - x = d + log_sum, without cancellation
        if kernel in MAPS:
            rows = MAPS[kernel](xr, shift, d, log_sum)
            rows_flat = _unrows(rows, outer, classes, inner, dtype) if rows is not None else None
            return 0.0, 0.0, -1, lse.astype(dtype), rows_flat
        cw = class_weight.astype(np.float64) if class_weight is not None else np.ones(classes)
        if kernel == "cross_entropy_prob":
            tp = _rows(target_prob, outer, classes, inner)
            bad = np.flatnonzero(np.any((tp < 0) | (tp > 1), axis=1))
            if bad.size:
                return 0.0, 0.0, int(bad[0]), None, None
            eps = params[0] if params else 0.0
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
            rows = _Rows(xr, p, onehot, xy, nll, py, wy, yc, keep, cw, d, log_sum, classes, npos, params)
            formula, by_class_weight = INDEX_KERNELS[kernel]
            loss, grad = formula(rows)
            loss = np.where(keep, loss, 0.0)
            grad = np.where(keep[:, None], grad, 0.0)
            pw = wy if by_class_weight else keep.astype(np.float64)
        total, wsum = float(np.sum(loss)), float(np.sum(pw))
        value = float(np.float64(total) / np.float64(wsum)) if reduction == Reduction.MEAN else total
        out = loss.astype(dtype) if reduction == Reduction.NONE else None
        g = None
        if want_grad:
            # every position ignored: zero gradient rows, as in torch (not 0 * inf)
            scale = (0.0 if wsum == 0.0 else 1.0 / wsum) if reduction == Reduction.MEAN else 1.0
            g = _unrows(grad * scale, outer, classes, inner, dtype)
    return value, wsum, -1, out, g
