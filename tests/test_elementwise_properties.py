"""Property-based tests (hypothesis): random shapes, dtypes, strides and weights.

Empty inputs are covered by explicit tests in test_elementwise_inputs.py; here every side is >= 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CASE_BY_ID, CASE_IDS, HAVE_CORE, float_compute, split_grad

import fastloss

hypothesis = pytest.importorskip("hypothesis")
hnp = pytest.importorskip("hypothesis.extra.numpy")
st = hypothesis.strategies
given, settings, HealthCheck = hypothesis.given, hypothesis.settings, hypothesis.HealthCheck

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Per-input element strategies (float64 values, cast afterwards), by the loss's input kind.
REAL = st.floats(-20.0, 20.0, allow_nan=False, allow_infinity=False)
PM1 = st.sampled_from([-1.0, 1.0])
UNIT = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))
PROB = st.floats(0.001, 0.999)
LOGIT = st.floats(-30.0, 30.0, allow_nan=False)
ELEMENTS = {
    "hinge": (REAL, PM1),
    "hinge_m0.5": (REAL, PM1),
    "hinge_sq": (REAL, PM1),
    "bce": (PROB, UNIT),
    "bce_logits": (LOGIT, UNIT),
    "bce_logits_pw": (LOGIT, UNIT),
    "focal": (LOGIT, UNIT),
    "focal_a-1_g0.5": (LOGIT, UNIT),
    "focal_g0": (LOGIT, UNIT),
    "margin_ranking": (REAL, REAL, PM1),
    "margin_ranking_m0.3": (REAL, REAL, PM1),
}


@st.composite
def strided(draw, shape, elements, dtype):
    """An array of `shape` and `dtype`, possibly a strided and/or reversed view of a larger one."""
    step = draw(st.sampled_from([1, 2, 3]))
    reverse = draw(st.booleans())
    if not shape:
        return np.asarray(draw(elements), dtype=dtype)
    base_shape = (shape[0] * step,) + tuple(shape[1:])
    base = draw(hnp.arrays(np.float64, base_shape, elements=elements)).astype(dtype)
    view = base[::step]
    if reverse:
        view = view[::-1]
    if draw(st.booleans()) and view.ndim >= 2:
        view = np.asfortranarray(view)
    return view


@st.composite
def problems(draw, case_ids=CASE_IDS):
    """(case, args, extras, weight, dtype) with random shape, dtype, layout and weight."""
    case = CASE_BY_ID[draw(st.sampled_from(case_ids))]
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    elems = ELEMENTS.get(case.id, (REAL, REAL))
    args = tuple(draw(strided(shape, e, dtype)) for e in elems)
    extras = {}
    if case.id == "bce_logits_pw":
        pw_shape = draw(st.sampled_from([(), shape, shape[-1:]]))
        extras["pos_weight"] = draw(hnp.arrays(np.float64, pw_shape, elements=st.floats(0.1, 10.0))).astype(
            dtype
        )
    kind = draw(st.sampled_from(["none", "scalar", "full", "broadcast"]))
    if kind == "none":
        weight = None
    elif kind == "scalar":
        weight = draw(st.floats(0.1, 10.0))
    else:
        wshape = shape
        if kind == "broadcast":
            keep = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
            wshape = tuple(s if k else 1 for s, k in zip(shape, keep))
            wshape = wshape[draw(st.integers(0, len(wshape))) :]  # drop leading dims
        weight = draw(strided(wshape, st.floats(0.1, 10.0), dtype))
    return case, args, extras, weight, np.dtype(dtype)


def _broadcast_weight(weight, shape, dtype):
    w = np.ones(shape) if weight is None else np.asarray(weight, dtype)
    return np.broadcast_to(w, shape).astype(np.float64)


def _tols(dtype, case=None):
    """(rtol, atol); float32 logistic losses compute in float32 on the compiled backend."""
    if dtype == np.float32:
        return (5e-6, 1e-6) if case is not None and float_compute(case) else (1e-6, 1e-6)
    return 1e-11, 1e-13


@pytest.mark.cpp_only
@pytest.mark.skipif(not HAVE_CORE, reason="compiled backend unavailable")
@SETTINGS
@given(problems(), st.sampled_from(["mean", "sum", "none"]))
def test_cpp_matches_numpy(problem, reduction):
    case, args, extras, weight, dtype = problem
    out = {}
    for name in ("cpp", "numpy"):
        with fastloss.use_backend(name):
            out[name] = case.call(args, extras, weight=weight, reduction=reduction, return_grad=True)
    rtol, atol = _tols(dtype, case)
    (vc, gc), (vn, gn) = out["cpp"], out["numpy"]
    assert np.asarray(vc).dtype == dtype == np.asarray(vn).dtype
    np.testing.assert_allclose(vc, vn, rtol=rtol, atol=atol)
    for a, b in zip(split_grad(case, gc), split_grad(case, gn)):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape == args[0].shape
        scale = max(1.0, float(np.max(np.abs(b))))  # derivatives that are differences cancel
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale)


@pytest.fixture(params=["cpp", "numpy"])
def any_backend(request):
    if request.param == "cpp" and not HAVE_CORE:
        pytest.skip("compiled backend unavailable")
    return request.param


@SETTINGS
@given(problem=problems())
def test_reductions_agree(any_backend, problem):
    case, args, extras, weight, dtype = problem
    with fastloss.use_backend(any_backend):
        none, g_none = case.call(args, extras, weight=weight, reduction="none", return_grad=True)
        total, g_sum = case.call(args, extras, weight=weight, reduction="sum", return_grad=True)
        mean, g_mean = case.call(args, extras, weight=weight, reduction="mean", return_grad=True)
    shape = args[0].shape
    assert none.shape == shape and none.dtype == dtype
    assert type(total) is dtype.type and type(mean) is dtype.type
    rtol, atol = _tols(dtype)
    # sum == none.sum() (none holds w * l rounded to the dtype; sum accumulates in float64)
    np.testing.assert_allclose(total, np.sum(none.astype(np.float64)), rtol=rtol, atol=atol)
    wsum = float(np.sum(_broadcast_weight(weight, shape, dtype)))
    # mean == sum / sum(w)
    np.testing.assert_allclose(mean, float(total) / wsum, rtol=rtol, atol=atol)
    for gn, gs, gm in zip(split_grad(case, g_none), split_grad(case, g_sum), split_grad(case, g_mean)):
        np.testing.assert_array_equal(gs, gn)  # the gradient of a sum is the elementwise one
        np.testing.assert_allclose(gm, gs.astype(np.float64) / wsum, rtol=rtol, atol=atol)


@SETTINGS
@given(problem=problems(), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_layout_does_not_change_result(any_backend, problem, reduction):
    case, args, extras, weight, dtype = problem
    contiguous = tuple(np.ascontiguousarray(a) for a in args)
    cw = None if weight is None else np.ascontiguousarray(weight)
    with fastloss.use_backend(any_backend):
        v1, g1 = case.call(args, extras, weight=weight, reduction=reduction, return_grad=True)
        v2, g2 = case.call(contiguous, extras, weight=cw, reduction=reduction, return_grad=True)
    np.testing.assert_array_equal(v1, v2)
    for a, b in zip(split_grad(case, g1), split_grad(case, g2)):
        np.testing.assert_array_equal(a, b)


@SETTINGS
@given(problem=problems())
def test_weight_one_is_no_weight(any_backend, problem):
    case, args, extras, _, dtype = problem
    with fastloss.use_backend(any_backend):
        for reduction in ("mean", "sum", "none"):
            v1, g1 = case.call(args, extras, reduction=reduction, return_grad=True)
            v2, g2 = case.call(args, extras, weight=1.0, reduction=reduction, return_grad=True)
            v3 = case.call(args, extras, weight=np.ones(args[0].shape), reduction=reduction)
            np.testing.assert_array_equal(v1, v2)
            rtol, atol = _tols(dtype)
            np.testing.assert_allclose(v1, v3, rtol=rtol, atol=atol)
            for a, b in zip(split_grad(case, g1), split_grad(case, g2)):
                np.testing.assert_array_equal(a, b)


@SETTINGS
@given(problem=problems(), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_inputs_unchanged_and_values_nonnegative(any_backend, problem, reduction):
    case, args, extras, weight, dtype = problem
    before = [np.array(a, copy=True) for a in args]
    with fastloss.use_backend(any_backend):
        value = case.call(args, extras, weight=weight, reduction=reduction)
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.asarray(value) >= 0)  # every loss here is non-negative, weights positive
