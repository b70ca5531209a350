"""Properties of the class-wise losses (hypothesis): the backends agree and the reductions are
consistent with each other, over random shapes and options."""

from __future__ import annotations

import numpy as np
import pytest
from _classwise import (
    FNS,
    make_index_problem,
    make_kl_problem,
    n_classes,
    pos_shape,
    scale_of,
)
from conftest import (
    DTYPES,
    HAVE_CORE,
    REDUCTIONS,
    assert_close,
    hypothesis_settings,
    needs_core,
    optional_module,
)

import fastloss

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


AVAILABLE_BACKENDS = ["cpp", "numpy"] if HAVE_CORE else ["numpy"]


PROP_FNS = {
    "focal": lambda C: (fastloss.softmax_focal_loss, {"gamma": 1.5, "alpha": np.linspace(0.3, 1.0, C)}),
    "focal_g0.3": lambda C: (fastloss.softmax_focal_loss, {"gamma": 0.3, "ignore_index": 0}),
    "poly1": lambda C: (fastloss.poly1_cross_entropy, {"epsilon": 1.7}),
    "ww1": lambda C: (fastloss.multiclass_hinge, {"margin": 0.7, "weight": np.linspace(0.5, 1.5, C)}),
    "ww2": lambda C: (fastloss.multiclass_hinge, {"p": 2}),
    "cs1": lambda C: (fastloss.multiclass_hinge, {"method": "crammer_singer"}),
    "cs2": lambda C: (fastloss.multiclass_hinge, {"method": "crammer_singer", "p": 2, "margin": 0.4}),
    "kl": None,
    "kl_logt": None,
}


def _prop_problem(name, seed, n, C, spatial, dtype):
    shape = (n, C, *spatial)
    if name.startswith("kl"):
        logt = name == "kl_logt"
        x, t = (
            make_kl_problem(shape, seed, dtype=dtype, log_target=logt) if n else (np.zeros(shape, dtype),) * 2
        )

        def call(reduction, **k):
            return fastloss.kl_div(x, t, log_target=logt, reduction=reduction, **k)

        return call, shape, None
    fn, kw = PROP_FNS[name](C)
    ign = kw.get("ignore_index", -100 if fn is not fastloss.multiclass_hinge else None)
    x, y = make_index_problem(shape, seed, ignore_index=ign, dtype=dtype)

    def call(reduction, **k):
        return fn(x, y, reduction=reduction, **kw, **k)

    keep = np.ones(y.shape, bool) if ign is None else y != ign
    return call, shape, keep


def _cmp(a, b, dtype, scale, what):
    rtol, arel = (1e-5, 1e-6) if np.dtype(dtype) == np.float32 else (1e-12, 1e-13)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=arel * scale + 1e-300, equal_nan=True, err_msg=what)


if hypothesis is None:

    def test_loss_properties_need_hypothesis():
        pytest.skip("hypothesis is not importable")

else:
    st = hypothesis.strategies
    SETTINGS = hypothesis.settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[hypothesis.HealthCheck.too_slow],
    )
    problems = st.tuples(
        st.integers(0, 2**31 - 1),
        st.integers(0, 6),
        st.integers(1, 5),
        st.lists(st.integers(1, 3), min_size=0, max_size=2),
        st.sampled_from(DTYPES),
    )

    @pytest.mark.skipif(not HAVE_CORE, reason="compiled backend fastloss._core is unavailable")
    @pytest.mark.parametrize("name", list(PROP_FNS))
    @SETTINGS
    @hypothesis.given(problems)
    def test_cpp_matches_numpy(name, prob):
        seed, n, C, spatial, dtype = prob
        call, shape, _ = _prop_problem(name, seed, n, C, spatial, dtype)
        reductions = ["batchmean", *REDUCTIONS] if name.startswith("kl") else REDUCTIONS
        for reduction in reductions:
            res = {}
            for b in ("cpp", "numpy"):
                with fastloss.use_backend(b):
                    res[b] = call(reduction, return_grad=True)
            (vc, gc), (vn, gn) = res["cpp"], res["numpy"]
            assert np.asarray(vc).dtype == np.asarray(vn).dtype == dtype
            assert np.shape(vc) == np.shape(vn) and gc.shape == gn.shape == shape
            scale = max(scale_of(call("none")), 1.0) * max(1, int(np.prod(shape)))
            _cmp(vc, vn, dtype, scale, f"value {reduction}")
            _cmp(gc, gn, dtype, scale_of(gn), f"grad {reduction}")

    @pytest.mark.parametrize("name", list(PROP_FNS))
    @SETTINGS
    @hypothesis.given(problems)
    def test_loss_reductions_consistent(name, prob):
        seed, n, C, spatial, dtype = prob
        call, shape, keep = _prop_problem(name, seed, n, C, spatial, dtype)
        for b in AVAILABLE_BACKENDS:
            with fastloss.use_backend(b):
                none, g_none = call("none", return_grad=True)
                total, g_sum = call("sum", return_grad=True)
                mean, g_mean = call("mean", return_grad=True)
                per = np.asarray(none, np.float64)
                abs_sum = float(np.sum(np.abs(per)))
                _cmp(total, np.sum(per), dtype, abs_sum, f"{b}: sum vs none")
                np.testing.assert_array_equal(g_sum, g_none)
                count = per.size if keep is None else int(np.sum(keep))
                with np.errstate(invalid="ignore", divide="ignore"):
                    want_mean = np.float64(total) / np.float64(count)
                    g_want = g_sum.astype(np.float64) / count if count else np.zeros(shape)
                if count:
                    _cmp(mean, want_mean, dtype, abs_sum / count, f"{b}: mean")
                else:
                    assert np.isnan(mean)
                _cmp(g_mean, g_want, dtype, scale_of(g_want), f"{b}: mean grad")
                if keep is None:
                    bm, g_bm = call("batchmean", return_grad=True)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        want_bm = np.float64(total) / np.float64(n)
                    if n:
                        _cmp(bm, want_bm, dtype, abs_sum / n, f"{b}: batchmean")
                        _cmp(g_bm, g_sum.astype(np.float64) / n, dtype, scale_of(g_sum) / n, "batchmean grad")
                    else:
                        assert np.isnan(bm)
