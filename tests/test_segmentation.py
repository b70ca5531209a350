"""Overlap (segmentation) family: dice_loss, jaccard_loss, tversky_loss (MONAI semantics).

References: a direct NumPy formulation in float64 written here from MONAI's formulas (the one-hot of
integer labels built explicitly; never fastloss._numpy), with an analytic gradient that is itself
checked against central finite differences; MONAI's DiceLoss / TverskyLoss when `monai` is importable;
MONAI's forward transcribed to PyTorch with autograd when `torch` is importable; hypothesis properties.
The optional libraries skip cleanly when missing.

Conventions checked (spec, DESIGN.md): per (b, c) f = 1 - (2 I + nr) / (P + G + dr) (Jaccard:
denominator 2 (P + G - I) + dr; Tversky: (tp + nr) / (tp + alpha fp + beta fn + dr)); batch=True sums
over b first; include_background=False drops channel 0 after the activation (softmax over all C);
reduction mean/sum/none with "none" of shape (B, C') or (C',) and the gradient of its sum; integer
labels (B, spatial...) equal their dense one-hot; empty batches and no kept channels (mean nan, sum 0);
S = 0 gives f = 1 - nr/dr; float32 within ~1e-5 of float64 on the same values; any memory layout gives
the same result as a contiguous copy; inputs are never modified; NaN propagates; bitwise determinism
across thread counts (cpp); clear errors.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from conftest import (
    DTYPE_IDS,
    DTYPES,
    HAVE_CORE,
    LAYOUTS,
    REDUCTIONS,
    assert_close,
    f64,
    fd_grad,
    hypothesis_settings,
    needs_core,
    optional_module,
    relayout,
    run_concurrently,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

import fastloss
from fastloss import _backend

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


def ref_total(kind, pred, target, **opts):
    """The scalar fastloss differentiates (the sum for "none")."""
    v, _ = ref_loss(kind, pred, target, **opts)
    return float(np.sum(v))


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
SHAPE_IDS = ["BCHW", "BCDHW", "BCL", "C1"]
SMOOTHS = [(1e-5, 1e-5), (0.0, 0.0), (1.0, 0.5)]
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
    s = max(scale_of(want), 1e-300)
    return (1e-5, 1e-5 * s) if np.dtype(dtype) == np.float32 else (1e-9, 1e-11 * s)


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


# --------------------------------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=ACT_IDS)
@pytest.mark.parametrize("kind", LOSSES)
def test_float32_close_to_float64(backend, kind, activation, target_kind):
    x64, t64 = make_problem(
        _seed("f32", kind, activation, target_kind), (3, 4, 9, 11), activation, target_kind
    )
    x32 = x64.astype(np.float32)
    t32 = t64 if target_kind == "labels" else t64.astype(np.float32)
    for variant in kind_variants(kind):
        for batch in (False, True):
            for reduction in REDUCTIONS:
                opts = {"activation": activation, "batch": batch, "reduction": reduction, **variant}
                v32, g32 = call(kind, x32, t32, return_grad=True, **opts)
                # the float64 computation on the same (float32-representable) values
                v64, g64 = call(
                    kind, f64(x32), t32 if target_kind == "labels" else f64(t32), return_grad=True, **opts
                )
                assert np.asarray(v32).dtype == np.float32 and g32.dtype == np.float32
                what = f"{opts}"
                assert_close(v32, v64, 1e-5, 1e-6, what=what)
                assert_close(g32, g64, 1e-5, 1e-5 * scale_of(g64), what=what)
                check_against_reference(kind, x32, t32, opts, what=what)


def test_computation_dtypes(backend):
    rng = np.random.default_rng(_seed("dtypes"))
    x = rng.uniform(0.0, 1.0, (2, 3, 4, 4))
    labels = rng.integers(0, 3, (2, 4, 4))
    dense = one_hot(labels, 3)
    cases = [
        (np.float16, None, np.float32),
        (np.float32, None, np.float32),
        (np.float64, None, np.float64),
        (np.float32, np.float64, np.float64),  # mixed float dtypes promote (np.result_type)
        (np.float16, np.float32, np.float32),
        (np.float32, np.int64, np.float32),  # integer / bool dense targets take pred's dtype
        (np.float32, np.bool_, np.float32),
        (np.int64, None, np.float64),  # integer predictions compute in float64
    ]
    for kind in LOSSES:
        for pdt, tdt, want_dense in cases:
            p = x.astype(pdt) if np.dtype(pdt).kind == "f" else (x > 0.5).astype(pdt)
            # integer labels take pred's compute dtype
            pred_dt = {np.float16: np.float32, np.int64: np.float64}.get(pdt, pdt)
            for target, want_dt in ((labels, pred_dt), (dense.astype(tdt or pdt), want_dense)):
                for reduction in REDUCTIONS:
                    v, g = call(kind, p, target, reduction=reduction, return_grad=True)
                    what = f"{kind} pred {np.dtype(pdt)} target {target.dtype} {reduction}"
                    assert np.asarray(v).dtype == want_dt, what
                    assert g.dtype == want_dt and g.shape == p.shape, what
                    if reduction != "none":
                        assert type(v) is np.dtype(want_dt).type, what
    # float16 is computed as float32 of the same values
    x16 = x.astype(np.float16)
    for kind in LOSSES:
        got = call(kind, x16, labels, reduction="none", return_grad=True)
        want = call(kind, x16.astype(np.float32), labels, reduction="none", return_grad=True)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", LOSSES)
def test_extreme_logits(backend, kind, dtype):
    """Logits of magnitude ~1e3: sigmoid and softmax stay finite (softmax through the running max)."""
    rng = np.random.default_rng(_seed("extreme", kind))
    x = (rng.normal(0.0, 1.0, (2, 3, 6, 7)) * 400.0).astype(dtype)
    x[0, :, 0, 0] = [1000.0, 999.0, -1000.0]
    labels = rng.integers(0, 3, (2, 6, 7))
    for activation in ("sigmoid", "softmax"):
        opts = {"activation": activation, "reduction": "none"}
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no overflow warnings either
            v, g = check_against_reference(kind, x, labels, opts, what=activation)
        assert np.isfinite(v).all() and np.isfinite(g).all(), activation


@pytest.mark.parametrize("kind", LOSSES)
def test_float32_sums_accumulate_in_float64(backend, kind):
    """S = 2^18 positions per (b, c): a float32 accumulator would be off by ~1e-4 relative."""
    rng = np.random.default_rng(_seed("acc", kind))
    x = rng.uniform(0.0, 1.0, (1, 2, 512, 512)).astype(np.float32)
    t = (rng.random(x.shape) < 0.3).astype(np.float32)
    for reduction in ("none", "mean"):
        v = call(kind, x, t, reduction=reduction, smooth_nr=0.0, smooth_dr=0.0)
        want, _ = ref_loss(kind, x, t, reduction=reduction, smooth_nr=0.0, smooth_dr=0.0)
        assert_close(v, want, 1e-6, 0.0, what=reduction)


# ==================================================================================================
# 2. Edge cases


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", LOSSES)
def test_empty_batch(backend, kind, dtype, target_kind):
    x = np.zeros((0, 3, 4, 5), dtype)
    t = np.zeros((0, 4, 5), np.int64) if target_kind == "labels" else np.zeros(x.shape, dtype)
    for activation in ACTIVATIONS:
        kw = {"activation": activation}
        m, gm = call(kind, x, t, return_grad=True, **kw)
        s, gs = call(kind, x, t, reduction="sum", return_grad=True, **kw)
        n, gn = call(kind, x, t, reduction="none", return_grad=True, **kw)
        assert type(m) is np.dtype(dtype).type and np.isnan(m)
        assert type(s) is np.dtype(dtype).type and s == 0
        assert isinstance(n, np.ndarray) and n.shape == (0, 3) and n.dtype == dtype
        for g in (gm, gs, gn):
            assert g.shape == x.shape and g.dtype == dtype
        n_nobg = call(kind, x, t, reduction="none", include_background=False, **kw)
        assert n_nobg.shape == (0, 2)


@pytest.mark.parametrize("kind", LOSSES)
def test_empty_batch_with_batch_reduction(backend, kind):
    """B = 0 with batch=True. The spec says "B = 0 ...: mean nan, sum 0, none empty", while the MONAI
    formula (sums over an empty batch are 0) gives f = 1 - nr/dr per channel. Either reading must be
    self-consistent: none has shape (C',) of 1 - nr/dr, or is empty with mean nan and sum 0."""
    x = np.zeros((0, 3, 4, 5))
    t = np.zeros((0, 4, 5), np.int64)
    kw = {"batch": True, "smooth_nr": 1e-5, "smooth_dr": 4e-5}
    n = call(kind, x, t, reduction="none", **kw)
    m = call(kind, x, t, reduction="mean", **kw)
    s = call(kind, x, t, reduction="sum", **kw)
    if n.size == 0:
        assert n.shape == (0,)
        assert np.isnan(m) and s == 0
    else:
        assert n.shape == (3,)
        assert_close(n, np.full(3, 0.75), 1e-14)
        assert float(m) == pytest.approx(0.75, rel=1e-14) and float(s) == pytest.approx(2.25, rel=1e-14)


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("kind", LOSSES)
def test_zero_size_spatial_axis(backend, kind, target_kind):
    """S = 0: all sums vanish and f = 1 - nr/dr (IEEE: 0/0 = nan, 1/0 = inf)."""
    for shape in [(2, 3, 0, 4), (2, 3, 0), (1, 2, 3, 0, 2)]:
        x = np.zeros(shape)
        t = np.zeros((shape[0],) + shape[2:], np.int64) if target_kind == "labels" else np.zeros(shape)
        for nr, dr, want in [
            (1e-5, 1e-5, 0.0),
            (1e-5, 4e-5, 0.75),
            (0.0, 2.0, 1.0),
            (3.0, 1.0, -2.0),
            (0.0, 0.0, np.nan),
            (1.0, 0.0, -np.inf),
        ]:
            for activation in ACTIVATIONS:
                for batch in (False, True):
                    kw = {"smooth_nr": nr, "smooth_dr": dr, "activation": activation, "batch": batch}
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        n, g = call(kind, x, t, reduction="none", return_grad=True, **kw)
                        m = call(kind, x, t, **kw)
                    what = f"{shape} {kw}"
                    assert n.shape == ((shape[1],) if batch else (shape[0], shape[1])), what
                    assert_close(n, np.full(n.shape, want), 1e-14, 1e-300, what=what)
                    assert_close(m, want, 1e-14, 1e-300, what=what)
                    assert g.shape == shape, what


@pytest.mark.parametrize("kind", LOSSES)
def test_no_background_with_one_channel(backend, kind):
    """C = 1 and include_background=False: no channel is kept (fastloss does not copy MONAI's
    'ignored' warning): mean nan, sum 0, none empty, a zero gradient for sum/none."""
    for activation in ACTIVATIONS:
        for target_kind in TARGETS:
            x, t = make_problem(
                _seed("nobg1", activation, target_kind), (2, 1, 4, 5), activation, target_kind
            )
            for batch in (False, True):
                kw = {"activation": activation, "batch": batch, "include_background": False}
                what = str(kw)
                n, gn = call(kind, x, t, reduction="none", return_grad=True, **kw)
                assert n.shape == ((0,) if batch else (2, 0)), what
                s, gs = call(kind, x, t, reduction="sum", return_grad=True, **kw)
                assert s == 0, what
                m, gm = call(kind, x, t, reduction="mean", return_grad=True, **kw)
                assert np.isnan(m), what
                np.testing.assert_array_equal(gn, np.zeros_like(x), err_msg=what)
                np.testing.assert_array_equal(gs, np.zeros_like(x), err_msg=what)
                assert gm.shape == x.shape and gm.dtype == x.dtype


@pytest.mark.parametrize("kind", LOSSES)
def test_softmax_is_over_all_channels_before_dropping_background(backend, kind):
    """With include_background=False the softmax still runs over all C channels (MONAI applies it
    first): the background logits change the loss and receive gradient."""
    x, t = make_problem(_seed("softmax-bg", kind), (2, 3, 4, 4), "softmax", "labels")
    kw = {"activation": "softmax", "include_background": False, "reduction": "sum"}
    v, g = call(kind, x, t, return_grad=True, **kw)
    x2 = x.copy()
    x2[:, 0] += 1.5
    v2 = call(kind, x2, t, **kw)
    assert abs(float(v2) - float(v)) > 1e-3
    assert np.abs(g[:, 0]).max() > 1e-6
    # without softmax the background channel has no influence
    for activation in (None, "sigmoid"):
        kw = {"activation": activation, "include_background": False, "reduction": "sum"}
        v, g = call(kind, x, t, return_grad=True, **kw)
        assert float(call(kind, x2, t, **kw)) == float(v)
        np.testing.assert_array_equal(g[:, 0], 0.0)


@pytest.mark.parametrize("kind", LOSSES)
def test_softmax_single_channel(backend, kind):
    """softmax over a single channel is identically 1 (the spec's definition; MONAI instead skips the
    softmax for C = 1 with a warning)."""
    x = np.random.default_rng(3).normal(0.0, 2.0, (2, 1, 3, 4))
    t = np.random.default_rng(4).uniform(0.0, 1.0, x.shape)
    v, g = call(kind, x, t, activation="softmax", reduction="none", return_grad=True)
    want, _ = ref_loss(kind, x, t, activation="softmax", reduction="none")
    assert_close(v, want, 1e-12)
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("kind", LOSSES)
def test_nan_propagates(backend, kind):
    rng = np.random.default_rng(_seed("nan", kind))
    for activation in ACTIVATIONS:
        for target_kind in TARGETS:
            x = make_pred(rng, (2, 3, 4, 5), activation)
            t = make_target(rng, x.shape, target_kind)
            x[1, 2, 1, 3] = np.nan
            for batch in (False, True):
                kw = {"activation": activation, "batch": batch}
                what = f"{kw} {target_kind}"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    n, g = call(kind, x, t, reduction="none", return_grad=True, **kw)
                    m = call(kind, x, t, **kw)
                    s = call(kind, x, t, reduction="sum", **kw)
                assert np.isnan(m) and np.isnan(s), what
                if batch:
                    bad = np.ones(3, bool) if activation == "softmax" else np.eye(3, dtype=bool)[2]
                else:
                    bad = np.zeros((2, 3), bool)
                    if activation == "softmax":
                        bad[1, :] = True  # the NaN enters every channel's softmax at that position
                    else:
                        bad[1, 2] = True
                np.testing.assert_array_equal(np.isnan(n), bad, err_msg=what)
                assert np.isnan(g).any(), what
                if not batch:
                    assert np.isfinite(g[0]).all(), what
    # NaN in a dense target too
    x = rng.uniform(0.0, 1.0, (2, 3, 4, 5))
    t = rng.uniform(0.0, 1.0, x.shape)
    t[0, 1, 2, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        n = call(kind, x, t, reduction="none")
    bad = np.zeros((2, 3), bool)
    bad[0, 1] = True
    np.testing.assert_array_equal(np.isnan(n), bad)


# ==================================================================================================
# 3. Memory layouts and input immutability


def _outputs(kind, x, t, **kw):
    v, g = call(kind, x, t, return_grad=True, **kw)
    return np.asarray(v), g


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_layouts_same_as_contiguous(backend, dtype, layout):
    for kind in LOSSES:
        for target_kind in TARGETS:
            for activation in ACTIVATIONS:
                x, t = make_problem(
                    _seed("layout", kind, target_kind), (3, 4, 5, 6), activation, target_kind, dtype
                )
                kw = {"activation": activation, "reduction": "none", "include_background": False}
                want = _outputs(kind, x, t, **kw)
                for xi, ti in (
                    (relayout(x, layout), t),
                    (x, relayout(t, layout)),
                    (relayout(x, layout), relayout(t, layout)),
                ):
                    got = _outputs(kind, xi, ti, **kw)
                    what = f"{kind} {target_kind} {activation}"
                    np.testing.assert_array_equal(got[0], want[0], err_msg=what)
                    np.testing.assert_array_equal(got[1], want[1], err_msg=what)
                    assert got[1].flags.writeable and got[1].shape == x.shape
    # a transposed view (spatial axes swapped) is another array: compare with its contiguous copy
    x, t = make_problem(_seed("layout-T"), (2, 3, 5, 7), "sigmoid", "dense", dtype)
    xt, tt = x.transpose(0, 1, 3, 2), t.transpose(0, 1, 3, 2)
    for kind in LOSSES:
        got = _outputs(kind, xt, tt, activation="sigmoid", reduction="none")
        want = _outputs(kind, xt.copy(), tt.copy(), activation="sigmoid", reduction="none")
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        lab = np.random.default_rng(1).integers(0, 3, (2, 7, 5))
        got = _outputs(kind, x, lab.transpose(0, 2, 1), activation="softmax")
        want = _outputs(kind, x, lab.transpose(0, 2, 1).copy(), activation="softmax")
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_inputs_never_modified(backend):
    rng = np.random.default_rng(_seed("immutable"))
    for dtype in DTYPES:
        x = rng.normal(0.0, 1.0, (2, 3, 4, 5)).astype(dtype)
        dense = rng.uniform(0.0, 1.0, x.shape).astype(dtype)
        labels = rng.integers(0, 3, (2, 4, 5))
        x0, d0, l0 = x.copy(), dense.copy(), labels.copy()
        for kind in LOSSES:
            for activation in ACTIVATIONS:
                for t in (dense, labels):
                    for reduction in REDUCTIONS:
                        v, g = call(kind, x, t, activation=activation, reduction=reduction, return_grad=True)
                        assert not np.shares_memory(g, x) and not np.shares_memory(g, t)
                        if reduction == "none":
                            assert not np.shares_memory(v, x) and not np.shares_memory(v, t)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(dense, d0)
        np.testing.assert_array_equal(labels, l0)


# ==================================================================================================
# 4. Errors


def _shapes_in(msg, *shapes):
    return all(str(tuple(s)) in msg for s in shapes)


o = np.ones
P4 = (2, 3, 4, 5)


def _bad_param_cases():
    cases = []
    for kind in LOSSES:
        fn = (lambda k: lambda **kw: loss_fn(k)(o(P4), o(P4), **kw))(kind)
        cases += [
            (f"{kind}_activation_relu", fn, {"activation": "relu"}, ValueError, "relu|activation"),
            (f"{kind}_activation_empty", fn, {"activation": ""}, ValueError, "activation"),
            (f"{kind}_activation_int", fn, {"activation": 1}, (TypeError, ValueError), "activation"),
            (f"{kind}_reduction", fn, {"reduction": "avg"}, ValueError, "avg|reduction"),
            (f"{kind}_smooth_nr_neg", fn, {"smooth_nr": -1e-5}, ValueError, "smooth_nr"),
            (f"{kind}_smooth_dr_neg", fn, {"smooth_dr": -1.0}, ValueError, "smooth_dr"),
            (f"{kind}_smooth_nr_nan", fn, {"smooth_nr": float("nan")}, ValueError, "smooth_nr"),
            (f"{kind}_smooth_dr_str", fn, {"smooth_dr": "1e-5"}, (TypeError, ValueError), "smooth_dr"),
        ]
    tv = lambda **kw: fastloss.tversky_loss(o(P4), o(P4), **kw)  # noqa: E731
    cases += [
        ("tversky_alpha_neg", tv, {"alpha": -0.1}, ValueError, "alpha"),
        ("tversky_beta_neg", tv, {"beta": -2.0}, ValueError, "beta"),
        ("tversky_alpha_nan", tv, {"alpha": float("nan")}, ValueError, "alpha"),
        ("tversky_squared", tv, {"squared": True}, TypeError, "squared"),
    ]
    return cases


BAD_PARAMS = _bad_param_cases()


@pytest.mark.parametrize(
    ("fn", "kw", "exc", "pattern"), [c[1:] for c in BAD_PARAMS], ids=[c[0] for c in BAD_PARAMS]
)
def test_bad_parameters(backend, fn, kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn(**kw)


@pytest.mark.parametrize("kind", LOSSES)
def test_arguments_after_target_are_keyword_only(backend, kind):
    with pytest.raises(TypeError):
        loss_fn(kind)(o(P4), o(P4), 1e-5)


INPUT_ERRORS = [
    ("pred_2d", lambda f: f(o((4, 3)), o((4, 3))), ValueError, r"(?i)3|ndim|dimension|spatial"),
    ("pred_1d", lambda f: f(o(4), o(4)), ValueError, r"(?i)3|ndim|dimension|spatial"),
    ("pred_0d", lambda f: f(np.float64(1.0), np.float64(1.0)), ValueError, r"(?i)3|ndim|dimension|spatial"),
    (
        "pred_2d_labels",
        lambda f: f(o((4, 3)), np.zeros(4, np.int64)),
        ValueError,
        r"(?i)3|ndim|dimension|spatial",
    ),
    ("float_labels", lambda f: f(o(P4), np.zeros((2, 4, 5))), ValueError, r"(?i)target|label|shape|integer"),
    (
        "float32_labels",
        lambda f: f(o(P4), np.zeros((2, 4, 5), np.float32)),
        ValueError,
        r"(?i)target|label|shape|integer",
    ),
    (
        "labels_spatial",
        lambda f: f(o(P4), np.zeros((2, 4, 6), np.int64)),
        ValueError,
        r"(?i)target|label|shape",
    ),
    (
        "labels_batch",
        lambda f: f(o(P4), np.zeros((3, 4, 5), np.int64)),
        ValueError,
        r"(?i)target|label|shape",
    ),
    (
        "labels_channel_axis",
        lambda f: f(o(P4), np.zeros((2, 1, 4, 5), np.int64)),
        ValueError,
        r"(?i)target|label|shape",
    ),
    (
        "labels_too_many_dims",
        lambda f: f(o(P4), np.zeros((2, 3, 4, 5, 1), np.int64)),
        ValueError,
        r"(?i)target|shape",
    ),
    (
        "labels_too_few_dims",
        lambda f: f(o(P4), np.zeros((2, 20), np.int64)),
        ValueError,
        r"(?i)target|label|shape",
    ),
    ("complex_pred", lambda f: f(o(P4) * 1j, o(P4)), TypeError, r"complex|real"),
    ("complex_target", lambda f: f(o(P4), o(P4) * 1j), TypeError, r"complex|real"),
    ("str_pred", lambda f: f(np.full(P4, "a"), o(P4)), TypeError, r"real|dtype"),
    ("object_target", lambda f: f(o(P4), np.full((2, 4, 5), None, dtype=object)), TypeError, r"real|dtype"),
]


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize(
    ("call_", "exc", "pattern"), [c[1:] for c in INPUT_ERRORS], ids=[c[0] for c in INPUT_ERRORS]
)
def test_input_errors(backend, kind, call_, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call_(loss_fn(kind))


SHAPE_MISMATCHES = [
    ("spatial", P4, (2, 3, 4, 6)),
    ("channels", P4, (2, 2, 4, 5)),
    ("batch", P4, (1, 3, 4, 5)),
    ("3d", (2, 3, 4, 5, 6), (2, 3, 4, 5, 7)),
    ("1d", (2, 3, 7), (2, 4, 7)),
]


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize(
    ("ps", "ts"), [c[1:] for c in SHAPE_MISMATCHES], ids=[c[0] for c in SHAPE_MISMATCHES]
)
def test_dense_shape_mismatch_names_both_shapes(backend, kind, ps, ts):
    with pytest.raises(ValueError) as e:
        loss_fn(kind)(o(ps), o(ts))
    assert _shapes_in(str(e.value), ps, ts), f"the message should name {ps} and {ts}: {e.value}"


def _names_position(msg, index, flat) -> bool:
    """The message names the bad position: the multi-index (b, spatial...) or the flat index."""
    nums = r",\s*".join(str(i) for i in index)
    if re.search(rf"[\[(]\s*{nums}\s*[\])]", msg):
        return True
    return re.search(rf"(?<![\d.\-]){flat}(?![\d.])", msg) is not None


BAD_LABELS = [
    # (id, labels shape, C, [(index, value) ...]: the first in C order is reported)
    # (values chosen not to appear in the index or in the "[0, C)" range text)
    ("high", (2, 4, 5), 3, [((1, 2, 1), 7), ((1, 3, 0), 3)]),
    ("negative", (2, 4, 5), 3, [((0, 1, 4), -1), ((1, 0, 0), 5)]),
    ("huge", (2, 4, 5), 3, [((1, 3, 4), 123456789012)]),
    ("3d", (2, 3, 4, 2), 4, [((1, 2, 3, 1), 6)]),
    ("1d", (3, 7), 2, [((2, 6), -5)]),
    ("one_channel", (2, 4, 5), 1, [((0, 2, 3), 9)]),
]


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize(("lshape", "C", "bad"), [c[1:] for c in BAD_LABELS], ids=[c[0] for c in BAD_LABELS])
def test_bad_labels_name_position_and_value(backend, kind, lshape, C, bad):
    labels = np.zeros(lshape, np.int64)
    for idx, val in bad:
        labels[idx] = val
    pred = np.ones((lshape[0], C) + lshape[1:])
    index, value = bad[0]
    flat = int(np.ravel_multi_index(index, lshape))
    for activation in ACTIVATIONS:
        for return_grad in (False, True):
            with pytest.raises(ValueError) as e:
                loss_fn(kind)(pred, labels, activation=activation, return_grad=return_grad)
            msg = str(e.value)
            assert re.search(rf"(?<![\d.]){re.escape(str(value))}(?![\d.])", msg), (
                f"the message should name the value {value}: {msg}"
            )
            assert _names_position(msg, index, flat), f"the message should name the position {index}: {msg}"
    # the position is that of the logical (C order) array whatever the memory layout
    for lab in (np.asfortranarray(labels), relayout(labels, "reversed"), relayout(labels, "strided")):
        with pytest.raises(ValueError) as e2:
            loss_fn(kind)(pred, lab)
        assert str(e2.value) == msg
    # float32 pred and int32 labels: the same check
    if abs(value) < 2**31:
        with pytest.raises(ValueError, match=re.escape(str(value))):
            loss_fn(kind)(pred.astype(np.float32), labels.astype(np.int32))


# ==================================================================================================
# 5. The backend primitives (exact signatures, both backends)


def test_backends_expose_the_primitives():
    from fastloss import _numpy

    for name in ("overlap_sums", "overlap_grad"):
        assert callable(getattr(_numpy, name)), name
        if HAVE_CORE:
            assert callable(getattr(_backend._core, name)), name


def _prim_ref_sums(x, g, activation, squared):
    p = ref_activation(f64(x), [None, "sigmoid", "softmax"][activation])
    inter = np.sum(p * g, axis=2)
    P = np.sum(p * p if squared else p, axis=2)
    G = np.sum(g * g if squared else g, axis=2)
    return np.stack([inter, P, G], axis=-1), p


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("activation", [0, 1, 2], ids=ACT_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_primitives_match_formulas(backend, dtype, activation, squared):
    k = _backend.kernels()
    th = _backend.thread_arg()
    rng = np.random.default_rng(_seed("prim", activation, squared))
    B, C, S = 3, 4, 23
    x = (rng.uniform(0, 1, (B, C, S)) if activation == 0 else rng.normal(0, 2, (B, C, S))).astype(dtype)
    labels = rng.integers(0, C, (B, S)).astype(np.int64)
    dense = rng.uniform(0, 1, (B, C, S)).astype(dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for target, lab, g in ((dense, None, f64(dense)), (None, labels, one_hot(labels, C))):
        sums, first_bad = k.overlap_sums(x, target, lab, activation, squared, th)
        sums = np.asarray(sums)
        assert first_bad == -1
        assert sums.shape == (B, C, 3) and sums.dtype == np.float64
        want, p = _prim_ref_sums(x, g, activation, squared)
        assert_close(sums, want, rtol, 1e-12)
        ci, cp = rng.normal(0, 1, (B, C)), rng.normal(0, 1, (B, C))
        grad = k.overlap_grad(x, target, lab, activation, squared, ci, cp, th)
        assert grad.shape == (B, C, S) and grad.dtype == dtype
        dp = ci[..., None] * g + cp[..., None] * (2.0 * p if squared else 1.0)
        if activation == 1:
            want_g = dp * p * (1 - p)
        elif activation == 2:
            want_g = p * (dp - np.sum(dp * p, axis=1, keepdims=True))
        else:
            want_g = dp
        assert_close(grad, want_g, rtol, rtol * scale_of(want_g))
    # the first bad label in C order, as a flat index b * S + s
    bad = labels.copy()
    bad[1, 7], bad[1, 9], bad[2, 0] = C, -1, C + 5
    _, first_bad = k.overlap_sums(x, None, bad, activation, squared, th)
    assert first_bad == 1 * S + 7
    bad[0, 22] = -3
    _, first_bad = k.overlap_sums(x, None, bad, activation, squared, th)
    assert first_bad == 22
    # dense targets are not checked
    _, first_bad = k.overlap_sums(x, dense * 7 - 3, None, activation, squared, th)
    assert first_bad == -1
    # S = 0 and B = 0
    for shape in ((B, C, 0), (0, C, S)):
        z = np.zeros(shape, dtype)
        sums, first_bad = k.overlap_sums(
            z, None, np.zeros((shape[0], shape[2]), np.int64), activation, squared, th
        )
        assert np.asarray(sums).shape == shape[:2] + (3,) and first_bad == -1
        np.testing.assert_array_equal(sums, 0.0)


# ==================================================================================================
# 6. External references: MONAI (when importable), MONAI's forward in PyTorch with autograd


def test_matches_monai(backend):
    monai = optional_module("monai")
    torch = optional_module("torch")
    if monai is None or torch is None:
        pytest.skip("monai is not importable")
    from monai.losses import DiceLoss, TverskyLoss

    for kind in LOSSES:
        for shape in SHAPES:
            C = shape[1]
            for activation in ACTIVATIONS:
                for target_kind in TARGETS:
                    # MONAI ignores softmax, to_onehot_y and include_background=False for C = 1 (warning)
                    if C == 1 and (activation == "softmax" or target_kind == "labels"):
                        continue
                    x, t = make_problem(
                        _seed("monai", kind, shape, activation, target_kind), shape, activation, target_kind
                    )
                    tt = torch.as_tensor(t[:, None] if target_kind == "labels" else t)
                    for batch in (False, True):
                        for include_background in (True,) if C == 1 else (True, False):
                            for variant in kind_variants(kind):
                                for reduction in REDUCTIONS:
                                    common = {
                                        "include_background": include_background,
                                        "to_onehot_y": target_kind == "labels",
                                        "sigmoid": activation == "sigmoid",
                                        "softmax": activation == "softmax",
                                        "reduction": reduction,
                                        "smooth_nr": 1e-4,
                                        "smooth_dr": 2e-4,
                                        "batch": batch,
                                    }
                                    if kind == "tversky":
                                        m = TverskyLoss(
                                            alpha=variant["alpha"], beta=variant["beta"], **common
                                        )
                                    else:
                                        m = DiceLoss(
                                            squared_pred=variant["squared"],
                                            jaccard=kind == "jaccard",
                                            **common,
                                        )
                                    want = m(torch.as_tensor(x), tt).detach().numpy()
                                    kw = {
                                        "activation": activation,
                                        "batch": batch,
                                        "include_background": include_background,
                                        "reduction": reduction,
                                        "smooth_nr": 1e-4,
                                        "smooth_dr": 2e-4,
                                        **variant,
                                    }
                                    got = call(kind, x, t, **kw)
                                    if reduction == "none":
                                        want = want.reshape(np.shape(got))
                                    assert_close(got, want, 1e-10, 1e-12, what=f"{kind} {shape} {kw}")


def _torch_monai_forward(torch, kind, x, target, labels, o):
    """MONAI's DiceLoss / TverskyLoss forward, transcribed (C > 1)."""
    inp = x
    if o["activation"] == "sigmoid":
        inp = torch.sigmoid(inp)
    elif o["activation"] == "softmax":
        inp = torch.softmax(inp, 1)
    if labels:
        target = torch.nn.functional.one_hot(target.long(), inp.shape[1]).movedim(-1, 1).to(inp.dtype)
    if not o["include_background"]:
        target, inp = target[:, 1:], inp[:, 1:]
    axes = list(range(2, inp.ndim))
    if o["batch"]:
        axes = [0] + axes
    nr, dr = o["smooth_nr"], o["smooth_dr"]
    if kind == "tversky":
        tp = torch.sum(inp * target, axes)
        fp = o["alpha"] * torch.sum(inp * (1 - target), axes)
        fn = o["beta"] * torch.sum((1 - inp) * target, axes)
        f = 1.0 - (tp + nr) / (tp + fp + fn + dr)
    else:
        inter = torch.sum(target * inp, axes)
        if o["squared"]:
            ground, pred = torch.sum(target**2, axes), torch.sum(inp**2, axes)
        else:
            ground, pred = torch.sum(target, axes), torch.sum(inp, axes)
        den = ground + pred
        if kind == "jaccard":
            den = 2.0 * (den - inter)
        f = 1.0 - (2.0 * inter + nr) / (den + dr)
    return {"mean": torch.mean, "sum": torch.sum, "none": lambda z: z}[o["reduction"]](f)


@pytest.mark.parametrize("kind", LOSSES)
def test_matches_monai_forward_in_torch_autograd(backend, kind):
    torch = optional_module("torch")
    if torch is None:
        pytest.skip("torch is not importable")
    i = 0
    for activation in ACTIVATIONS:
        for target_kind in TARGETS:
            for batch in (False, True):
                for include_background in (True, False):
                    shape = [(2, 3, 9, 10), (3, 4, 4, 5, 3), (2, 2, 33)][i % 3]
                    x, t = make_problem(_seed("torch", kind, i), shape, activation, target_kind)
                    o = {
                        **DEFAULTS,
                        **kind_variants(kind)[i % len(kind_variants(kind))],
                        "activation": activation,
                        "batch": batch,
                        "include_background": include_background,
                        "reduction": REDUCTIONS[i % 3],
                        "smooth_nr": [1e-5, 0.1, 0.0][i % 3],
                        "smooth_dr": [1e-5, 0.3, 1e-3][i % 3],
                    }
                    i += 1
                    xt = torch.tensor(x, requires_grad=True)
                    f = _torch_monai_forward(torch, kind, xt, torch.as_tensor(t), target_kind == "labels", o)
                    f.sum().backward()
                    v, g = call(kind, x, t, return_grad=True, **{k: o[k] for k in o})
                    what = f"{shape} {o}"
                    want = f.detach().numpy()
                    assert_close(v, want, 1e-10, 1e-12, what=what)
                    wg = xt.grad.numpy()
                    assert_close(g, wg, 1e-9, 1e-11 * scale_of(wg), what=what)


# ==================================================================================================
# 7. Backends and threads


def _big(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, (4, 3, 64, 64)).astype(dtype)
    labels = rng.integers(0, 3, (4, 64, 64))
    dense = np.where(rng.random(x.shape) < 0.3, rng.random(x.shape), one_hot(labels, 3)).astype(dtype)
    return x, labels, dense


def _bits(result):
    v, g = result
    return np.asarray(v).tobytes(), g.tobytes()


@pytest.mark.cpp_only
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bitwise_identical_across_threads(core, dtype):
    x, labels, dense = _big(_seed("threads"), dtype)
    xp = np.clip(x * 0.25 + 0.5, 0.0, 1.0)  # probabilities for activation None
    with fastloss.use_backend("cpp"):
        for kind in LOSSES:
            for activation in ACTIVATIONS:
                xx = xp if activation is None else x
                for target_kind, t in (("dense", dense), ("labels", labels)):
                    for j, (batch, red) in enumerate([(False, "none"), (True, "mean")]):
                        kw = {
                            "activation": activation,
                            "batch": batch,
                            "reduction": red,
                            "include_background": j == 0,
                            **kind_variants(kind)[j],
                        }
                        runs = {}
                        for n in (1, 2, 3):
                            with fastloss.num_threads(n):
                                runs[n] = _bits(call(kind, xx, t, return_grad=True, **kw))
                        what = f"{kind} {target_kind} {kw}"
                        assert runs[1] == runs[2], f"{what}: 1 vs 2 threads"
                        assert runs[1] == runs[3], f"{what}: 1 vs 3 threads"
        # the label check reports the same first bad position whatever the thread count
        bad = labels.copy()
        bad[2, 40, 7], bad[3, 1, 1] = 9, -1
        msgs = set()
        for n in (1, 2, 3):
            with fastloss.num_threads(n), pytest.raises(ValueError) as e:
                fastloss.dice_loss(x, bad, activation="softmax")
            msgs.add(str(e.value))
        assert len(msgs) == 1, msgs


@pytest.mark.parametrize(
    "shape", [(2, 3000, 5), (3, 2049, 300), (5, 4, 1), (2, 70, 3)], ids=["C3000", "C2049", "S1", "C70_S3"]
)
def test_many_channels_and_short_maps(backend, shape):
    """Thousands of channels (a softmax unit of few positions, its buffer near 4 MiB) and maps shorter than a
    unit (one unit per batch item, its sums written in place): the reference, bitwise across threads."""
    for target_kind in TARGETS:
        x, t = make_problem(_seed("wide", shape, target_kind), shape, "softmax", target_kind)
        opts = {"activation": "softmax", "batch": False, "include_background": True, "reduction": "mean"}
        check_against_reference("dice", x, t, opts, what=f"{shape} {target_kind}")
        runs = []
        for n in (1, 2, 3):
            with fastloss.num_threads(n):
                runs.append(
                    _bits(fastloss.dice_loss(x, t, activation="softmax", reduction="none", return_grad=True))
                )
        assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("kind", LOSSES)
def test_batch_chunks_same_as_whole(backend, kind, monkeypatch):
    """Many (batch, channel) pairs go through the kernels a chunk of batch items at a time (bounded
    memory): the same values and gradients as in one piece, and a bad label in a later chunk is reported
    at its own position."""
    from fastloss import segmentation

    x, t = make_problem(_seed("chunks", kind), (7, 5, 3), "softmax", "labels")
    whole = {}
    cases = [(bt, red, bg) for bt in (False, True) for red in REDUCTIONS for bg in (True, False)]
    for bt, red, bg in cases:
        kw = {"activation": "softmax", "batch": bt, "reduction": red, "include_background": bg}
        whole[bt, red, bg] = call(kind, x, t, return_grad=True, **kw)
    monkeypatch.setattr(segmentation, "_CHUNK_PAIRS", 10)  # two batch items per chunk
    for bt, red, bg in cases:
        kw = {"activation": "softmax", "batch": bt, "reduction": red, "include_background": bg}
        v, g = call(kind, x, t, return_grad=True, **kw)
        w_v, w_g = whole[bt, red, bg]
        assert np.shape(v) == np.shape(w_v) and g.shape == w_g.shape
        np.testing.assert_allclose(v, w_v, rtol=1e-14, atol=1e-15, err_msg=f"{kw}")
        np.testing.assert_allclose(g, w_g, rtol=1e-13, atol=1e-15, err_msg=f"{kw}")
    bad = t.copy()
    bad[5, 2] = 99
    with pytest.raises(ValueError, match=re.escape("found target[5, 2] = 99")):
        call(kind, x, bad)


def test_overlap_grad_out_is_checked(backend):
    """overlap_grad's out (a slice of the caller's gradient): written in place when it fits, refused with
    a TypeError when its dtype or shape does not match x."""
    from fastloss import _backend

    k = _backend.kernels()
    rng = np.random.default_rng(25)
    x, lab = rng.normal(size=(2, 3, 5)), rng.integers(0, 3, (2, 5))
    ci, cp = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    want = k.overlap_grad(x, None, lab, 2, False, ci, cp, 0)
    out = np.full_like(x, np.nan)
    k.overlap_grad(x, None, lab, 2, False, ci, cp, 0, out)
    np.testing.assert_array_equal(out, want)
    for bad in (np.empty((2, 3, 4)), np.empty((2, 3, 5), np.float32)):
        with pytest.raises(TypeError, match="out"):
            k.overlap_grad(x, None, lab, 2, False, ci, cp, 0, bad)


@pytest.mark.cpp_only
def test_two_python_threads_get_correct_results(core):
    x, labels, dense = _big(_seed("python-threads"))
    jobs = {
        "dice": lambda: _bits(fastloss.dice_loss(x, labels, activation="softmax", return_grad=True)),
        "jaccard": lambda: _bits(fastloss.jaccard_loss(x, dense, activation="sigmoid", return_grad=True)),
        "tversky": lambda: _bits(fastloss.tversky_loss(x, labels, alpha=0.3, beta=0.7, return_grad=True)),
    }
    with fastloss.use_backend("cpp"):
        want = {k: fn() for k, fn in jobs.items()}
        results = run_concurrently(jobs)
    for name, runs in results.items():
        assert len(runs) == 3 and all(r == want[name] for r in runs), name


@needs_core
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_backends_agree_at_scale(dtype):
    x, labels, dense = _big(_seed("agree"), dtype)
    x, labels, dense = x[:3, :, :40], labels[:3, :40], dense[:3, :, :40]
    for kind in LOSSES:
        for activation in ACTIVATIONS:
            for t in (dense, labels):
                kw = {"activation": activation, "reduction": "none", "include_background": False}
                with fastloss.use_backend("cpp"):
                    c = call(kind, x, t, return_grad=True, **kw)
                with fastloss.use_backend("numpy"):
                    n = call(kind, x, t, return_grad=True, **kw)
                rtol = 1e-5 if dtype == np.float32 else 1e-11
                assert c[0].dtype == n[0].dtype == dtype and c[1].dtype == n[1].dtype == dtype
                assert_close(c[0], n[0], rtol, 1e-6 if dtype == np.float32 else 1e-13)
                assert_close(c[1], n[1], rtol, rtol * scale_of(n[1]))


@pytest.mark.parametrize("kind", LOSSES)
def test_values_at_scale_match_reference(backend, kind):
    """Many blocks on both backends (the other reference tests are small): B = 24, S = 4096."""
    rng = np.random.default_rng(_seed("scale", kind))
    x = rng.normal(0.0, 2.0, (24, 3, 64, 64))
    labels = rng.integers(0, 3, (24, 64, 64))
    dense = rng.uniform(0.0, 1.0, x.shape)
    for t in (labels, dense):
        for activation in ACTIVATIONS:
            check_against_reference(
                kind, x, t, {"activation": activation, "reduction": "none"}, what=str(activation)
            )


# ==================================================================================================
# 8. Properties (hypothesis)


hypothesis = optional_module("hypothesis")

if hypothesis is None:

    def test_properties_need_hypothesis():
        pytest.skip("hypothesis is not importable")

else:
    st = hypothesis.strategies
    SETTINGS = hypothesis_settings(20)

    @st.composite
    def problems(draw):
        kind = draw(st.sampled_from(LOSSES))
        batch = draw(st.booleans())
        B = draw(st.integers(1 if batch else 0, 3))
        C = draw(st.integers(1, 4))
        spatial = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=3)))
        shape = (B, C) + spatial
        dtype = draw(st.sampled_from(DTYPES))
        activation = draw(st.sampled_from(ACTIVATIONS))
        target_kind = draw(st.sampled_from(TARGETS))
        opts = {
            "activation": activation,
            "batch": batch,
            "include_background": draw(st.booleans()),
            "reduction": draw(st.sampled_from(REDUCTIONS)),
            "smooth_nr": draw(st.sampled_from([0.0, 1e-5, 0.5])),
            "smooth_dr": draw(st.sampled_from([1e-5, 1e-3, 1.0])),
        }
        if kind == "tversky":
            opts["alpha"] = draw(st.floats(0.0, 2.0))
            opts["beta"] = draw(st.floats(0.0, 2.0))
        else:
            opts["squared"] = draw(st.booleans())
        layout = draw(st.sampled_from(["c"] + LAYOUTS))
        seed = draw(st.integers(0, 2**32 - 1))
        x, t = make_problem(seed, shape, activation, target_kind, dtype)
        return kind, x, t, opts, layout

    @SETTINGS
    @hypothesis.given(problem=problems())
    def test_property_matches_reference(backend, problem):
        kind, x, t, opts, layout = problem
        xl, tl = (x, t) if layout == "c" else (relayout(x, layout), relayout(t, layout))
        check_against_reference(kind, xl, tl, opts, what=f"{kind} {x.shape} {x.dtype} {opts} {layout}")

    @SETTINGS
    @hypothesis.given(problem=problems())
    def test_property_labels_equal_one_hot_and_reductions(backend, problem):
        kind, x, t, opts, _ = problem
        C = x.shape[1]
        labels = t if is_labels(x, t) else np.argmax(t, axis=1)
        dense = one_hot(labels, C, x.dtype)
        opts = {**opts, "reduction": "none"}
        vl, gl = call(kind, x, labels, return_grad=True, **opts)
        vd, gd = call(kind, x, dense, return_grad=True, **opts)
        rtol = 3e-7 if x.dtype == np.float32 else 1e-12
        assert_close(vl, vd, rtol, 1e-30)
        assert_close(gl, gd, rtol, 0.1 * rtol * max(scale_of(gd), 1e-30))
        s, gs = call(kind, x, labels, return_grad=True, **{**opts, "reduction": "sum"})
        m = call(kind, x, labels, **{**opts, "reduction": "mean"})
        tol = 1e-5 if x.dtype == np.float32 else 1e-12
        assert float(s) == pytest.approx(float(np.sum(f64(vl))), rel=tol, abs=tol)
        if vl.size:
            assert float(m) == pytest.approx(float(np.mean(f64(vl))), rel=tol, abs=tol)
        else:
            assert np.isnan(m) and s == 0
        assert_close(gs, gl, rtol, 0.1 * rtol * max(scale_of(gl), 1e-30))
