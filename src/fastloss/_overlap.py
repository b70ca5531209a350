"""The call path of the segmentation overlap losses: one kernel pass for the per-(batch, channel) sums
I = sum p g, P = sum p (or p^2) and G = sum g (or g^2), the loss formula of those sums in NumPy, and one
more pass for the gradient; batch items go in chunks so that the sums and formulas stay bounded."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastloss import _backend, _validate
from fastloss._specs import SPECS, Reduction

ACTIVATIONS = {None: 0, "sigmoid": 1, "softmax": 2}
_CHUNK_PAIRS = 2**18


def _prepare(func: str, pred: Any, target: Any, activation: object):
    activation = SPECS[func].check("activation", activation)
    p = _validate.as_array(pred, "pred")
    if p.ndim < 3:
        raise ValueError(
            f"{func}: pred must have shape (B, C, spatial...) with at least one spatial axis, got {p.shape}"
        )
    t = _validate.as_array(target, "target")
    B, C = p.shape[:2]
    spatial = p.shape[2:]
    S = math.prod(spatial)
    if t.shape == p.shape:
        dtype = _validate.compute_dtype(p, t)
        dense = np.ascontiguousarray(t, dtype=dtype).reshape(B, C, S)
        labels = None
    elif t.shape == (B, *spatial):
        if t.dtype.kind not in "iu":
            raise ValueError(
                f"{func}: a target of shape {t.shape} holds class labels and must be integers, got dtype "
                f"{t.dtype} (dense targets must have pred's shape {p.shape})"
            )
        dtype = _validate.compute_dtype(p)
        dense = None
        if t.dtype.kind == "u" and t.size and t.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{func}: target holds labels beyond the int64 range")
        labels = np.ascontiguousarray(t, dtype=np.int64).reshape(B, S)
    else:
        raise ValueError(
            f"{func}: target must have pred's shape {p.shape} (dense) or {(B, *spatial)} (class labels), "
            f"got {t.shape}"
        )
    x = np.ascontiguousarray(p, dtype=dtype).reshape(B, C, S)
    return x, dense, labels, dtype, p.shape, ACTIVATIONS[activation]


@_validate.ieee
def run(
    func: str,
    kind: str,
    pred: Any,
    target: Any,
    *,
    smooth_nr: float,
    smooth_dr: float,
    squared: bool,
    batch: bool,
    include_background: bool,
    activation: object,
    reduction: str,
    return_grad: bool,
    alpha: float = 0.5,
    beta: float = 0.5,
) -> Any:
    spec = SPECS[func]
    code = spec.check("reduction", reduction)
    return_grad = spec.check("return_grad", return_grad)
    nr = spec.check("smooth_nr", smooth_nr)
    dr = spec.check("smooth_dr", smooth_dr)
    sq = spec.check("squared", squared) if "squared" in spec.by_name else squared
    bt = spec.check("batch", batch)
    bg = spec.check("include_background", include_background)
    if "alpha" in spec.by_name:
        alpha, beta = spec.check("alpha", alpha), spec.check("beta", beta)
    x, dense, labels, dtype, shape, act = _prepare(func, pred, target, activation)
    nt = _backend.thread_arg()
    kernels = _backend.kernels()
    B, C = x.shape[:2]
    first = 0 if bg else 1
    # Batch items in chunks of about _CHUNK_PAIRS (batch, channel) pairs: the sums and the formula's
    # temporaries are a dozen float64 per pair, more than the map itself when it has few positions.
    rows = max(1, _CHUNK_PAIRS // max(C, 1))
    chunks = [(0, B)] if B <= rows else [(b0, min(B, b0 + rows)) for b0 in range(0, B, rows)]
    whole = len(chunks) == 1
    size = (C - first) * (1 if bt else B)  # the number of loss terms
    w = 1.0 / size if code == Reduction.MEAN and size else 1.0
    grad = None if whole or not return_grad else np.empty(x.shape, dtype)
    coef = None
    if bt:  # one loss per channel, of the sums over the batch
        sums = None
        for b0, b1 in chunks:
            s = _chunk_sums(func, kernels, x, dense, labels, b0, b1, whole, act, sq, nt, shape)
            sums = s if whole else s.sum(axis=0, keepdims=True) + (0.0 if sums is None else sums)
        f, df_di, df_dp = _overlap_formula(kind, sums, first, True, nr, dr, alpha, beta, return_grad)
        if return_grad:
            for b0, b1 in chunks:
                coef = _coefs(coef, b1 - b0, C, first, w, df_di, df_dp)
                grad = _chunk_grad(kernels, x, dense, labels, b0, b1, whole, act, sq, coef, nt, grad)
        losses, partials = f, [f.sum()]
    else:  # one loss per (batch, channel): each chunk on its own, its losses kept (none) or summed
        losses = None if whole or code != Reduction.NONE else np.empty((B, C - first), dtype)
        partials = []
        for b0, b1 in chunks:
            s = _chunk_sums(func, kernels, x, dense, labels, b0, b1, whole, act, sq, nt, shape)
            f, df_di, df_dp = _overlap_formula(kind, s, first, False, nr, dr, alpha, beta, return_grad)
            if code != Reduction.NONE:
                partials.append(f.sum())
            elif whole:
                losses = f
            else:
                losses[b0:b1] = f
            if return_grad:
                coef = _coefs(coef, b1 - b0, C, first, w, df_di, df_dp)
                grad = _chunk_grad(kernels, x, dense, labels, b0, b1, whole, act, sq, coef, nt, grad)
    if code == Reduction.NONE:
        value = losses.astype(dtype, copy=False)
    else:
        total = partials[0] if whole else np.sum(partials)
        value = dtype.type(total if code == Reduction.SUM else (total / size if size else np.nan))
    if not return_grad:
        return value
    return value, grad.reshape(shape)


def _part(x, dense, labels, b0, b1):
    """Batch items b0 .. b1 of the kernel inputs."""
    return x[b0:b1], None if dense is None else dense[b0:b1], None if labels is None else labels[b0:b1]


def _chunk_sums(func, kernels, x, dense, labels, b0, b1, whole, act, sq, nt, shape):
    """The (b1 - b0, C, 3) sums of one chunk; a label outside [0, C) raises, named by its position."""
    if whole:
        sums, bad = kernels.overlap_sums(x, dense, labels, act, sq, nt)
    else:
        xb, db, lb = _part(x, dense, labels, b0, b1)
        sums, bad = kernels.overlap_sums(xb, db, lb, act, sq, nt)
    if bad >= 0:
        bad += b0 * x.shape[2]
        where = ", ".join(str(int(k)) for k in np.unravel_index(bad, (shape[0], *shape[2:])))
        raise ValueError(
            f"{func}: target labels must be class indices in [0, {shape[1]}); "
            f"found target[{where}] = {int(labels.reshape(-1)[bad])}"
        )
    return sums


def _coefs(coef, n, C, first, w, df_di, df_dp):
    """dL/dI and dL/dP per (batch item, channel) of a chunk of n items (reusing the last chunk's arrays)."""
    if coef is None or coef[0].shape[0] != n:
        coef = np.zeros((n, C)), np.zeros((n, C))
    coef[0][:, first:] = w * df_di  # broadcasts over b for batch=True
    coef[1][:, first:] = w * df_dp
    return coef


def _chunk_grad(kernels, x, dense, labels, b0, b1, whole, act, sq, coef, nt, grad):
    """The gradient of one chunk, into grad[b0:b1] (a new array for one chunk)."""
    if whole:
        return kernels.overlap_grad(x, dense, labels, act, sq, coef[0], coef[1], nt)
    xb, db, lb = _part(x, dense, labels, b0, b1)
    kernels.overlap_grad(xb, db, lb, act, sq, coef[0], coef[1], nt, grad[b0:b1])
    return grad


def _overlap_formula(kind, sums, first, over_batch, nr, dr, alpha, beta, need_grad) -> tuple:
    """The loss f per term and, when `need_grad`, df/dI and df/dP (else None), from the sums I, P, G (of
    the channels from `first`, summed over the batch items when over_batch). Runs under _overlap's
    IEEE error state: an empty channel gives 0/0 = nan, as documented."""
    inter, psum, gsum = (sums[:, first:, k] for k in range(3))
    if over_batch:
        inter, psum, gsum = inter.sum(axis=0), psum.sum(axis=0), gsum.sum(axis=0)
    df_di = df_dp = None
    if kind == "tversky":
        num = inter + nr
        den = (1.0 - alpha - beta) * inter + alpha * psum + beta * gsum + dr
        if need_grad:
            df_di = -(den - num * (1.0 - alpha - beta)) / den**2
            df_dp = num * alpha / den**2
    else:
        num = 2.0 * inter + nr
        den = (2.0 * (psum + gsum - inter) if kind == "jaccard" else psum + gsum) + dr
        if need_grad:
            df_di = -(2.0 * den + (2.0 * num if kind == "jaccard" else 0.0)) / den**2
            df_dp = num * (2.0 if kind == "jaccard" else 1.0) / den**2
    return 1.0 - num / den, df_di, df_dp
