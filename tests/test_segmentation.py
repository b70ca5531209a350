"""dice_loss, jaccard_loss, tversky_loss against the independent formulation: every option (activation,
batch, background, targets), the defaults, by hand, special cases, labels against dense one-hot targets,
finite-difference gradients."""

from __future__ import annotations

import numpy as np
import pytest
from _segmentation import (
    ACT_IDS,
    ACTIVATIONS,
    LOSSES,
    SHAPES,
    TARGETS,
    call,
    check_against_reference,
    kind_variants,
    loss_fn,
    make_pred,
    make_problem,
    one_hot,
    ref_loss,
    value_tols,
)
from conftest import (
    DTYPE_IDS,
    DTYPES,
    REDUCTIONS,
    assert_close,
    fd_grad,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

import fastloss


def ref_total(kind, pred, target, **opts):
    """The scalar fastloss differentiates (the sum for "none")."""
    v, _ = ref_loss(kind, pred, target, **opts)
    return float(np.sum(v))


SHAPE_IDS = ["BCHW", "BCDHW", "BCL", "C1"]


SMOOTHS = [(1e-5, 1e-5), (0.0, 0.0), (1.0, 0.5)]


# ==================================================================================================
# 0. The reference itself


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=ACT_IDS)
def test_reference_gradient_matches_finite_differences(kind, activation):
    """Self-check of the analytic gradient the other tests use (no fastloss involved)."""
    x, t = make_problem(_seed("ref-fd", kind, activation), (2, 3, 2, 3), activation, "dense")
    for opts in (
        {"batch": True, "include_background": False, "reduction": "mean", "squared": True, "alpha": 0.3},
        {"batch": False, "reduction": "none", "smooth_nr": 0.5, "smooth_dr": 0.25, "beta": 0.9},
    ):
        _, g = ref_loss(kind, x, t, activation=activation, **opts)
        fd = fd_grad(lambda z, o=opts: ref_total(kind, z, t, activation=activation, **o), x)
        assert_close(g, fd, 1e-6, 1e-8, what=str(opts))


