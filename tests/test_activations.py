"""softmax, log_softmax, logsumexp and sigmoid against SciPy, at extreme values and +inf, and empty."""

from __future__ import annotations

import numpy as np
import pytest
from _classwise import (
    _seed,
    scale_of,
)
from conftest import DTYPES, assert_close

import fastloss

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
