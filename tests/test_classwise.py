"""Class-wise functions: cross_entropy, nll_loss and the activations softmax, log_softmax, logsumexp, sigmoid.

References: PyTorch (values and autograd gradients; skipped without torch), SciPy (activations; skipped
without scipy), an independent NumPy formulation written here (so the values are checked without either),
central finite differences (gradients), and hypothesis properties between backends and reductions.
"""

from __future__ import annotations

import re
import zlib
from typing import NamedTuple

import numpy as np
import pytest
from conftest import DTYPES, REDUCTIONS, fd_grad, hypothesis_settings, needs_core, optional_module

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


def torch_value_grad(torch, name, x, target, reduction, **kw):
    """torch's value and autograd gradient (of the sum of the outputs, for reduction 'none')."""
    F = torch.nn.functional
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    t = np.asarray(target)
    tt = torch.tensor(t.astype(np.float64 if t.dtype.kind == "f" else np.int64))
    if kw.get("weight") is not None:
        kw = dict(kw, weight=torch.tensor(np.asarray(kw["weight"], dtype=np.float64)))
    fn = F.cross_entropy if name == "cross_entropy" else F.nll_loss
    out = fn(xt, tt, reduction=reduction, **kw)
    (out.sum() if reduction == "none" else out).backward()
    return out.detach().numpy(), xt.grad.numpy()


def assert_close(got, want, rtol, atol=0.0, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def scale_of(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.max(np.abs(a), initial=0.0))


# --------------------------------------------------------------------------------------------------
# Problems: shapes and configurations


SHAPES = {
    "odd_n": (7, 5),
    "seg": (2, 5, 7, 3),
    "spatial1d": (3, 4, 6),
    "unbatched": (5,),
    "c1": (4, 1),
    "large_c": (3, 3000),
    "tall": (1001, 19),  # several tiles, more than one thread
    "seg_big": (3, 21, 23, 17),  # tiles straddle the batch index
}


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
NLL_CONFIGS = [
    Config("plain"),
    Config("weight", weight=True),
    Config("ignore-100", ignore=-100),
    Config("ignore3", ignore=3),
    Config("weight_ignore3", weight=True, ignore=3),
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


def value_tols(dtype, x):
    """(rtol, atol) for a value or gradient against a float64 reference."""
    atol = 1e-13 * (1.0 + scale_of(x))
    if np.dtype(dtype) == np.float32:
        return 2e-6, max(atol, 1e-7)
    return 1e-11, atol


# --------------------------------------------------------------------------------------------------
# 1-2. Values and gradients against torch, the NumPy formulation and finite differences


def _check_result_shape(got, shape, reduction):
    if reduction == "none":
        assert np.shape(got) == pos_shape(shape)
    else:
        assert np.ndim(got) == 0


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("config", CE_CONFIGS, ids=lambda c: c.id)
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_cross_entropy_matches_torch(backend, torch, shape, config, reduction):
    x, t, kw = make_problem(shape, config, _seed("ce", shape, config.id))
    got, grad = fastloss.cross_entropy(x, t, reduction=reduction, return_grad=True, **kw)
    want, want_grad = torch_value_grad(torch, "cross_entropy", x, t, reduction, **kw)
    _check_result_shape(got, shape, reduction)
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert_close(got, want, rtol=1e-11, atol=1e-13 * (1.0 + scale_of(want)), what="value")
    assert_close(grad, want_grad, rtol=1e-10, atol=1e-13 * max(scale_of(want_grad), 1e-300), what="grad")
    # the value does not depend on whether the gradient is asked for
    np.testing.assert_array_equal(fastloss.cross_entropy(x, t, reduction=reduction, **kw), got)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("config", NLL_CONFIGS, ids=lambda c: c.id)
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_nll_loss_matches_torch(backend, torch, shape, config, reduction):
    x, t, kw = make_problem(shape, config, _seed("nll", shape, config.id), log_probs=True)
    got, grad = fastloss.nll_loss(x, t, reduction=reduction, return_grad=True, **kw)
    want, want_grad = torch_value_grad(torch, "nll_loss", x, t, reduction, **kw)
    _check_result_shape(got, shape, reduction)
    assert_close(got, want, rtol=1e-12, atol=1e-13 * (1.0 + scale_of(want)), what="value")
    assert_close(grad, want_grad, rtol=1e-12, atol=0.0, what="grad")
    np.testing.assert_array_equal(fastloss.nll_loss(x, t, reduction=reduction, **kw), got)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("config", CE_CONFIGS, ids=lambda c: c.id)
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_cross_entropy_matches_numpy_formulation(backend, shape, config, dtype):
    x, t, kw = make_problem(shape, config, _seed("ce-ref", shape, config.id))
    x = x.astype(dtype)
    if "weight" in kw:
        kw["weight"] = kw["weight"].astype(dtype)
    if config.prob:
        t = t.astype(dtype)
    rtol, atol = value_tols(dtype, x)
    for reduction in REDUCTIONS:
        got = fastloss.cross_entropy(x, t, reduction=reduction, **kw)
        want = ref_cross_entropy(x, t, reduction=reduction, **kw)
        assert np.asarray(got).dtype == dtype
        a = atol * (1 if reduction == "none" else np.prod(pos_shape(shape)))
        assert_close(got, want, rtol=rtol, atol=a, what=reduction)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("config", NLL_CONFIGS, ids=lambda c: c.id)
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_nll_loss_matches_numpy_formulation(backend, shape, config, dtype):
    x, t, kw = make_problem(shape, config, _seed("nll-ref", shape, config.id), log_probs=True)
    x = x.astype(dtype)
    if "weight" in kw:
        kw["weight"] = kw["weight"].astype(dtype)
    rtol, atol = value_tols(dtype, x)
    for reduction in REDUCTIONS:
        got = fastloss.nll_loss(x, t, reduction=reduction, **kw)
        want = ref_nll_loss(x, t, reduction=reduction, **kw)
        assert np.asarray(got).dtype == dtype
        a = atol * (1 if reduction == "none" else np.prod(pos_shape(shape)))
        assert_close(got, want, rtol=rtol, atol=a, what=reduction)


FD_SHAPES = {"2d": (3, 4), "seg": (2, 3, 2, 2), "unbatched": (4,), "c1": (3, 1)}
FD_CE_CONFIGS = [
    c for c in CE_CONFIGS if c.id in ("plain", "weight_ignore_ls0.1", "weight_ignore3_ls1", "ls1")
] + [c for c in CE_CONFIGS if c.prob and c.id in ("prob", "prob_weight_ls0.1_raw")]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "config", FD_CE_CONFIGS + [Config("nll_weight_ignore", weight=True, ignore=-100)], ids=lambda c: c.id
)
@pytest.mark.parametrize("shape", list(FD_SHAPES.values()), ids=list(FD_SHAPES))
def test_gradient_finite_differences(backend, shape, config, reduction):
    name = "nll_loss" if config.id.startswith("nll") else "cross_entropy"
    fn = FNS[name]
    x, t, kw = make_problem(shape, config, _seed("fd", shape, config.id), log_probs=name == "nll_loss")
    value, grad = fn(x, t, reduction=reduction, return_grad=True, **kw)

    def f(z):
        return float(np.sum(fn(z, t, reduction=reduction, **kw)))

    want = fd_grad(f, x)
    assert_close(
        grad, want, rtol=1e-6, atol=1e-8 * max(1.0, scale_of(want)), what="grad vs finite differences"
    )
    assert_close(np.sum(value), f(x), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# Ignored positions, unbatched inputs, target dtypes


@pytest.mark.parametrize(
    ("name", "eps"),
    [("cross_entropy", 0.0), ("cross_entropy", 0.1), ("nll_loss", 0.0)],
    ids=["ce", "ce_ls", "nll"],
)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2), (3,)], ids=str)
def test_all_positions_ignored(backend, name, eps, shape):
    kw = {"label_smoothing": eps} if eps else {}
    x = np.random.default_rng(1).normal(size=shape)
    t = np.full(pos_shape(shape), 2, dtype=np.int64)
    fn = FNS[name]
    v, g = fn(x, t, ignore_index=2, reduction="mean", return_grad=True, **kw)
    assert np.isnan(v)
    assert g.shape == x.shape
    v, g = fn(x, t, ignore_index=2, reduction="sum", return_grad=True, **kw)
    assert v == 0.0
    np.testing.assert_array_equal(g, np.zeros(shape))
    v, g = fn(x, t, ignore_index=2, reduction="none", return_grad=True, **kw)
    np.testing.assert_array_equal(v, np.zeros(pos_shape(shape)))
    np.testing.assert_array_equal(g, np.zeros(shape))


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("shape", [(4, 3), (3,)], ids=str)
def test_all_positions_ignored_mean_gradient_matches_torch(backend, torch, name, shape):
    """torch: the mean is nan, and its gradient is 0 (no position contributes)."""
    x = np.random.default_rng(2).normal(size=shape)
    t = np.full(pos_shape(shape), -100, dtype=np.int64)
    v, g = FNS[name](x, t, return_grad=True)
    want, want_grad = torch_value_grad(torch, name, x, t, "mean")
    assert np.isnan(v) and np.isnan(want)
    assert_close(g, want_grad, rtol=0, atol=0, what="gradient of an all-ignored mean")