def test_reference_by_hand():
    pred = np.array([0.5, 0.5, 0.0, 0.0]).reshape(1, 1, 2, 2)
    target = np.array([1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    z = {"smooth_nr": 0.0, "smooth_dr": 0.0}
    assert ref_loss("dice", pred, target, **z)[0] == pytest.approx(0.5)
    assert ref_loss("dice", pred, target, squared=True, **z)[0] == pytest.approx(1 / 3)
    assert ref_loss("jaccard", pred, target, **z)[0] == pytest.approx(2 / 3)
    assert ref_loss("tversky", pred, target, **z)[0] == pytest.approx(0.5)


# ==================================================================================================
# 1. Values and gradients against the reference


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("include_background", [True, False], ids=["bg", "nobg"])
@pytest.mark.parametrize("batch", [False, True], ids=["perimage", "batch"])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=ACT_IDS)
@pytest.mark.parametrize("kind", LOSSES)
def test_all_options_match_reference(backend, kind, activation, batch, include_background, target_kind):
    """Every option combination, on (B, C, H, W), (B, C, D, H, W), (B, C, L) and C = 1, float64."""
    for shape, sid in zip(SHAPES, SHAPE_IDS):
        x, t = make_problem(
            _seed("opts", kind, activation, target_kind, shape), shape, activation, target_kind
        )
        for i, variant in enumerate(kind_variants(kind)):
            nr, dr = SMOOTHS[i % len(SMOOTHS)]
            for reduction in REDUCTIONS:
                opts = {
                    "activation": activation,
                    "batch": batch,
                    "include_background": include_background,
                    "reduction": reduction,
                    "smooth_nr": nr,
                    "smooth_dr": dr,
                    **variant,
                }
                check_against_reference(kind, x, t, opts, what=f"{sid} {opts}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", LOSSES)
def test_defaults(backend, kind, dtype):
    x, t = make_problem(_seed("defaults", kind), (2, 3, 6, 5), None, "dense", dtype)
    v = loss_fn(kind)(x, t)
    want, _ = ref_loss(kind, x, t)
    assert type(v) is np.dtype(dtype).type
    assert_close(v, want, *value_tols(dtype))
    # return_grad=False gives the value alone; return_grad=True the pair
    v2, g = loss_fn(kind)(x, t, return_grad=True)
    np.testing.assert_array_equal(v2, v)
    assert g.shape == x.shape and g.dtype == x.dtype


@pytest.mark.parametrize("kind", LOSSES)
def test_by_hand(backend, kind):
    pred = np.array([0.5, 0.5, 0.0, 0.0]).reshape(1, 1, 2, 2)
    target = np.array([1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    z = {"smooth_nr": 0.0, "smooth_dr": 0.0}
    want = {"dice": 0.5, "jaccard": 2 / 3, "tversky": 0.5}[kind]
    assert float(call(kind, pred, target, **z)) == pytest.approx(want, rel=1e-14)
    if kind != "tversky":
        want_sq = {"dice": 1 - 1 / 1.5, "jaccard": 1 - 1 / (2 * (0.5 + 1 - 0.5))}[kind]
        assert float(call(kind, pred, target, squared=True, **z)) == pytest.approx(want_sq, rel=1e-14)
    # perfect prediction: loss 0 with the default smoothing
    assert float(call(kind, target, target)) == pytest.approx(0.0, abs=1e-12)


def test_tversky_special_cases_are_dice_and_jaccard(backend):
    """alpha = beta = 1/2 is Dice with doubled smoothing; alpha = beta = 1 is Jaccard with doubled
    smoothing."""
    for activation in ACTIVATIONS:
        for target_kind in TARGETS:
            x, t = make_problem(
                _seed("tv-special", activation, target_kind), (2, 3, 4, 5), activation, target_kind
            )
            kw = {"activation": activation, "reduction": "none"}
            d = fastloss.dice_loss(x, t, smooth_nr=0.1, smooth_dr=0.4, **kw)
            tv = fastloss.tversky_loss(x, t, alpha=0.5, beta=0.5, smooth_nr=0.05, smooth_dr=0.2, **kw)
            assert_close(tv, d, 1e-12, 1e-14)
            j = fastloss.jaccard_loss(x, t, smooth_nr=0.1, smooth_dr=0.4, **kw)
            tv = fastloss.tversky_loss(x, t, alpha=1.0, beta=1.0, smooth_nr=0.05, smooth_dr=0.2, **kw)
            assert_close(tv, j, 1e-12, 1e-14)


@pytest.mark.parametrize("kind", LOSSES)
def test_dense_targets_used_as_given(backend, kind):
    """Dense targets are not checked: values outside [0, 1] enter the formula unchanged."""
    rng = np.random.default_rng(_seed("dense-any", kind))
    x = rng.uniform(0.0, 1.0, (2, 3, 4, 4))
    t = rng.normal(0.5, 1.5, x.shape)
    for reduction in REDUCTIONS:
        opts = {"reduction": reduction, "smooth_nr": 0.3, "smooth_dr": 0.7}
        check_against_reference(kind, x, t, opts, what=reduction)


@pytest.mark.parametrize("kind", LOSSES)
def test_reductions_consistent(backend, kind):
    x, t = make_problem(_seed("red", kind), (3, 4, 5, 6), "softmax", "labels")
    for batch in (False, True):
        kw = {"activation": "softmax", "batch": batch, "include_background": False}
        none, gn = call(kind, x, t, reduction="none", return_grad=True, **kw)
        s, gs = call(kind, x, t, reduction="sum", return_grad=True, **kw)
        m, gm = call(kind, x, t, reduction="mean", return_grad=True, **kw)
        assert none.shape == ((3,) if batch else (3, 3))
        assert float(s) == pytest.approx(float(np.sum(none)), rel=1e-13)
        assert float(m) == pytest.approx(float(np.mean(none)), rel=1e-13)
        assert_close(gs, gn, 1e-13, 1e-15 * scale_of(gn))
        assert_close(gm * none.size, gs, 1e-12, 1e-14 * scale_of(gs))


# --------------------------------------------------------------------------------------------------
# Dense one-hot targets vs integer labels


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=ACT_IDS)
@pytest.mark.parametrize("kind", LOSSES)
def test_labels_equal_dense_one_hot(backend, kind, activation, dtype):
    for shape in SHAPES:
        rng = np.random.default_rng(_seed("onehot", kind, activation, shape))
        x = make_pred(rng, shape, activation, dtype)
        labels = rng.integers(0, shape[1], (shape[0],) + shape[2:])
        dense = one_hot(labels, shape[1], dtype)
        for variant in kind_variants(kind)[:2]:
            for batch in (False, True):
                for include_background in (True, False):
                    for reduction in REDUCTIONS:
                        kw = {
                            "activation": activation,
                            "batch": batch,
                            "include_background": include_background,
                            "reduction": reduction,
                            **variant,
                        }
                        vl, gl = call(kind, x, labels, return_grad=True, **kw)
                        vd, gd = call(kind, x, dense, return_grad=True, **kw)
                        what = f"{shape} {kw}"
                        assert np.asarray(vl).dtype == np.asarray(vd).dtype == dtype, what
                        assert gl.dtype == gd.dtype == dtype, what
                        rtol = 3e-7 if dtype == np.float32 else 1e-12
                        assert_close(vl, vd, rtol, 1e-30, what=what)
                        assert_close(gl, gd, rtol, rtol * 0.1 * max(scale_of(gd), 1e-30), what=what)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64])
