"""Segmentation inputs: dtypes, extreme logits, float32 sums, empty batches and spatial axes, background
and softmax channels, NaN, layouts, inputs never modified, parameter and input errors, bad labels."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from _segmentation import (
    ACT_IDS,
    ACTIVATIONS,
    LOSSES,
    TARGETS,
    call,
    check_against_reference,
    kind_variants,
    loss_fn,
    make_pred,
    make_problem,
    make_target,
    o,
    one_hot,
    ref_loss,
)
from conftest import (
    DTYPE_IDS,
    DTYPES,
    LAYOUTS,
    REDUCTIONS,
    assert_close,
    f64,
    relayout,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

import fastloss

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
