"""Class-wise numerics: float32 against float64, huge and strided rows, confident rows, and bitwise
identical results for any thread count on large class-wise problems."""

from __future__ import annotations

import numpy as np
import pytest
from _classwise import (
    CE_CONFIGS,
    FNS,
    Config,
    _seed,
    _strided,
    make_problem,
    pos_shape,
)
from conftest import DTYPES, REDUCTIONS, needs_core

import fastloss

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
