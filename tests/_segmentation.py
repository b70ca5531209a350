"""Helpers of the segmentation tests: an independent NumPy formulation (float64) written from MONAI's
DiceLoss / TverskyLoss, its gradient, and the problems."""

from __future__ import annotations

import numpy as np
from conftest import (
    assert_close,
    f64,
    scale_of,
)

import fastloss

LOSSES = ["dice", "jaccard", "tversky"]


ACTIVATIONS = [None, "sigmoid", "softmax"]


ACT_IDS = ["none", "sigmoid", "softmax"]


TARGETS = ["dense", "labels"]


DEFAULTS = {
    "smooth_nr": 1e-5,
    "smooth_dr": 1e-5,
    "squared": False,
    "batch": False,
    "include_background": True,
    "activation": None,
    "reduction": "mean",
    "alpha": 0.5,
    "beta": 0.5,
}


def loss_fn(kind: str):
    return getattr(fastloss, f"{kind}_loss")


def public_opts(kind: str, opts: dict) -> dict:
    """The keyword arguments fastloss takes for `kind` (Tversky has alpha/beta and no `squared`;
    Dice/Jaccard have no alpha/beta)."""
    drop = ("squared",) if kind == "tversky" else ("alpha", "beta")
    return {k: v for k, v in opts.items() if k not in drop}


def call(kind, pred, target, **opts):
    return loss_fn(kind)(pred, target, **public_opts(kind, opts))


# --------------------------------------------------------------------------------------------------
# Independent NumPy formulation (float64), written from MONAI's DiceLoss / TverskyLoss


