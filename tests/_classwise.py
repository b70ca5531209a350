"""Helpers of the class-wise tests: independent NumPy formulations (float64, log_softmax first, as
torch writes them), problem generators and the shared parameter tables."""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np

import fastloss


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def pos_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the per-position results (and of class-index targets) for scores of `shape`."""
    return () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])


def n_classes(shape: tuple[int, ...]) -> int:
    return shape[0] if len(shape) == 1 else shape[1]


# --------------------------------------------------------------------------------------------------
# Independent NumPy formulation (float64): the definition as torch writes it, log_softmax first


def as_rows(a) -> np.ndarray:
    """(positions, C) float64 rows of an array whose class axis is 1 (a (C,) array is one row)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return a[None, :]
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def ref_log_softmax_rows(r: np.ndarray) -> np.ndarray:
    m = np.max(r, axis=1, keepdims=True)
    return r - (m + np.log(np.sum(np.exp(r - m), axis=1, keepdims=True)))


def _ref_reduce(loss, denom, reduction, shape):
    if reduction == "none":
        return loss.reshape(pos_shape(shape))
    total = np.sum(loss)
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(total) / np.float64(denom)


def ref_cross_entropy(x, target, *, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    x = np.asarray(x, dtype=np.float64)
    C = n_classes(x.shape)
    logp = ref_log_softmax_rows(as_rows(x))
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    t = np.asarray(target)
    if t.dtype.kind == "f":
        tp = (1.0 - eps) * as_rows(t) + eps / C
        loss = -np.sum(w * tp * logp, axis=1)
        denom = loss.size
    else:
        y = t.reshape(-1).astype(np.int64)
        keep = y != ignore_index
        yk = np.where(keep, y, 0)
        wy = np.where(keep, w[yk], 0.0)
        nll = -logp[np.arange(y.size), yk]
        smooth = -np.sum(w * logp, axis=1)
        loss = np.where(keep, (1.0 - eps) * wy * nll + (eps / C) * smooth, 0.0)
        denom = np.sum(wy)
    return _ref_reduce(loss, denom, reduction, x.shape)


def ref_nll_loss(x, target, *, weight=None, ignore_index=-100, reduction="mean"):
    x = np.asarray(x, dtype=np.float64)
    C = n_classes(x.shape)
    rows = as_rows(x)
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    y = np.asarray(target).reshape(-1).astype(np.int64)
    keep = y != ignore_index
    yk = np.where(keep, y, 0)
    wy = np.where(keep, w[yk], 0.0)
    loss = np.where(keep, -wy * rows[np.arange(y.size), yk], 0.0)
    return _ref_reduce(loss, np.sum(wy), reduction, x.shape)


REFS = {"cross_entropy": ref_cross_entropy, "nll_loss": ref_nll_loss}


FNS = {"cross_entropy": fastloss.cross_entropy, "nll_loss": fastloss.nll_loss}


class Config(NamedTuple):
    id: str
    prob: bool = False  # probability targets (else class indices)
    weight: bool = False
    ignore: int | None = None  # ignore_index; about a third of the positions then hold it
    eps: float = 0.0  # label smoothing
    raw: bool = False  # probability targets not normalised (torch does not require it)


CE_CONFIGS = [
    Config("plain"),
    Config("weight", weight=True),
    Config("ignore-100", ignore=-100),
    Config("ignore3", ignore=3),  # also a valid class
    Config("ls0.1", eps=0.1),
    Config("ls1", eps=1.0),
    Config("weight_ignore_ls0.1", weight=True, ignore=-100, eps=0.1),
    Config("weight_ignore3_ls1", weight=True, ignore=3, eps=1.0),
    Config("prob", prob=True),
    Config("prob_ls0.1", prob=True, eps=0.1),
    Config("prob_weight", prob=True, weight=True),
    Config("prob_weight_ls0.1_raw", prob=True, weight=True, eps=0.1, raw=True),
    Config("prob_ls1", prob=True, eps=1.0),
]


def make_problem(shape, config: Config, seed, log_probs=False):
    """(scores, target, kwargs) in float64. The first position is never ignored."""
    rng = np.random.default_rng(seed)
    C = n_classes(shape)
    x = rng.normal(0.0, 3.0, shape)
    if log_probs:
        x = np.ascontiguousarray(
            np.moveaxis(
                ref_log_softmax_rows(as_rows(x)).reshape(pos_shape(shape) + (C,)), -1, min(1, len(shape) - 1)
            )
        )
    kw = {}
    if config.weight:
        kw["weight"] = rng.uniform(0.2, 3.0, C)
    if config.eps:
        kw["label_smoothing"] = config.eps
    if config.prob:
        t = rng.random(shape) * (rng.random(shape) > 0.25)
        if not config.raw:
            t = t / np.maximum(np.sum(t, axis=min(1, len(shape) - 1), keepdims=True), 1e-300)
        return x, t, kw
    ps = pos_shape(shape)
    y = np.asarray(rng.integers(0, C, ps), dtype=np.int64)
    if config.ignore is not None:
        mask = np.asarray(rng.random(ps) < 0.35)
        mask.reshape(-1)[0] = False
        y = np.where(mask, config.ignore, y)
        if y.flat[0] == config.ignore:  # a valid class used as ignore_index (3) may be drawn too
            y.flat[0] = (config.ignore + 1) % C
        if config.ignore != -100:
            kw["ignore_index"] = config.ignore
    return x, y, kw


def _strided(a: np.ndarray, kind: str) -> np.ndarray:
    """A view of a copy of `a` with the same values and another memory layout."""
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        idx = tuple(slice(None, None, 2) for _ in a.shape)
        big[idx] = a
        return big[idx]
    if kind == "reversed":
        idx = tuple(slice(None, None, -1) for _ in a.shape)
        return a[idx].copy()[idx]
    raise KeyError(kind)


def from_rows(r: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of as_rows."""
    if len(shape) == 1:
        return r.reshape(shape)
    return np.moveaxis(r.reshape(pos_shape(shape) + (shape[1],)), -1, 1)


def tols(dtype) -> tuple[float, float]:
    """(rtol, atol relative to the largest magnitude) against a float64 reference."""
    return (2e-6, 2e-7) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)


def scale_of(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.max(np.abs(a), initial=0.0))


def close_in(got, want, dtype, what="", scale=None):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    rtol, arel = tols(dtype)
    s = scale_of(want) if scale is None else scale
    np.testing.assert_allclose(got, want, rtol=rtol, atol=arel * s + 1e-300, equal_nan=True, err_msg=what)


def ref_kl_terms(x, t, *, log_target=False):
    x = np.asarray(x, np.float64)
    t = np.asarray(t, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if log_target:
            p = np.exp(t)
            return np.where(p == 0.0, 0.0, p * (t - x))
        return np.where(t == 0.0, 0.0, t * (np.log(t) - x))


# --------------------------------------------------------------------------------------------------
# Problems


def make_index_problem(shape, seed, *, ignore_index=None, scale=2.0, dtype=np.float64, min_class=0):
    """(scores, target): scores of `dtype`; about a quarter of the positions hold ignore_index (the
    first position never does)."""
    rng = np.random.default_rng(seed)
    C = shape[0] if len(shape) == 1 else shape[1]
    x = rng.normal(0.0, scale, shape).astype(dtype)
    y = rng.integers(min_class, C, pos_shape(shape)).astype(np.int64)
    if ignore_index is not None and y.size > 1:
        flat = y.reshape(-1)
        mask = rng.random(flat.size) < 0.25
        mask[0] = False
        flat[mask] = ignore_index
    return x, y


def make_kl_problem(shape, seed, *, dtype=np.float64, zeros=True, log_target=False):
    """(log Q, P) (or (log Q, log P)) with distributions along axis 1 (axis 0 for 1-D)."""
    rng = np.random.default_rng(seed)
    ax = 0 if len(shape) == 1 else 1
    a = rng.normal(0.0, 1.5, shape)
    logq = a - np.log(np.sum(np.exp(a), axis=ax, keepdims=True))
    b = np.exp(rng.normal(0.0, 1.5, shape))
    if zeros:
        b = np.where(rng.random(shape) < 0.2, 0.0, b)
        b = np.where(np.sum(b, axis=ax, keepdims=True) == 0.0, 1.0, b)  # no all-zero distribution
    p = b / np.sum(b, axis=ax, keepdims=True)
    t = p
    if log_target:
        with np.errstate(divide="ignore"):
            t = np.log(p)
    return logq.astype(dtype), t.astype(dtype)


LOSS_SHAPES = {"2d": (7, 4), "seg": (3, 5, 2, 3)}


LOSS_SHAPE_IDS = list(LOSS_SHAPES)


FOCAL_CASES = [
    # (id, gamma, alpha kind, ignore_index)
    ("g2", 2.0, None, -100),
    ("g0.5_alpha_scalar", 0.5, "scalar", -100),
    ("g2_alpha_class", 2.0, "class", -100),
    ("g0_alpha_class_ignore1", 0.0, "class", 1),  # ignore_index is also a valid class
    ("g3.5_noignore", 3.5, None, None),
]


FOCAL_IDS = [c[0] for c in FOCAL_CASES]


POLY1_CASES = [("e1", 1.0, -100), ("e0", 0.0, -100), ("e2.5_ignore2", 2.5, 2), ("e-0.5", -0.5, None)]


POLY1_IDS = [c[0] for c in POLY1_CASES]


HINGE_CASES = [
    # (id, p, margin, weighted)
    ("p1", 1, 1.0, False),
    ("p2", 2, 1.0, False),
    ("p1_m0.3_w", 1, 0.3, True),
    ("p2_m2_w", 2, 2.0, True),
]


HINGE_IDS = [c[0] for c in HINGE_CASES]


def alpha_of(kind, C, seed):
    if kind is None:
        return None
    if kind == "scalar":
        return 0.25
    return np.random.default_rng(seed + 1).uniform(0.1, 1.0, C)


def class_weight(weighted, C, seed, dtype=np.float64):
    if not weighted:
        return None
    return np.random.default_rng(seed + 2).uniform(0.5, 2.0, C).astype(dtype)


def focal_kwargs(case, C, seed):
    _, gamma, akind, ign = case
    kw = {"gamma": gamma, "alpha": alpha_of(akind, C, seed)}
    if ign is not None:
        kw["ignore_index"] = ign
    return kw, ign


KL_SHAPES = {"2d": (6, 5), "3d": (3, 4, 5), "1d": (7,)}


def _hinge_fd_problem(shape, seed, method, margin, gap=1e-2):
    """Scores whose rows stay at least `gap` away from every kink of the hinge (and from ties)."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    rows = []
    npos = int(np.prod(pos_shape(shape)))
    ys = rng.integers(0, C, npos)
    for t in ys:
        while True:
            s = rng.normal(0.0, 1.0, C)
            others = np.delete(s, t)
            if method == "weston_watkins":
                ok = np.min(np.abs(margin - s[t] + others)) > gap
            else:
                srt = np.sort(others)
                ok = abs(margin + srt[-1] - s[t]) > gap and (C < 3 or srt[-1] - srt[-2] > gap)
            if ok:
                rows.append(s)
                break
    return from_rows(np.array(rows), shape).copy(), ys.reshape(pos_shape(shape))