def test_unbatched_equals_batch_of_one(backend):
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=6), rng.uniform(0.5, 2, 6)
    for t in (4, np.int32(4), np.array(4)):
        for reduction in REDUCTIONS:
            v, g = fastloss.cross_entropy(
                x, t, weight=w, label_smoothing=0.2, reduction=reduction, return_grad=True
            )
            vb, gb = fastloss.cross_entropy(
                x[None], np.array([4]), weight=w, label_smoothing=0.2, reduction=reduction, return_grad=True
            )
            assert np.ndim(v) == 0 and g.shape == (6,)
            np.testing.assert_array_equal(v, vb[0] if reduction == "none" else vb)
            np.testing.assert_array_equal(g, gb[0])
    p = rng.random(6)
    np.testing.assert_array_equal(fastloss.cross_entropy(x, p), fastloss.cross_entropy(x[None], p[None]))
    np.testing.assert_array_equal(fastloss.nll_loss(x, 2), fastloss.nll_loss(x[None], [2]))


@pytest.mark.parametrize(
    "tdtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
def test_any_integer_target_dtype(backend, tdtype):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 4, 3))
    y = rng.integers(0, 4, (6, 3))
    w = rng.uniform(0.5, 2.0, 4)
    for name, fn in FNS.items():
        for reduction in REDUCTIONS:
            want = fn(x, y, weight=w, ignore_index=1, reduction=reduction, return_grad=True)
            got = fn(x, y.astype(tdtype), weight=w, ignore_index=1, reduction=reduction, return_grad=True)
            np.testing.assert_array_equal(got[0], want[0], err_msg=f"{name} {reduction}")
            np.testing.assert_array_equal(got[1], want[1], err_msg=f"{name} {reduction}")


def test_ignore_index_numpy_integer(backend):
    x, y = np.random.default_rng(5).normal(size=(5, 4)), np.array([0, 3, 3, 1, 2])
    want = fastloss.cross_entropy(x, y, ignore_index=3)
    assert fastloss.cross_entropy(x, y, ignore_index=np.int64(3)) == want
    assert fastloss.cross_entropy(x, y, ignore_index=np.uint8(3)) == want
    np.testing.assert_allclose(want, ref_cross_entropy(x, y, ignore_index=3), rtol=1e-12)