def expit(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def ref_activation(x, activation):
    if activation is None:
        return x.copy()
    if activation == "sigmoid":
        return expit(x)
    if activation == "softmax":
        m = np.max(x, axis=1, keepdims=True)
        e = np.exp(x - m)
        return e / np.sum(e, axis=1, keepdims=True)
    raise KeyError(activation)


def one_hot(labels, C: int, dtype=np.float64) -> np.ndarray:
    """(B, spatial...) class indices -> (B, C, spatial...) one-hot, built channel by channel."""
    lab = np.asarray(labels)
    out = np.zeros((lab.shape[0], C) + lab.shape[1:], dtype=dtype)
    for c in range(C):
        out[:, c] = lab == c
    return out


def is_labels(pred, target) -> bool:
    return np.ndim(target) == np.ndim(pred) - 1


def ref_loss(kind, pred, target, **opts):
    """(value, gradient of value w.r.t. pred) in float64; "none" values are the (B, C') / (C',) array
    and its gradient is that of the sum. The gradient of a mean over nothing is returned as zeros
    (fastloss's is not compared there)."""
    o = {**DEFAULTS, **opts}
    x = f64(pred)
    B, C = x.shape[:2]
    g = one_hot(target, C) if is_labels(pred, target) else f64(target)
    p = ref_activation(x, o["activation"])
    k0 = 0 if o["include_background"] else 1
    pk, gk = p[:, k0:], g[:, k0:]
    axes = tuple(range(2, x.ndim))
    if o["batch"]:
        axes = (0,) + axes
    sq = bool(o["squared"]) and kind != "tversky"
    inter = np.sum(pk * gk, axis=axes)
    P = np.sum(pk * pk if sq else pk, axis=axes)
    G = np.sum(gk * gk if sq else gk, axis=axes)
    nr, dr = float(o["smooth_nr"]), float(o["smooth_dr"])
    with np.errstate(all="ignore"):
        if kind == "dice":
            N, D = 2.0 * inter + nr, P + G + dr
            dI, dP = -2.0 / D, N / D**2
        elif kind == "jaccard":
            N, D = 2.0 * inter + nr, 2.0 * (P + G - inter) + dr
            dI, dP = -(2.0 * D + 2.0 * N) / D**2, 2.0 * N / D**2
        elif kind == "tversky":
            a, b = float(o["alpha"]), float(o["beta"])
            N, D = inter + nr, inter + a * (P - inter) + b * (G - inter) + dr
            dI, dP = -(D - N * (1.0 - a - b)) / D**2, a * N / D**2
        else:
            raise KeyError(kind)
        f = 1.0 - N / D
    red = o["reduction"]
    if red == "none":
        value, w = f, 1.0
    elif red == "sum":
        value, w = float(np.sum(f)), 1.0
    elif red == "mean":
        value = float(np.mean(f)) if f.size else np.nan
        w = 1.0 / f.size if f.size else 0.0
    else:
        raise KeyError(red)
    ci = np.zeros((B, C))
    cp = np.zeros((B, C))
    ci[:, k0:] = w * dI  # broadcasts over b when batch=True
    cp[:, k0:] = w * dP
    extra = (1,) * (x.ndim - 2)
    ci, cp = ci.reshape((B, C) + extra), cp.reshape((B, C) + extra)
    with np.errstate(all="ignore"):
        dp = ci * g + cp * (2.0 * p if sq else 1.0)
        act = o["activation"]
        if act == "sigmoid":
            grad = dp * p * (1.0 - p)
        elif act == "softmax":
            grad = p * (dp - np.sum(dp * p, axis=1, keepdims=True))
        else:
            grad = dp
    return value, grad


def expected_none_shape(pred, opts):
    o = {**DEFAULTS, **opts}
    C = pred.shape[1] - (0 if o["include_background"] else 1)
    return (C,) if o["batch"] else (pred.shape[0], C)


# --------------------------------------------------------------------------------------------------
# Problems


def make_pred(rng, shape, activation, dtype=np.float64):
    if activation is None:
        return rng.uniform(0.0, 1.0, shape).astype(dtype)  # probabilities
    return rng.normal(0.0, 2.0, shape).astype(dtype)  # logits


def make_target(rng, shape, kind: str, dtype=np.float64):
    """Dense: a soft target in [0, 1] (a third soft, the rest one-hot-ish 0/1); labels: int64."""
    B, C = shape[:2]
    labels = rng.integers(0, C, (B,) + shape[2:])
    if kind == "labels":
        return labels
    hard = one_hot(labels, C)
    return np.where(rng.random(shape) < 1 / 3, rng.random(shape), hard).astype(dtype)


def make_problem(seed, shape, activation, target_kind, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return make_pred(rng, shape, activation, dtype), make_target(rng, shape, target_kind, dtype)


SHAPES = [(2, 3, 5, 4), (2, 3, 3, 4, 2), (3, 2, 7), (2, 1, 4, 5)]


TVERSKY_AB = [(0.5, 0.5), (0.3, 0.7), (1.0, 0.0), (0.0, 2.0)]


def kind_variants(kind):
    """The `squared` / (alpha, beta) settings a loss is swept over."""
    if kind == "tversky":
        return [{"alpha": a, "beta": b} for a, b in TVERSKY_AB]
    return [{"squared": False}, {"squared": True}]


def value_tols(dtype):
    """(rtol, atol) of a value against the float64 reference of the same (cast) inputs."""
    return (1e-5, 1e-6) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)


def grad_tols(dtype, want):
    # Plus a floor far below the terms' rounding: a gradient whose terms cancel exactly (Tversky with
    # beta = 0 on an all-ones channel and smooth_nr = smooth_dr) is 0 here and a few 1e-18 in the
    # float64 reference, so its own maximum is no scale (hypothesis found one such case in 4000).
    s = max(scale_of(want), 1e-300)
    return (1e-5, 1e-5 * s + 1e-12) if np.dtype(dtype) == np.float32 else (1e-9, 1e-11 * s + 1e-15)


def check_against_reference(kind, pred, target, opts, what=""):
    """fastloss (value, grad) vs the float64 reference on the same values, with result types."""
    dtype = pred.dtype
    v, g = call(kind, pred, target, return_grad=True, **opts)
    want, want_g = ref_loss(kind, pred, target, **opts)
    red = opts.get("reduction", "mean")
    if red == "none":
        assert isinstance(v, np.ndarray), what
        assert v.shape == expected_none_shape(pred, opts), what
        assert v.dtype == dtype, what
    else:
        assert type(v) is dtype.type, f"{what}: {type(v)} is not a NumPy {dtype} scalar"
    assert isinstance(g, np.ndarray) and g.shape == pred.shape and g.dtype == dtype, what
    rtol, atol = value_tols(dtype)
    assert_close(v, want, rtol, atol, what=f"{what} value")
    if red == "mean" and np.size(ref_loss(kind, pred, target, **{**opts, "reduction": "none"})[0]) == 0:
        return v, g
    rtol, atol = grad_tols(dtype, want_g)
    assert_close(g, want_g, rtol, atol, what=f"{what} grad")
    return v, g


o = np.ones