def test_label_dtypes(backend, label_dtype):
    rng = np.random.default_rng(_seed("label-dtypes"))
    x = rng.normal(0.0, 1.0, (2, 4, 5, 3))
    labels = rng.integers(0, 4, (2, 5, 3))
    for kind in LOSSES:
        want = call(kind, x, labels, activation="softmax", reduction="none")
        got = call(kind, x, labels.astype(label_dtype), activation="softmax", reduction="none")
        np.testing.assert_array_equal(got, want, err_msg=kind)
        # and as nested lists
        got = call(kind, x.tolist(), labels.tolist(), activation="softmax", reduction="none")
        np.testing.assert_array_equal(got, want, err_msg=kind)


def test_integer_and_bool_dense_targets(backend):
    """A target of pred's shape is dense whatever its dtype: integer / bool values are used as numbers."""
    rng = np.random.default_rng(_seed("int-dense"))
    x = rng.uniform(0.0, 1.0, (2, 3, 4, 5))
    t = rng.integers(0, 2, x.shape)
    for kind in LOSSES:
        want = call(kind, x, t.astype(np.float64), reduction="none")
        np.testing.assert_array_equal(call(kind, x, t, reduction="none"), want, err_msg=kind)
        np.testing.assert_array_equal(call(kind, x, t.astype(bool), reduction="none"), want, err_msg=kind)
        # values other than 0/1 in an integer dense target are used as given, not read as class indices
        t3 = t * 3
        check_against_reference(kind, x, t3, {"reduction": "none"}, what=kind)


# --------------------------------------------------------------------------------------------------
# Gradients against central finite differences


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=ACT_IDS)
@pytest.mark.parametrize("kind", LOSSES)
def test_gradients_finite_differences(backend, kind, activation, target_kind):
    configs = [
        ((2, 3, 3, 4), {"reduction": "mean"}),
        ((2, 3, 2, 2, 3), {"reduction": "none", "batch": True, "include_background": False}),
        ((3, 2, 5), {"reduction": "sum", "smooth_nr": 0.2, "smooth_dr": 0.1}),
        ((2, 1, 3, 3), {"reduction": "none"}),
    ]
    for i, (shape, opts) in enumerate(configs):
        x, t = make_problem(_seed("fd", kind, activation, target_kind, i), shape, activation, target_kind)
        variant = kind_variants(kind)[i % len(kind_variants(kind))]
        opts = {**opts, **variant, "activation": activation}
        v, g = call(kind, x, t, return_grad=True, **opts)
        assert g.shape == x.shape and g.dtype == np.float64
        fd = fd_grad(lambda z, t=t, o=opts: ref_total(kind, z, t, **o), x)
        assert_close(g, fd, 1e-6, 1e-8, what=f"{shape} {opts}")
        # and of fastloss's own values
        fd_own = fd_grad(lambda z, t=t, o=opts: float(np.sum(call(kind, z, t, **o))), x)
        assert_close(g, fd_own, 1e-5, 1e-7, what=f"{shape} {opts} (fastloss values)")