def test_ignore_index_beyond_int64(backend):
    """An ignore_index no int64 target can equal: the default's result, or a clean error naming it."""
    x, y = np.random.default_rng(6).normal(size=(5, 4)), np.array([0, 3, 3, 1, 2])
    want = fastloss.cross_entropy(x, y)
    for ii in (2**63, -(2**63) - 1):
        try:
            got = fastloss.cross_entropy(x, y, ignore_index=ii)
        except (TypeError, ValueError) as e:
            msg = str(e)
            assert msg.startswith("cross_entropy:") and "ignore_index" in msg, (
                f"ignore_index={ii}: unclear error {type(e).__name__}: {msg[:200]}"
            )
        else:
            assert got == want


# --------------------------------------------------------------------------------------------------
# dtypes and memory layouts


def _all_outputs(x, t, kw, name="cross_entropy"):
    """Every result of fn for (x, t): the three reductions with gradients."""
    out = []
    for reduction in REDUCTIONS:
        v, g = FNS[name](x, t, reduction=reduction, return_grad=True, **kw)
        out += [np.asarray(v), g]
    return out


@pytest.mark.parametrize(
    "config",
    [c for c in CE_CONFIGS if c.id in ("weight_ignore_ls0.1", "prob_weight_ls0.1_raw")],
    ids=lambda c: c.id,
)
def test_float32_is_float64_rounded(backend, config):
    """float32 computes in float64 internally: the float64 result on the same values, rounded once."""
    x, t, kw = make_problem((9, 6, 4), config, _seed("f32", config.id))
    x32 = x.astype(np.float32)
    kw32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    t32 = t.astype(np.float32) if config.prob else t
    kw64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in kw32.items()}
    got = _all_outputs(x32, t32, kw32)
    want = _all_outputs(x32.astype(np.float64), t32.astype(np.float64) if config.prob else t, kw64)
    for a, b in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b.astype(np.float32), rtol=2.5e-7, atol=1e-37)
    for reduction in ("mean", "sum"):
        assert isinstance(fastloss.cross_entropy(x32, t32, reduction=reduction, **kw32), np.float32)


@pytest.mark.parametrize(
    "config",
    [c for c in CE_CONFIGS if c.id in ("plain", "weight_ignore_ls0.1", "ignore3")],
    ids=lambda c: c.id,
)
def test_float32_huge_rows(backend, config):
    """Rows of 2^20 classes and more in float32 take their own path in the compiled driver (the column
    code one position at a time, reading the scores in place): the float64 result, rounded once."""
    x, t, kw = make_problem((3, 2**20 + 3), config, _seed("huge", config.id))
    x[1, 5] = -np.inf  # a class with zero probability
    x32 = x.astype(np.float32)
    kw32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    kw64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in kw32.items()}
    got = _all_outputs(x32, t, kw32)
    want = _all_outputs(x32.astype(np.float64), t, kw64)
    for a, b in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b.astype(np.float32), rtol=2.5e-7, atol=1e-37)


# Every row functor on float32 rows of 2^20+ classes (read in place, the output written over the exps).
HUGE_ROW_CALLS = {
    "softmax_focal_loss": lambda x, t, p, w: fastloss.softmax_focal_loss(x, t, alpha=w, **KW_GRAD),
    "poly1_cross_entropy": lambda x, t, p, w: fastloss.poly1_cross_entropy(x, t, epsilon=0.5, **KW_GRAD),
    "cross_entropy_prob": lambda x, t, p, w: fastloss.cross_entropy(
        x, p, weight=w, label_smoothing=0.1, **KW_GRAD
    ),
    "nll_loss": lambda x, t, p, w: fastloss.nll_loss(x, t, weight=w, **KW_GRAD),
    "multiclass_hinge_ww": lambda x, t, p, w: fastloss.multiclass_hinge(x, t, p=2, weight=w, **KW_GRAD),
    "multiclass_hinge_cs": lambda x, t, p, w: fastloss.multiclass_hinge(
        x, t, weight=w, method="crammer_singer", **KW_GRAD
    ),
    "softmax": lambda x, t, p, w: fastloss.softmax(x),
    "log_softmax": lambda x, t, p, w: fastloss.log_softmax(x),
    "logsumexp": lambda x, t, p, w: fastloss.logsumexp(x),
}
KW_GRAD = {"reduction": "none", "return_grad": True}


@pytest.mark.parametrize("name", sorted(HUGE_ROW_CALLS))
def test_float32_huge_rows_row_functors(backend, name):
    """float32 rows of 2^20 classes and more are read in place by the row functors too: the float64 result
    on the same values, rounded once (an ignored row included)."""
    rng = np.random.default_rng(_seed("huge_rows", name))
    n, c = 3, 2**20 + 3
    x = (3.0 * rng.standard_normal((n, c))).astype(np.float32)
    x[1, 5] = -np.inf  # a class with zero probability
    t = np.array([7, 2 if "hinge" in name else -100, c - 1])  # the hinge has no ignore_index
    p = rng.random((n, c)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    w = rng.uniform(0.5, 2.0, c).astype(np.float32)
    got = HUGE_ROW_CALLS[name](x, t, p, w)
    want = HUGE_ROW_CALLS[name](x.astype(np.float64), t, p.astype(np.float64), w.astype(np.float64))
    for a, b in zip(*((r,) if isinstance(r, np.ndarray) else r for r in (got, want))):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, np.asarray(b).astype(np.float32), rtol=2.5e-7, atol=1e-37)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(HUGE_ROW_CALLS))
def test_huge_strided_rows(backend, name, dtype):
    """2^20+ classes along a leading axis (channel-first scores, an activation over axis 0) are gathered
    in their own type, one position at a time: the same as the contiguous rows, transposed."""
    rng = np.random.default_rng(_seed("huge_strided", name))
    n, c = 3, 2**20 + 3
    x = (3.0 * rng.standard_normal((n, c))).astype(dtype)
    x[1, 5] = -np.inf
    t = np.array([7, 2 if "hinge" in name else -100, c - 1])
    p = rng.random((n, c)).astype(dtype)
    p /= p.sum(axis=1, keepdims=True)
    w = rng.uniform(0.5, 2.0, c).astype(dtype)
    want = HUGE_ROW_CALLS[name](x, t, p, w)
    want = (want,) if isinstance(want, np.ndarray) else want
    if name in ("softmax", "log_softmax", "logsumexp"):
        got = (getattr(fastloss, name)(np.ascontiguousarray(x.T), axis=0),)
        want = tuple(np.asarray(v).T for v in want)
    else:  # (1, C, n) scores, (1, n) targets
        xt, pt = (np.ascontiguousarray(a.T)[None] for a in (x, p))
        got = HUGE_ROW_CALLS[name](xt, t[None], pt, w)
        want = tuple(np.asarray(v).T[None] for v in want)
    # The compiled driver runs the same functor on the same row: bitwise. The NumPy backend sums a layout
    # in its own order (gradients of probability targets cancel).
    rtol, atol = (2.5e-7, 1e-12) if dtype == np.float32 else (1e-13, 1e-16)
    for a, b in zip(got, want):
        assert a.dtype == dtype
        if backend == "cpp":
            np.testing.assert_array_equal(a, np.reshape(b, a.shape))
        else:
            np.testing.assert_allclose(a, np.reshape(b, a.shape), rtol=rtol, atol=atol)


def test_float16_and_integer_scores(backend):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 4)).astype(np.float16)
    y = np.array([0, 1, 2, 3, 0])
    got = fastloss.cross_entropy(x, y, reduction="none", return_grad=True)
    want = fastloss.cross_entropy(x.astype(np.float32), y, reduction="none", return_grad=True)
    assert got[0].dtype == np.float32 and got[1].dtype == np.float32
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert fastloss.softmax(x).dtype == np.float32
    np.testing.assert_array_equal(
        fastloss.log_softmax(x, axis=0), fastloss.log_softmax(x.astype(np.float32), axis=0)
    )
    xi = rng.integers(-5, 5, (5, 4))
    got = fastloss.cross_entropy(xi, y, return_grad=True)
    want = fastloss.cross_entropy(xi.astype(np.float64), y, return_grad=True)
    assert isinstance(got[0], np.float64) and got[1].dtype == np.float64
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(fastloss.nll_loss(xi, y), fastloss.nll_loss(xi.astype(np.float64), y))
    np.testing.assert_array_equal(
        fastloss.logsumexp(xi, axis=0), fastloss.logsumexp(xi.astype(np.float64), axis=0)
    )


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


@pytest.mark.parametrize("kind", ["fortran", "strided", "reversed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(7, 5), (2, 5, 4, 3)], ids=str)
def test_noncontiguous_inputs_same_as_contiguous(backend, shape, dtype, kind):
    for config in (Config("i", weight=True, ignore=3, eps=0.1), Config("p", prob=True, weight=True, eps=0.1)):
        x, t, kw = make_problem(shape, config, _seed("layout", shape, config.id))
        x = x.astype(dtype)
        want = _all_outputs(x, t, kw)
        got = _all_outputs(
            _strided(x, kind), _strided(np.asarray(t), kind), dict(kw, weight=_strided(kw["weight"], kind))
        )
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b, err_msg=config.id)
    x, t, kw = make_problem(shape, Config("n", weight=True, ignore=-100), 0, log_probs=True)
    np.testing.assert_array_equal(
        _all_outputs(_strided(x.astype(dtype), kind), _strided(t, kind), kw, "nll_loss")[1],
        _all_outputs(x.astype(dtype), t, kw, "nll_loss")[1],
    )
    for fn in (fastloss.softmax, fastloss.log_softmax, fastloss.logsumexp):
        for axis in range(x.ndim):
            np.testing.assert_array_equal(
                fn(_strided(x.astype(dtype), kind), axis=axis), fn(x.astype(dtype), axis=axis)
            )


# --------------------------------------------------------------------------------------------------
# 3. Activations against scipy.special


ACT_SHAPES = [(6,), (3, 5), (2, 3, 4), (2, 3, 1, 4)]


def act_tols(dtype, x):
    if np.dtype(dtype) == np.float32:
        return 2.5e-7, 1e-37
    return 1e-12, 1e-14 * (1.0 + scale_of(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=str)
def test_activations_match_scipy(backend, scipy_special, shape, dtype):
    x = np.random.default_rng(_seed("act", shape)).normal(0.0, 4.0, shape).astype(dtype)
    x64 = x.astype(np.float64)
    rtol, atol = act_tols(dtype, x)
    pairs = [
        (fastloss.softmax, scipy_special.softmax),
        (fastloss.log_softmax, scipy_special.log_softmax),
        (fastloss.logsumexp, scipy_special.logsumexp),
    ]
    for fn, ref in pairs:
        for axis in range(-x.ndim, x.ndim):
            got = fn(x, axis=axis)
            assert got.dtype == dtype, fn.__name__
            assert_close(got, ref(x64, axis=axis), rtol=rtol, atol=atol, what=f"{fn.__name__} axis={axis}")
        assert_close(fn(x), ref(x64, axis=-1), rtol=rtol, atol=atol, what=f"{fn.__name__} default axis")
    got = fastloss.sigmoid(x)
    assert got.dtype == dtype and got.shape == x.shape
    assert_close(got, scipy_special.expit(x64), rtol=5e-6 if dtype == np.float32 else 1e-13, atol=1e-300)


EXTREME_ROWS = np.array(
    [
        [1000.0, -1000.0, 0.0, 1.0],
        [-1000.0, -1000.0, -1000.0, -1000.0],
        [1000.0, 1000.0, 999.0, -np.inf],
        [710.0, 709.0, 0.0, -710.0],
        [-np.inf, -np.inf, -np.inf, -np.inf],
        [-np.inf, 0.0, -np.inf, 1.0],
        [np.nan, 0.0, 1.0, 2.0],
        [0.0, -np.inf, np.nan, 5.0],
        [1e-300, -1e-300, 0.0, 5e-324],
    ]
)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("transpose", [False, True], ids=["rows", "columns"])
def test_activations_extreme_values(backend, scipy_special, dtype, transpose):
    x = EXTREME_ROWS.astype(dtype)
    axis = -1
    if transpose:
        x, axis = np.ascontiguousarray(x.T), 0
    with np.errstate(all="ignore"):
        x64 = x.astype(np.float64)
        refs = {
            "softmax": scipy_special.softmax(x64, axis=axis),
            "log_softmax": scipy_special.log_softmax(x64, axis=axis),
            "logsumexp": scipy_special.logsumexp(x64, axis=axis),
        }
    rtol, atol = act_tols(dtype, x[np.isfinite(x)])
    for name, want in refs.items():
        got = getattr(fastloss, name)(x, axis=axis)
        assert_close(got, want, rtol=rtol, atol=atol, what=name)
    lse = fastloss.logsumexp(x, axis=axis)
    assert lse[4] == -np.inf  # a row of -inf
    assert np.isnan(lse[6]) and np.isnan(lse[7])  # NaN propagates
    assert np.isfinite(lse[[0, 1, 2, 3, 5, 8]]).all()  # no overflow, no underflow to -inf
    np.testing.assert_allclose(lse[[0, 2]], [1000.0, 1000.0 + np.log1p(1 + np.exp(-1.0))], rtol=1e-7)
    sm = fastloss.softmax(x, axis=axis)
    rows = sm if axis == -1 else sm.T
    assert np.isnan(rows[[6, 7]]).all()
    np.testing.assert_allclose(np.sum(rows[[0, 1, 2, 3, 5, 8]], axis=1), 1.0, rtol=1e-6)
    with np.errstate(all="ignore"):
        s = np.array([-1000.0, -750.0, -30.0, 0.0, 30.0, 750.0, 1000.0, np.inf, -np.inf, np.nan]).astype(
            dtype
        )
        assert_close(fastloss.sigmoid(s), scipy_special.expit(s.astype(np.float64)), rtol=5e-6, atol=1e-300)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_activations_with_positive_infinity_match_scipy(backend, scipy_special, name):
    x = np.array([[np.inf, 1.0, 2.0], [np.inf, np.inf, 0.0], [np.inf, -np.inf, 0.0]])
    with np.errstate(all="ignore"):
        want = getattr(scipy_special, name)(x, axis=1)
    assert_close(getattr(fastloss, name)(x, axis=1), want, rtol=0, atol=0, what=name)


def test_activations_empty(backend):
    assert fastloss.softmax(np.zeros((0, 5))).shape == (0, 5)
    assert fastloss.log_softmax(np.zeros((3, 0)), axis=0).shape == (3, 0)
    assert fastloss.logsumexp(np.zeros((0, 5))).shape == (0,)
    assert fastloss.logsumexp(np.zeros((2, 0, 4)), axis=2).shape == (2, 0)
    assert fastloss.sigmoid(np.zeros((0, 3))).shape == (0, 3)


# --------------------------------------------------------------------------------------------------
# 5. Errors, empty inputs, immutability


X45 = np.zeros((4, 5))
Y4 = np.array([0, 1, 2, 3])

ERROR_CASES = [
    # (id, callable, exception, match)
    (
        "ce_target_out_of_range_seg",
        lambda: fastloss.cross_entropy(np.zeros((2, 5, 3)), np.array([[0, 1, 2], [3, 4, 7]])),
        ValueError,
        re.escape(
            "cross_entropy: target must be a class index in [0, 5) or ignore_index=-100; "
            "found target[1, 2] = 7"
        ),
    ),
    (
        "ce_target_first_bad",
        lambda: fastloss.cross_entropy(np.zeros((2, 5, 3)), np.array([[0, -1, 2], [3, 4, 7]])),
        ValueError,
        re.escape("found target[0, 1] = -1"),
    ),
    (
        "ce_target_negative_2d",
        lambda: fastloss.cross_entropy(X45, np.array([0, 1, -101, 3])),
        ValueError,
        re.escape("[0, 5) or ignore_index=-100; found target[2] = -101"),
    ),
    (
        "ce_target_is_C",
        lambda: fastloss.cross_entropy(X45, np.array([0, 5, 1, 3]), ignore_index=3),
        ValueError,
        re.escape("[0, 5) or ignore_index=3; found target[1] = 5"),
    ),
    (
        "ce_unbatched_out_of_range",
        lambda: fastloss.cross_entropy(np.zeros(5), 7),
        ValueError,
        re.escape("found target = 7"),
    ),
    (
        "nll_target_out_of_range",
        lambda: fastloss.nll_loss(X45, np.array([0, 1, 5, 3])),
        ValueError,
        re.escape(
            "nll_loss: target must be a class index in [0, 5) or ignore_index=-100; found target[2] = 5"
        ),
    ),
    (
        "ce_prob_above_one",
        lambda: fastloss.cross_entropy(X45, np.full((4, 5), 0.2) + np.eye(4, 5)),
        ValueError,
        r"\[0, 1\]",
    ),
    ("ce_prob_negative", lambda: fastloss.cross_entropy(X45, -np.eye(4, 5)), ValueError, r"\[0, 1\]"),
    (
        "ce_prob_wrong_shape",
        lambda: fastloss.cross_entropy(X45, np.zeros((4, 6))),
        ValueError,
        r"\(4, 5\).*\(4, 6\)|\(4, 6\).*\(4, 5\)",
    ),
    (
        "ce_index_wrong_shape",
        lambda: fastloss.cross_entropy(X45, np.array([0, 1, 2])),
        ValueError,
        r"\(4,\).*\(3,\)|\(3,\).*\(4,\)",
    ),
    (
        "ce_index_wrong_shape_seg",
        lambda: fastloss.cross_entropy(np.zeros((2, 5, 3)), np.zeros((2, 5), dtype=int)),
        ValueError,
        r"\(2, 3\).*\(2, 5\)|\(2, 5\).*\(2, 3\)",
    ),
    (
        "nll_index_wrong_shape",
        lambda: fastloss.nll_loss(X45, np.zeros((4, 1), dtype=int)),
        ValueError,
        r"\(4,\).*\(4, 1\)|\(4, 1\).*\(4,\)",
    ),
    ("ce_bool_target", lambda: fastloss.cross_entropy(X45, Y4 > 1), TypeError, "target"),
    ("nll_bool_target", lambda: fastloss.nll_loss(X45, Y4 > 1), TypeError, "target"),
    ("nll_float_target", lambda: fastloss.nll_loss(X45, np.full((4, 5), 0.2)), TypeError, "target"),
    ("nll_float_index_target", lambda: fastloss.nll_loss(X45, Y4.astype(float)), TypeError, "target"),
    ("ce_weight_short", lambda: fastloss.cross_entropy(X45, Y4, weight=np.ones(4)), ValueError, "weight"),
    ("ce_weight_2d", lambda: fastloss.cross_entropy(X45, Y4, weight=np.ones((1, 5))), ValueError, "weight"),
    ("ce_weight_scalar", lambda: fastloss.cross_entropy(X45, Y4, weight=1.0), ValueError, "weight"),
    ("nll_weight_long", lambda: fastloss.nll_loss(X45, Y4, weight=np.ones(6)), ValueError, "weight"),
    (
        "ce_weight_short_prob",
        lambda: fastloss.cross_entropy(X45, np.full((4, 5), 0.2), weight=np.ones(4)),
        ValueError,
        "weight",
    ),
    (
        "ce_ls_negative",
        lambda: fastloss.cross_entropy(X45, Y4, label_smoothing=-0.1),
        ValueError,
        "label_smoothing",
    ),
    (
        "ce_ls_above_one",
        lambda: fastloss.cross_entropy(X45, Y4, label_smoothing=1.5),
        ValueError,
        "label_smoothing",
    ),
    (
        "ce_ls_nan",
        lambda: fastloss.cross_entropy(X45, Y4, label_smoothing=float("nan")),
        ValueError,
        "label_smoothing",
    ),
    ("ce_reduction", lambda: fastloss.cross_entropy(X45, Y4, reduction="avg"), ValueError, "reduction"),
    ("nll_reduction", lambda: fastloss.nll_loss(X45, Y4, reduction="MEAN"), ValueError, "reduction"),
    ("ce_ignore_float", lambda: fastloss.cross_entropy(X45, Y4, ignore_index=3.0), TypeError, "ignore_index"),
    ("ce_ignore_bool", lambda: fastloss.cross_entropy(X45, Y4, ignore_index=True), TypeError, "ignore_index"),
    ("nll_ignore_str", lambda: fastloss.nll_loss(X45, Y4, ignore_index="3"), TypeError, "ignore_index"),
    ("ce_no_classes", lambda: fastloss.cross_entropy(np.zeros((4, 0)), Y4), ValueError, "C = 0|class"),
    (
        "ce_no_classes_prob",
        lambda: fastloss.cross_entropy(np.zeros((4, 0)), np.zeros((4, 0))),
        ValueError,
        "C = 0|class",
    ),
    ("ce_no_classes_unbatched", lambda: fastloss.cross_entropy(np.zeros(0), 0), ValueError, "C = 0|class"),
    (
        "nll_no_classes",
        lambda: fastloss.nll_loss(np.zeros((4, 0, 2)), np.zeros((4, 2), dtype=int)),
        ValueError,
        "C = 0|class",
    ),
    ("softmax_axis", lambda: fastloss.softmax(X45, axis=2), ValueError, "axis"),
    ("log_softmax_axis", lambda: fastloss.log_softmax(X45, axis=-3), ValueError, "axis"),
    ("logsumexp_axis", lambda: fastloss.logsumexp(np.zeros(3), axis=1), ValueError, "axis"),
    ("softmax_empty_axis", lambda: fastloss.softmax(np.zeros((3, 0))), ValueError, "length 0|axis"),
    (
        "logsumexp_empty_axis",
        lambda: fastloss.logsumexp(np.zeros((0, 3)), axis=0),
        ValueError,
        "length 0|axis",
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors(backend, case):
    _, call, exc, match = case
    with pytest.raises(exc, match=match):
        call()


def test_target_error_position_across_tiles(backend):
    x = np.zeros((1000, 5))
    y = np.zeros(1000, dtype=np.int64)
    y[[900, 310, 300]] = [9, 8, 7]
    with pytest.raises(ValueError, match=re.escape("found target[300] = 7")):
        fastloss.cross_entropy(x, y, return_grad=True)
    with pytest.raises(ValueError, match=re.escape("found target[300] = 7")):
        fastloss.nll_loss(x, y, reduction="none")


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "cross_entropy_prob"])
@pytest.mark.parametrize("shape", [(0, 5), (0, 5, 3), (2, 5, 0)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_empty_positions(backend, name, shape, dtype):
    x = np.zeros(shape, dtype=dtype)
    prob = name == "cross_entropy_prob"
    t = np.zeros(shape, dtype=dtype) if prob else np.zeros(pos_shape(shape), dtype=np.int64)
    fn = fastloss.nll_loss if name == "nll_loss" else fastloss.cross_entropy
    kw = {"weight": np.ones(5, dtype=dtype)}
    v, g = fn(x, t, reduction="mean", return_grad=True, **kw)
    assert np.isnan(v) and np.asarray(v).dtype == dtype
    assert g.shape == shape and g.dtype == dtype
    v, g = fn(x, t, reduction="sum", return_grad=True, **kw)
    assert v == 0.0 and np.asarray(v).dtype == dtype and g.shape == shape
    v, g = fn(x, t, reduction="none", return_grad=True, **kw)
    assert v.shape == pos_shape(shape) and v.dtype == dtype and g.shape == shape


def _snapshot(objs):
    return [(a.copy(), a.flags.writeable, a.strides) for a in objs]


@pytest.mark.parametrize("layout", ["contiguous", "reversed"])
def test_inputs_not_modified(backend, layout):
    rng = np.random.default_rng(8)
    for dtype in DTYPES:
        x = rng.normal(size=(6, 5, 3)).astype(dtype)
        p = rng.random((6, 5, 3)).astype(dtype)
        y = rng.integers(0, 5, (6, 3))
        y[0, 0] = -100
        w = rng.uniform(0.5, 2.0, 5).astype(dtype)
        if layout == "reversed":
            x, p, y, w = (_strided(a, "reversed") for a in (x, p, y, w))
        arrays = [x, p, y, w]
        before = _snapshot(arrays)
        for reduction in REDUCTIONS:
            fastloss.cross_entropy(x, y, weight=w, label_smoothing=0.1, reduction=reduction, return_grad=True)
            fastloss.cross_entropy(x, p, weight=w, label_smoothing=0.1, reduction=reduction, return_grad=True)
            fastloss.nll_loss(x, y, weight=w, reduction=reduction, return_grad=True)
        for fn in (fastloss.softmax, fastloss.log_softmax, fastloss.logsumexp):
            fn(x, axis=1)
        fastloss.sigmoid(x)
        for a, (copy, writeable, strides) in zip(arrays, before):
            np.testing.assert_array_equal(a, copy)
            assert a.flags.writeable == writeable and a.strides == strides
    xl = [[1.0, 2.0], [3.0, -1.0]]
    fastloss.cross_entropy(xl, [0, 1])
    assert xl == [[1.0, 2.0], [3.0, -1.0]]


def test_results_are_fresh_arrays(backend):
    """Outputs never alias an input: writing to them leaves the inputs as they were."""
    x = np.random.default_rng(9).normal(size=(4, 3))
    keep = x.copy()
    for out in (
        fastloss.softmax(x),
        fastloss.log_softmax(x),
        fastloss.cross_entropy(x, [0, 1, 2, 0], return_grad=True)[1],
    ):
        assert not np.shares_memory(out, x)
        out[...] = 0.0
    np.testing.assert_array_equal(x, keep)


# --------------------------------------------------------------------------------------------------
# 6. Determinism across thread counts (compiled backend)


DET_SHAPES = [(3000, 37), (4, 21, 33, 17)]


def _det_outputs(x, y, p, w):
    out = []
    for reduction in REDUCTIONS:
        for v, g in (
            fastloss.cross_entropy(
                x, y, weight=w, ignore_index=2, label_smoothing=0.1, reduction=reduction, return_grad=True
            ),
            fastloss.cross_entropy(x, y, reduction=reduction, return_grad=True),
            fastloss.cross_entropy(
                x, p, weight=w, label_smoothing=0.1, reduction=reduction, return_grad=True
            ),
            fastloss.nll_loss(x, y, weight=w, ignore_index=2, reduction=reduction, return_grad=True),
        ):
            out += [np.asarray(v).tobytes(), g.tobytes()]
    for fn in (fastloss.softmax, fastloss.log_softmax, fastloss.logsumexp):
        for axis in (0, 1, -1):
            out.append(fn(x, axis=axis).tobytes())
    return out


@pytest.mark.cpp_only
@needs_core
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", DET_SHAPES, ids=str)
def test_bitwise_identical_for_any_thread_count(shape, dtype):
    rng = np.random.default_rng(_seed("det", shape))
    x = rng.normal(0.0, 3.0, shape).astype(dtype)
    y = rng.integers(0, shape[1], pos_shape(shape))
    p = rng.random(shape).astype(dtype)
    w = rng.uniform(0.5, 2.0, shape[1]).astype(dtype)
    with fastloss.use_backend("cpp"):
        with fastloss.num_threads(1):
            want = _det_outputs(x, y, p, w)
        for n in (2, 3):
            with fastloss.num_threads(n):
                got = _det_outputs(x, y, p, w)
            for i, (a, b) in enumerate(zip(got, want)):
                assert a == b, f"output {i} with {n} threads differs from 1 thread"
        assert _det_outputs(x, y, p, w) == want  # the default thread count too


# --------------------------------------------------------------------------------------------------
# 4. Properties (hypothesis)


hypothesis = optional_module("hypothesis")
hnp = optional_module("hypothesis.extra.numpy")

if hypothesis is None or hnp is None:

    def test_properties_need_hypothesis():
        pytest.skip("hypothesis is not importable")

else:
    st = hypothesis.strategies
    SETTINGS = hypothesis_settings(40)

    @st.composite
    def class_problems(draw, allow_prob=True):
        """(name, x, target, kwargs): a cross_entropy or nll_loss problem of random shape and options."""
        dtype = draw(st.sampled_from(DTYPES))
        C = draw(st.integers(1, 6))
        if draw(st.integers(0, 5)) == 0:
            shape = (C,)
        else:
            spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
            shape = (draw(st.integers(1, 5)), C) + spatial
        x = draw(hnp.arrays(np.float64, shape, elements=st.floats(-20.0, 20.0))).astype(dtype)
        name = draw(st.sampled_from(["cross_entropy", "nll_loss"]))
        kw = {}
        if draw(st.booleans()):
            kw["weight"] = draw(hnp.arrays(np.float64, (C,), elements=st.floats(0.1, 5.0))).astype(dtype)
        if name == "cross_entropy" and allow_prob and draw(st.booleans()):
            t = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0))).astype(dtype)
        else:
            ps = pos_shape(shape)
            t = np.asarray(draw(hnp.arrays(np.int64, ps, elements=st.integers(0, C - 1))))
            ii = draw(st.sampled_from([-100, 0, C - 1, 3]))
            t = np.where(draw(hnp.arrays(np.bool_, ps)), ii, t)
            if ii != -100 or draw(st.booleans()):
                kw["ignore_index"] = ii
        if name == "cross_entropy":
            eps = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
            if eps or draw(st.booleans()):
                kw["label_smoothing"] = eps
        return name, x, t, kw

    def mean_denominator(x, t, kw):
        if t.dtype.kind == "f":
            return float(np.prod(pos_shape(x.shape)))
        y = t.reshape(-1)
        keep = y != kw.get("ignore_index", -100)
        w = np.ones(n_classes(x.shape)) if kw.get("weight") is None else kw["weight"].astype(np.float64)
        return float(np.sum(w[y[keep]]))

    def prop_tols(x, kw, magnitude):
        """(rtol, atol) between two computations of the same quantity of size `magnitude`."""
        wmax = 1.0 if kw.get("weight") is None else float(np.max(kw["weight"]))
        atol = 1e-13 * (1.0 + scale_of(x)) * (1.0 + wmax) * max(1, x.size) + 1e-13 * magnitude
        if x.dtype == np.float32:  # each side rounded once to float32 (plus the float64 differences)
            return 5e-7, atol + 2e-7 * magnitude
        return 1e-12, atol

    @needs_core
    @SETTINGS
    @hypothesis.given(problem=class_problems(), reduction=st.sampled_from(REDUCTIONS))
    def test_backends_agree(problem, reduction):
        name, x, t, kw = problem
        res = {}
        for be in ("cpp", "numpy"):
            with fastloss.use_backend(be):
                res[be] = FNS[name](x, t, reduction=reduction, return_grad=True, **kw)
        (v1, g1), (v2, g2) = res["cpp"], res["numpy"]
        assert np.asarray(v1).dtype == np.asarray(v2).dtype == x.dtype
        assert g1.dtype == g2.dtype == x.dtype
        rtol, atol = prop_tols(x, kw, float(np.nansum(np.abs(v2))))
        assert_close(v1, v2, rtol=rtol, atol=atol, what=f"{name} value")
        rtol, atol = prop_tols(x, kw, scale_of(g2))
        assert_close(g1, g2, rtol=rtol, atol=atol, what=f"{name} grad")

    @needs_core
    @SETTINGS
    @hypothesis.given(
        x=hnp.arrays(
            st.sampled_from([np.float32, np.float64]),
            hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5),
            elements=st.floats(-50.0, 50.0, width=32),
        ),
        data=st.data(),
    )
    def test_backends_agree_activations(x, data):
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
        for fn in (fastloss.softmax, fastloss.log_softmax, fastloss.logsumexp):
            with fastloss.use_backend("cpp"):
                a = fn(x, axis=axis)
            with fastloss.use_backend("numpy"):
                b = fn(x, axis=axis)
            assert a.dtype == b.dtype == x.dtype
            rtol, atol = (5e-7, 1e-37) if x.dtype == np.float32 else (1e-12, 1e-13 * (1.0 + scale_of(x)))
            assert_close(a, b, rtol=rtol, atol=atol, what=fn.__name__)

    @SETTINGS
    @hypothesis.given(problem=class_problems())
    def test_reductions_consistent(backend, problem):
        """sum == sum of none; mean == sum / (sum of w_y over counted positions, or number of positions);
        the gradients likewise ('none' returns the gradient of the sum of its outputs)."""
        name, x, t, kw = problem
        fn = FNS[name]
        none, g_none = fn(x, t, reduction="none", return_grad=True, **kw)
        total, g_sum = fn(x, t, reduction="sum", return_grad=True, **kw)
        mean, g_mean = fn(x, t, reduction="mean", return_grad=True, **kw)
        assert np.shape(none) == pos_shape(x.shape)
        mag = float(np.sum(np.abs(none.astype(np.float64))))
        rtol, atol = prop_tols(x, kw, mag)
        assert_close(total, np.sum(none.astype(np.float64)), rtol=rtol, atol=atol, what="sum vs none")
        denom = mean_denominator(x, t, kw)
        with np.errstate(invalid="ignore", divide="ignore"):
            want_mean = np.float64(total) / np.float64(denom)
            want_g_mean = g_sum.astype(np.float64) / np.float64(denom)
        rtol, atol = prop_tols(x, kw, mag / denom if denom else 0.0)
        assert_close(mean, want_mean, rtol=rtol, atol=atol, what="mean vs sum / sum(w_y)")
        rtol, atol = prop_tols(x, kw, scale_of(g_sum))
        assert_close(g_none, g_sum, rtol=rtol, atol=atol, what="grad none vs sum")
        if denom:
            rtol, atol = prop_tols(x, kw, scale_of(want_g_mean))
            assert_close(
                g_mean, want_g_mean, rtol=rtol, atol=atol, what="grad mean vs grad sum / denominator"
            )


@pytest.mark.parametrize("dtype", DTYPES)
def test_confident_rows_keep_relative_accuracy(backend, dtype):
    """A confident row's log-probability of its top class is tiny: computed as x - lse it would cancel
    (lse's rounding is an ulp of the max). It must equal -log1p(sum of the others' exp(x - max))."""
    xs = np.array([[-0.8686629, -10.0, 0.25, 28.074219, 0.0], [40.0, 1.0, 2.0, -3.0, 0.5]]).astype(dtype)
    x = xs.astype(np.float64)  # the reference works on exactly the values the kernel sees
    top = np.argmax(x, axis=1)
    others = np.where(np.arange(5) == top[:, None], 0.0, np.exp(x - x.max(axis=1)[:, None]))
    exact = -np.log1p(others.sum(axis=1))  # float64, no cancellation
    got_ls = fastloss.log_softmax(xs)[np.arange(2), top]
    got_ce = fastloss.cross_entropy(xs, top, reduction="none")
    # float32 results are the float64 ones rounded once
    rtol = 1e-13 if dtype == np.float64 else 2**-24
    np.testing.assert_allclose(got_ls, exact.astype(dtype), rtol=rtol)
    np.testing.assert_allclose(got_ce, (-exact).astype(dtype), rtol=rtol)
