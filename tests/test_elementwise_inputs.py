"""Input handling: dtypes, memory layouts, shapes, weights, empty and non-finite inputs, domain
checks, parameter checks."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import CASE_BY_ID, CASE_IDS, CASES, REDUCTIONS, split_grad

import fastloss

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def _results(case, args, extras=None, **kw):
    """Every output of a case for one input: each reduction's value, and its gradient(s)."""
    out = []
    for reduction in REDUCTIONS:
        value, grad = case.call(args, extras, reduction=reduction, return_grad=True, **kw)
        out.append(np.asarray(value))
        out.extend(split_grad(case, grad))
    return out


def _assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ((np.float32, np.float32), F32),
        ((np.float64, np.float64), F64),
        ((np.float16, np.float16), F32),
        ((np.float32, np.float64), F64),
        ((np.float64, np.float32), F64),
        ((np.float16, np.float32), F32),
        ((np.float16, np.float64), F64),
        ((np.int64, np.int64), F64),
        ((np.int32, np.bool_), F64),
        ((np.bool_, np.bool_), F64),
        ((np.uint8, np.int16), F64),
        ((np.float32, np.int64), F32),
        ((np.int8, np.float32), F32),
        ((np.float16, np.int64), F32),
        ((np.float64, np.bool_), F64),
    ],
    ids=lambda x: "-".join(np.dtype(d).name for d in x) if isinstance(x, tuple) else str(x),
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_computation_dtype(backend, dtypes, expected, reduction):
    p = np.array([0, 1, 1, 0, 1]).astype(dtypes[0])
    t = np.array([1, 1, 0, 0, 1]).astype(dtypes[1])
    value, grad = fastloss.mse(p, t, reduction=reduction, return_grad=True)
    assert np.asarray(value).dtype == expected
    assert grad.dtype == expected and grad.shape == (5,)
    if reduction == "none":
        assert isinstance(value, np.ndarray) and value.shape == (5,)
    else:
        assert type(value) is expected.type  # a NumPy scalar, not a Python float or 0-d array
    assert float(fastloss.mse(p, t)) == pytest.approx(0.4)


@pytest.mark.parametrize("label_dtype", [np.int8, np.int64, np.float16])
def test_integer_labels_take_the_scores_dtype(backend, label_dtype):
    s = np.array([0.5, -2.0, 1.5], np.float32)
    y = np.array([1, -1, -1]).astype(label_dtype)
    value, grad = fastloss.hinge(s, y, return_grad=True)
    assert value.dtype == F32 and grad.dtype == F32
    assert float(value) == pytest.approx((0.5 + 0.0 + 2.5) / 3)
    y01 = np.array([True, False, True])
    v = fastloss.binary_cross_entropy_with_logits(s, y01, reduction="none")
    assert v.dtype == F32
    np.testing.assert_allclose(
        v, fastloss.binary_cross_entropy_with_logits(s, y01.astype(np.float32), reduction="none"), rtol=0
    )
    _, (g1, g2) = fastloss.margin_ranking_loss(s, s[::-1], np.array([1, -1, 1], np.int16), return_grad=True)
    assert g1.dtype == F32 and g2.dtype == F32


def test_float16_computes_as_float32(backend):
    rng = np.random.default_rng(0)
    p, t = rng.normal(0, 1, (2, 100)).astype(np.float16)
    for reduction in REDUCTIONS:
        got = fastloss.log_cosh(p, t, reduction=reduction, return_grad=True)
        want = fastloss.log_cosh(
            p.astype(np.float32), t.astype(np.float32), reduction=reduction, return_grad=True
        )
        _assert_same([np.asarray(got[0]), got[1]], [np.asarray(want[0]), want[1]])


@pytest.mark.parametrize(
    "bad",
    [
        np.array([1.0 + 1j, 2.0]),
        np.array([1.0, 2.0], dtype=np.complex64),
        np.array([1.0, 2.0], dtype=object),
        np.array(["1", "2"]),
        np.array([b"1", b"2"]),
        ["a", "b"],
        np.array([1, 2], dtype="datetime64[s]"),
    ],
    ids=["complex128", "complex64", "object", "str", "bytes", "str-list", "datetime"],
)
@pytest.mark.parametrize("position", ["first", "second", "weight"])
def test_unsupported_dtypes_raise_typeerror(backend, bad, position):
    good = np.array([1.0, 2.0])
    if position == "first":
        call = lambda: fastloss.mse(bad, good)  # noqa: E731
    elif position == "second":
        call = lambda: fastloss.mse(good, bad)  # noqa: E731
    else:
        call = lambda: fastloss.mse(good, good, weight=bad)  # noqa: E731
    with pytest.raises(TypeError):
        call()


def test_extended_precision_raises_typeerror(backend):
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match="extended precision"):
        fastloss.mse(np.ones(3, np.longdouble), np.ones(3))


def test_ragged_input_raises_valueerror(backend):
    with pytest.raises(ValueError, match="pred"):
        fastloss.mse([[1.0, 2.0], [3.0]], [1.0, 2.0])


# --------------------------------------------------------------------------------------------------
# Array-likes and memory layouts


def test_lists_scalars_and_0d(backend):
    assert fastloss.mse(1.0, 3.0) == 4.0
    assert fastloss.mse(np.float64(1.0), np.array(3.0)) == 4.0
    value, grad = fastloss.mse(1, 3, reduction="none", return_grad=True)
    assert isinstance(value, np.ndarray) and value.shape == () and value == 4.0
    assert grad.shape == () and grad == -4.0 and grad.dtype == F64
    value, grad = fastloss.mse(2.0, 3.0, return_grad=True)
    assert type(value) is np.float64 and grad.shape == () and grad == -2.0
    assert fastloss.mae([[1, 2], [3, 4]], [[1, 2], [3, 8]], reduction="sum") == 4.0
    assert fastloss.mse((1.0, 2.0), [1.0, 4.0]) == 2.0
    assert fastloss.mse(np.float32(1.0), np.float32(3.0)).dtype == F32
    assert fastloss.margin_ranking_loss(1.0, 0.0, -1, margin=0.5) == 1.5


def _layouts(x):
    """Views of the same logical data as x in other memory layouts, by name."""
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
    big[::2, ::3] = x
    rev = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    ro = x.copy()
    ro.setflags(write=False)
    return {
        "strided": big[::2, ::3],
        "fortran": np.asfortranarray(x),
        "negative-stride": rev,
        "transposed": np.ascontiguousarray(x.T).T,
        "read-only": ro,
    }


@pytest.mark.parametrize("layout", ["strided", "fortran", "negative-stride", "transposed", "read-only"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_memory_layout_does_not_change_results(backend, case_id, dtype, layout):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(4)
    args, extras = case.draw(rng, (37, 5), dtype)
    weight = rng.uniform(0.5, 2.0, (37, 5)).astype(dtype)
    want = _results(case, args, extras, weight=weight)
    views = [_layouts(a)[layout] for a in args]
    wview = _layouts(weight)[layout]
    for v, a in zip(views, args):
        np.testing.assert_array_equal(v, a)
    if layout != "read-only":
        assert not all(v.flags.c_contiguous for v in views)
    got = _results(case, tuple(views), extras, weight=wview)
    _assert_same(got, want)
    # one operand at a time, too
    for k in range(len(args)):
        mixed = tuple(views[i] if i == k else args[i] for i in range(len(args)))
        _assert_same(_results(case, mixed, extras, weight=weight), want)


def test_one_dimensional_negative_stride_and_step(backend):
    rng = np.random.default_rng(5)
    p, t = rng.normal(0, 1, (2, 9001))
    for sl in (slice(None, None, -1), slice(None, None, 3), slice(8000, 1, -7)):
        got = fastloss.huber(p[sl], t[sl], reduction="none", return_grad=True)
        want = fastloss.huber(p[sl].copy(), t[sl].copy(), reduction="none", return_grad=True)
        _assert_same(list(got), list(want))
        assert fastloss.huber(p[sl], t[sl]) == fastloss.huber(p[sl].copy(), t[sl].copy())


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_inputs_are_not_modified(backend, case_id):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(6)
    for dtype in (np.float32, np.float64, np.float16):
        args, extras = case.draw(rng, (9000,), np.float64)
        args = tuple(a.astype(dtype) for a in args)
        extras = {k: v.astype(dtype) for k, v in extras.items()}
        weight = rng.uniform(0.5, 2.0, 9000).astype(dtype)
        before = [a.copy() for a in args] + [v.copy() for v in extras.values()] + [weight.copy()]
        for reduction in REDUCTIONS:
            case.call(args, extras, weight=weight, reduction=reduction, return_grad=True)
            case.call(args, extras, weight=weight, reduction=reduction)
        after = list(args) + list(extras.values()) + [weight]
        for b, a in zip(before, after):
            np.testing.assert_array_equal(a, b)


def test_outputs_do_not_alias_inputs(backend):
    p = np.linspace(-1, 1, 11)
    t = np.zeros(11)
    out, grad = fastloss.mse(p, t, reduction="none", return_grad=True)
    for x in (out, grad):
        assert not np.shares_memory(x, p) and not np.shares_memory(x, t)
    out[:] = 99
    grad[:] = 99
    np.testing.assert_array_equal(p, np.linspace(-1, 1, 11))
    np.testing.assert_array_equal(t, np.zeros(11))


# --------------------------------------------------------------------------------------------------
# Shapes and weights


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((3,), (4,)), ((3, 1), (3,)), ((2, 3), (3, 2)), ((), (1,)), ((5,), ())],
)
def test_shape_mismatch_names_both_shapes(backend, shape_a, shape_b):
    a, b = np.zeros(shape_a), np.zeros(shape_b)
    for fn in (fastloss.mse, fastloss.rmse, fastloss.huber, fastloss.log_cosh, fastloss.pinball):
        with pytest.raises(ValueError) as exc:
            fn(a, b)
        msg = str(exc.value)
        assert str(shape_a) in msg and str(shape_b) in msg, msg
    with pytest.raises(ValueError, match=re.escape(str(shape_b))):
        fastloss.hinge(a, np.ones(shape_b))
    with pytest.raises(ValueError, match=re.escape(str(shape_b))):
        fastloss.binary_cross_entropy(a, np.zeros(shape_b))


def test_shape_mismatch_margin_ranking(backend):
    with pytest.raises(ValueError, match=r"x1 and x2.*\(3,\).*\(4,\)"):
        fastloss.margin_ranking_loss(np.zeros(3), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        fastloss.margin_ranking_loss(np.zeros(3), np.zeros(3), np.ones(2))


@pytest.mark.parametrize(
    ("wshape", "shape"),
    [
        ((5, 1), (5, 3)),
        ((3,), (5, 3)),
        ((1, 3), (5, 3)),
        ((1,), (5, 3)),
        ((), (5, 3)),
        ((1, 1), (5, 3)),
        ((5, 3), (5, 3)),
        ((4, 1, 3), (4, 2, 3)),
        ((2, 1), (4, 2, 3)),
    ],
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weight_broadcasts(backend, wshape, shape, reduction):
    rng = np.random.default_rng(7)
    p, t = rng.normal(0, 1, (2,) + shape)
    w = rng.uniform(0.5, 2, wshape)
    full = np.ascontiguousarray(np.broadcast_to(w, shape))
    v1, g1 = fastloss.log_cosh(p, t, weight=w, reduction=reduction, return_grad=True)
    v2, g2 = fastloss.log_cosh(p, t, weight=full, reduction=reduction, return_grad=True)
    np.testing.assert_allclose(v1, v2, rtol=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-14)
    assert g1.shape == shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_pos_weight_forms_agree(backend, dtype):
    rng = np.random.default_rng(12)
    x = rng.normal(0, 3, (50, 4)).astype(dtype)
    t = rng.random((50, 4)).astype(dtype)
    fn = fastloss.binary_cross_entropy_with_logits
    forms = [
        2.5,
        np.float32(2.5),
        np.array(2.5),
        np.array([2.5]),
        [2.5] * 4,
        np.full(4, 2.5),
        np.full((50, 4), 2.5),
        np.full((50, 1), 2.5),
        np.full((1, 1), 2.5),
    ]
    want = None
    for pw in forms:
        for reduction in REDUCTIONS:
            value, grad = fn(x, t, pos_weight=pw, reduction=reduction, return_grad=True)
            if reduction == "none":
                got = [np.asarray(value), grad]
                want = want or got
                _assert_same(got, want)
    loss, (g,) = CASE_BY_ID["bce_logits"].ref(x.astype(np.float64), t.astype(np.float64), 2.5)
    rtol = 5e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(want[0], loss, rtol=rtol)
    np.testing.assert_allclose(want[1], g, rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-15)
    _assert_same(
        list(fn(x, t, pos_weight=1.0, reduction="none", return_grad=True)),
        list(fn(x, t, reduction="none", return_grad=True)),
    )


def test_python_scalar_and_list_weights(backend):
    p, t = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0])
    assert fastloss.mse(p, t, weight=2.0, reduction="sum") == 28.0
    assert fastloss.mse(p, t, weight=2.0) == pytest.approx(14 / 3)
    assert fastloss.mse(p, t, weight=[1, 0, 1]) == 5.0
    assert fastloss.mse(p, t, weight=[1, 0, 1], reduction="sum") == 10.0
    np.testing.assert_array_equal(fastloss.mse(p, t, weight=[1, 0, 2], reduction="none"), [1.0, 0.0, 18.0])


@pytest.mark.parametrize(
    ("wshape", "shape"),
    [
        ((5,), (5, 3)),
        ((2,), (5,)),
        ((1, 1), (5,)),
        ((6,), (5,)),
        ((5, 3, 1), (5, 3)),
        ((2, 5, 3), (5, 3)),
        ((0,), (5,)),
        ((5,), (0,)),
    ],
)
def test_weight_that_does_not_broadcast_raises(backend, wshape, shape):
    p = np.zeros(shape)
    with pytest.raises(ValueError, match="weight"):
        fastloss.mse(p, p, weight=np.ones(wshape))
    with pytest.raises(ValueError, match="pos_weight"):
        fastloss.binary_cross_entropy_with_logits(p, p, pos_weight=np.ones(wshape))


def test_weighted_mean_is_sum_over_weight_sum_for_every_loss(backend):
    rng = np.random.default_rng(8)
    w = rng.uniform(0.1, 3.0, (40, 3))
    for case in CASES:
        args, extras = case.draw(rng, (40, 3))
        s = case.call(args, extras, weight=w, reduction="sum")
        m = case.call(args, extras, weight=w, reduction="mean")
        assert m == pytest.approx(s / w.sum(), rel=1e-13), case.id
        assert m != pytest.approx(s / w.size, rel=1e-3), case.id  # not torch's divide-by-N


# --------------------------------------------------------------------------------------------------
# Empty inputs


@pytest.mark.parametrize("shape", [(0,), (0, 3), (4, 0, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_empty_inputs(backend, case_id, dtype, shape):
    case = CASE_BY_ID[case_id]
    args, extras = case.draw(np.random.default_rng(0), shape, dtype)
    for weight in (None, np.ones(shape, dtype), 2.0):
        mean, gm = case.call(args, extras, weight=weight, reduction="mean", return_grad=True)
        total, gs = case.call(args, extras, weight=weight, reduction="sum", return_grad=True)
        none, gn = case.call(args, extras, weight=weight, reduction="none", return_grad=True)
        assert np.isnan(mean) and type(mean) is np.dtype(dtype).type
        assert total == 0 and type(total) is np.dtype(dtype).type
        assert none.shape == shape and none.dtype == dtype
        for g in split_grad(case, gm) + split_grad(case, gs) + split_grad(case, gn):
            assert g.shape == shape and g.dtype == dtype


def test_empty_rmse(backend):
    value, grad = fastloss.rmse(np.zeros(0), np.zeros(0), return_grad=True)
    assert np.isnan(value) and grad.shape == (0,)


# --------------------------------------------------------------------------------------------------
# NaN and infinity


@pytest.mark.parametrize("case_id", CASE_IDS)
@pytest.mark.parametrize("where", ["pred", "label"])
def test_nan_propagates(backend, case_id, where):
    case = CASE_BY_ID[case_id]
    args, extras = case.draw(np.random.default_rng(9), (3, 4))
    k = 0 if where == "pred" else len(args) - 1 if case.ngrads == 2 else 1
    args = [a.copy() for a in args]
    args[k][1, 2] = np.nan
    for reduction in ("mean", "sum"):
        value, grad = case.call(args, extras, reduction=reduction, return_grad=True)
        assert np.isnan(value), reduction
        for g in split_grad(case, grad):
            assert np.isnan(g[1, 2])
            mask = np.ones((3, 4), bool)
            mask[1, 2] = False
            assert np.all(np.isfinite(g[mask])), reduction
    value, grad = case.call(args, extras, reduction="none", return_grad=True)
    assert np.isnan(value[1, 2]) and np.isfinite(np.delete(value.ravel(), 6)).all()
    for g in split_grad(case, grad):
        assert np.isnan(g[1, 2]) and np.isfinite(np.delete(g.ravel(), 6)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_nan_in_large_input_propagates(backend, dtype):
    p = np.zeros(100_000, dtype)
    p[77_777] = np.nan
    t = np.ones(100_000, dtype)
    value, grad = fastloss.huber(p, t, return_grad=True)
    assert np.isnan(value) and np.isnan(grad[77_777]) and np.count_nonzero(np.isnan(grad)) == 1


def test_inf_residual(backend):
    value, grad = fastloss.mse([np.inf, 0.0], [0.0, 1.0], return_grad=True)
    assert value == np.inf and grad[0] == np.inf and grad[1] == -1.0
    assert fastloss.mse([-np.inf], [1.0]) == np.inf
    assert fastloss.mae([0.0, 0.0], [np.inf, 1.0]) == np.inf
    for delta in (1.0, 2.5):
        for reduction in ("none", "sum"):
            value, grad = fastloss.huber(
                [np.inf, -np.inf, 0.5], [0.0, 3.0, 0.0], delta=delta, reduction=reduction, return_grad=True
            )
            if reduction == "none":
                np.testing.assert_array_equal(value, [np.inf, np.inf, 0.125])
            else:
                assert value == np.inf
            np.testing.assert_array_equal(grad, [delta, -delta, 0.5])
        value, grad = fastloss.huber([np.inf], [0.0], delta=delta, return_grad=True)
        assert value == np.inf and grad[0] == delta


def test_bce_with_logits_infinite_logits_give_the_limit(backend):
    x = np.array([-np.inf, np.inf, -np.inf, np.inf])
    t = np.array([0.0, 1.0, 1.0, 0.0])
    value, grad = fastloss.binary_cross_entropy_with_logits(x, t, reduction="none", return_grad=True)
    np.testing.assert_array_equal(value, [0.0, 0.0, np.inf, np.inf])
    np.testing.assert_array_equal(grad[:2], [0.0, 0.0])
    assert np.all(np.isfinite(grad))
    assert fastloss.binary_cross_entropy_with_logits(x[:2], t[:2]) == 0.0
    v, g = fastloss.binary_cross_entropy_with_logits([-np.inf], [0.0], pos_weight=[3.0], return_grad=True)
    assert v == 0.0 and g[0] == 0.0
    v = fastloss.sigmoid_focal_loss(x[:2], t[:2], reduction="none")
    np.testing.assert_array_equal(v, [0.0, 0.0])


def test_bce_at_probability_0_and_1_is_finite(backend):
    value, grad = fastloss.binary_cross_entropy(
        [0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0], reduction="none", return_grad=True
    )
    np.testing.assert_array_equal(value, [100.0, 100.0, 0.0, 0.0])
    np.testing.assert_array_equal(grad, [-1e12, 1e12, 0.0, 0.0])


def test_log_cosh_and_pseudo_huber_large_residuals(backend):
    d = np.array([1e3, -1e3, 1e300, 800.0])
    value, grad = fastloss.log_cosh(d, np.zeros(4), reduction="none", return_grad=True)
    np.testing.assert_allclose(value, np.abs(d) - np.log(2.0), rtol=1e-15)
    np.testing.assert_array_equal(grad, np.sign(d))
    d = np.array([1e3, -1e3, 1e150, 800.0])  # beyond ~1e154 (d/delta)^2 overflows, as in SciPy
    value, grad = fastloss.pseudo_huber(d, np.zeros(4), delta=2.0, reduction="none", return_grad=True)
    assert np.all(np.isfinite(value))
    np.testing.assert_allclose(value, 4.0 * (np.sqrt(1 + (d / 2) ** 2) - 1), rtol=1e-14)
    np.testing.assert_allclose(grad, d / np.sqrt(1 + (d / 2) ** 2), rtol=1e-14)
    value, grad = fastloss.pseudo_huber([np.inf], [0.0], delta=2.0, return_grad=True)
    assert value == np.inf and grad[0] == 2.0


# --------------------------------------------------------------------------------------------------
# Kinks: the derivative is 0 there


def test_derivative_is_zero_at_kinks(backend):
    p = np.array([1.0, 2.0, -3.5])
    for reduction in REDUCTIONS:
        _, g = fastloss.mae(p, p.copy(), reduction=reduction, return_grad=True)
        np.testing.assert_array_equal(g, 0.0)
        for q in (0.0, 0.3, 1.0):
            _, g = fastloss.pinball(p, p.copy(), quantile=q, reduction=reduction, return_grad=True)
            np.testing.assert_array_equal(g, 0.0)
        # the margin exactly met: t * s == margin
        _, g = fastloss.hinge([1.0, -1.0, 0.5], [1, -1, 1], margin=1.0, reduction=reduction, return_grad=True)
        np.testing.assert_array_equal(g, [0.0, 0.0, -1.0 if reduction != "mean" else -1 / 3])
        _, g = fastloss.hinge(
            [2.0, -0.5], [1, -1], margin=0.5, squared=True, reduction=reduction, return_grad=True
        )
        np.testing.assert_array_equal(g, [0.0, 0.0])
        _, (g1, g2) = fastloss.margin_ranking_loss(
            [1.5, 0.0], [1.0, 0.5], [1, -1], margin=0.5, reduction=reduction, return_grad=True
        )
        np.testing.assert_array_equal(g1, 0.0)
        np.testing.assert_array_equal(g2, 0.0)
        _, g = fastloss.mse(p, p.copy(), reduction=reduction, return_grad=True)
        np.testing.assert_array_equal(g, 0.0)


def test_smooth_l1_beta_zero_is_mae(backend):
    rng = np.random.default_rng(10)
    for dtype in (np.float32, np.float64):
        p, t = rng.normal(0, 1, (2, 5, 7)).astype(dtype)
        t[0, :3] = p[0, :3]
        w = rng.uniform(0.5, 2, (5, 1)).astype(dtype)
        for reduction in REDUCTIONS:
            for weight in (None, w):
                got = fastloss.smooth_l1(p, t, beta=0.0, weight=weight, reduction=reduction, return_grad=True)
                want = fastloss.mae(p, t, weight=weight, reduction=reduction, return_grad=True)
                _assert_same([np.asarray(got[0]), got[1]], [np.asarray(want[0]), want[1]])
        assert fastloss.smooth_l1(p, t, beta=0) == fastloss.mae(p, t)


# --------------------------------------------------------------------------------------------------
# Domain checks on labels and probabilities


LABEL_ERRORS = [
    # (function, kwargs, bad argument index, bad value, message fragment)
    ("hinge", {}, 1, 0.5, "hinge: target must be exactly -1 or +1"),
    ("hinge", {}, 1, 0.0, "hinge: target must be exactly -1 or +1"),
    ("hinge", {"squared": True}, 1, 2.0, "hinge: target must be exactly -1 or +1"),
    ("hinge", {}, 1, np.inf, "hinge: target must be exactly -1 or +1"),
    ("margin_ranking_loss", {}, 2, 0.0, "margin_ranking_loss: target must be exactly -1 or +1"),
    ("binary_cross_entropy", {}, 0, 1.5, "binary_cross_entropy: probs must lie in [0, 1]"),
    ("binary_cross_entropy", {}, 0, -1e-30, "binary_cross_entropy: probs must lie in [0, 1]"),
    ("binary_cross_entropy", {}, 1, 1.25, "binary_cross_entropy: target must lie in [0, 1]"),
    (
        "binary_cross_entropy_with_logits",
        {},
        1,
        -0.5,
        "binary_cross_entropy_with_logits: target must lie in [0, 1]",
    ),
    (
        "binary_cross_entropy_with_logits",
        {"pos_weight": 2.0},
        1,
        3.0,
        "binary_cross_entropy_with_logits: target must lie in [0, 1]",
    ),
    ("sigmoid_focal_loss", {}, 1, 2.0, "sigmoid_focal_loss: target must lie in [0, 1]"),
    ("sigmoid_focal_loss", {}, 1, -np.inf, "sigmoid_focal_loss: target must lie in [0, 1]"),
]


def _valid_inputs(fn_name, shape):
    rng = np.random.default_rng(11)
    pm1 = rng.choice([-1.0, 1.0], shape)
    unit = rng.uniform(0.1, 0.9, shape)
    if fn_name == "hinge":
        return [rng.normal(size=shape), pm1]
    if fn_name == "margin_ranking_loss":
        return [rng.normal(size=shape), rng.normal(size=shape), pm1]
    if fn_name == "binary_cross_entropy":
        return [unit, rng.uniform(0, 1, shape)]
    return [rng.normal(size=shape), rng.uniform(0, 1, shape)]


def _arg_name(fn_name, k):
    names = {
        "hinge": ["scores", "target"],
        "margin_ranking_loss": ["x1", "x2", "target"],
        "binary_cross_entropy": ["probs", "target"],
    }
    return names.get(fn_name, ["logits", "target"])[k]


@pytest.mark.parametrize(("fn_name", "kwargs", "k", "bad", "fragment"), LABEL_ERRORS)
@pytest.mark.parametrize(
    ("shape", "positions"),
    [
        ((6,), [(3,)]),
        ((4, 5), [(1, 2), (3, 0)]),
        ((2, 3, 4), [(1, 0, 3), (1, 2, 0)]),
        ((50_000,), [(41_000,), (49_999,)]),
        ((3, 20_000), [(2, 19_999)]),
    ],
    ids=["1d", "2d", "3d", "large", "large-2d"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_label_error_names_first_bad_position(
    backend, fn_name, kwargs, k, bad, fragment, shape, positions, dtype
):
    args = [a.astype(dtype) for a in _valid_inputs(fn_name, shape)]
    for pos in positions:
        args[k][pos] = bad
    first = positions[0]
    index = ", ".join(map(str, first))
    name = _arg_name(fn_name, k)
    expected = f"{fragment}; found {name}[{index}] = {float(dtype(bad))!r}"
    for reduction in REDUCTIONS:
        for return_grad in (False, True):
            with pytest.raises(ValueError) as exc:
                getattr(fastloss, fn_name)(*args, **kwargs, reduction=reduction, return_grad=return_grad)
            assert str(exc.value) == expected


def test_label_error_reports_the_earliest_argument_position(backend):
    p = np.full(10, 0.5)
    t = np.full(10, 0.5)
    p[7] = 2.0
    t[4] = -1.0
    with pytest.raises(ValueError, match=re.escape("target[4] = -1.0")):
        fastloss.binary_cross_entropy(p, t)
    t[4] = 0.5
    t[7] = 3.0
    with pytest.raises(ValueError, match=re.escape("probs[7] = 2.0")):
        fastloss.binary_cross_entropy(p, t)


def test_integer_label_error_shows_the_value(backend):
    with pytest.raises(ValueError, match=re.escape("found target[2] = 2.0")):
        fastloss.hinge([0.5, 1.0, 2.0], np.array([1, -1, 2], np.int8))
    with pytest.raises(ValueError, match=r"found target\[\] = 0\.5|target"):
        fastloss.hinge(1.0, 0.5)


def test_nan_labels_are_not_errors(backend):
    value, grad = fastloss.hinge([1.0, 2.0, -1.0], [1.0, np.nan, -1.0], reduction="none", return_grad=True)
    assert np.isnan(value[1]) and np.isnan(grad[1]) and value[0] == 0.0 and value[2] == 0.0
    assert np.isnan(fastloss.hinge([1.0, 2.0], [1.0, np.nan]))
    assert np.isnan(fastloss.binary_cross_entropy([0.5, np.nan], [np.nan, 0.5], reduction="none")).all()
    assert np.isnan(fastloss.binary_cross_entropy_with_logits([0.5], [np.nan]))
    assert np.isnan(fastloss.sigmoid_focal_loss([0.5], [np.nan]))
    v, (g1, g2) = fastloss.margin_ranking_loss(
        [0.5, 1.0], [0.0, 0.0], [np.nan, 1.0], reduction="none", return_grad=True
    )
    assert np.isnan(v[0]) and np.isnan(g1[0]) and np.isnan(g2[0]) and v[1] == 0.0


def test_valid_boundary_labels_are_accepted(backend):
    fastloss.hinge([0.3, 0.3], [-1.0, 1.0])
    fastloss.binary_cross_entropy([0.0, 1.0, 0.5], [0.0, 1.0, 1.0])
    fastloss.binary_cross_entropy_with_logits([3.0, -3.0], [0.0, 1.0])
    fastloss.sigmoid_focal_loss([3.0, -3.0], [-0.0, 1.0])


# --------------------------------------------------------------------------------------------------
# Parameters


def _fn(name):
    return getattr(fastloss, name)


BAD_PARAMS = [
    ("huber", "delta", 0.0, ValueError),
    ("huber", "delta", -1.0, ValueError),
    ("huber", "delta", np.nan, ValueError),
    ("huber", "delta", "1", TypeError),
    ("huber", "delta", True, TypeError),
    ("huber", "delta", np.bool_(True), TypeError),
    ("huber", "delta", None, TypeError),
    ("huber", "delta", [1.0], TypeError),
    ("huber", "delta", 1 + 0j, TypeError),
    ("smooth_l1", "beta", -0.5, ValueError),
    ("smooth_l1", "beta", np.nan, ValueError),
    ("smooth_l1", "beta", "x", TypeError),
    ("smooth_l1", "beta", False, TypeError),
    ("pseudo_huber", "delta", 0.0, ValueError),
    ("pseudo_huber", "delta", -2.0, ValueError),
    ("pseudo_huber", "delta", np.nan, ValueError),
    ("pinball", "quantile", -0.01, ValueError),
    ("pinball", "quantile", 1.01, ValueError),
    ("pinball", "quantile", np.nan, ValueError),
    ("pinball", "quantile", True, TypeError),
    ("pinball", "quantile", "0.5", TypeError),
    ("hinge", "margin", np.nan, ValueError),
    ("hinge", "margin", "1", TypeError),
    ("hinge", "margin", True, TypeError),
    ("hinge", "squared", 1, TypeError),
    ("hinge", "squared", "yes", TypeError),
    ("sigmoid_focal_loss", "alpha", 1.5, ValueError),
    ("sigmoid_focal_loss", "alpha", np.nan, ValueError),
    ("sigmoid_focal_loss", "gamma", -0.1, ValueError),
    ("sigmoid_focal_loss", "gamma", np.nan, ValueError),
    ("sigmoid_focal_loss", "gamma", True, TypeError),
    ("sigmoid_focal_loss", "alpha", "a", TypeError),
    ("margin_ranking_loss", "margin", np.nan, ValueError),
    ("margin_ranking_loss", "margin", False, TypeError),
    ("margin_ranking_loss", "margin", "0", TypeError),
]


def _good_args(name):
    if name == "margin_ranking_loss":
        return [[0.1, 0.2], [0.3, 0.4], [1, -1]]
    if name == "hinge":
        return [[0.1, 0.2], [1, -1]]
    return [[0.1, 0.2], [0.3, 0.4]]


@pytest.mark.parametrize(("name", "param", "value", "exc"), BAD_PARAMS)
def test_bad_parameters(backend, name, param, value, exc):
    with pytest.raises(exc, match=param):
        _fn(name)(*_good_args(name), **{param: value})
    # checked before any work: before the shape check and the domain checks
    bad_inputs = [np.zeros(2)] * (len(_good_args(name)) - 1) + [np.full(3, 7.0)]
    with pytest.raises(exc, match=param):
        _fn(name)(*bad_inputs, **{param: value})


GOOD_PARAMS = [
    ("huber", "delta", np.float32(0.5)),
    ("huber", "delta", np.array(2.0)),
    ("huber", "delta", 3),
    ("huber", "delta", np.int64(3)),
    ("huber", "delta", np.inf),
    ("smooth_l1", "beta", 0),
    ("pinball", "quantile", 0),
    ("pinball", "quantile", 1),
    ("pinball", "quantile", np.float64(0.25)),
    ("hinge", "margin", -1.0),
    ("hinge", "squared", np.bool_(True)),
    ("sigmoid_focal_loss", "alpha", -5.0),
    ("sigmoid_focal_loss", "alpha", 1.0),
    ("sigmoid_focal_loss", "gamma", 0),
    ("margin_ranking_loss", "margin", -0.5),
]


@pytest.mark.parametrize(("name", "param", "value"), GOOD_PARAMS)
def test_good_parameters(backend, name, param, value):
    out = _fn(name)(*_good_args(name), **{param: value})
    assert not np.isnan(out)


@pytest.mark.parametrize("name", sorted({c.fn.__name__ for c in CASES} | {"rmse"}))
def test_bad_reduction(backend, name):
    args = _good_args(name)
    with pytest.raises(ValueError, match="reduction"):
        _fn(name)(*args, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        _fn(name)(*args, reduction="MEAN")
    for bad in (None, 1, b"mean", ["mean"]):
        with pytest.raises(TypeError, match="reduction"):
            _fn(name)(*args, reduction=bad)
    # checked before the inputs
    with pytest.raises(ValueError, match="reduction"):
        _fn(name)(*[np.zeros(2)] * (len(args) - 1), np.zeros(5), reduction="avg")
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="return_grad"):
            _fn(name)(*args, return_grad=bad)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_rmse_requires_mean(backend, reduction):
    with pytest.raises(ValueError, match="rmse"):
        fastloss.rmse([1.0, 2.0], [1.0, 3.0], reduction=reduction)
    with pytest.raises(ValueError, match="rmse"):
        fastloss.rmse([1.0, 2.0], [1.0, 3.0], reduction=reduction, return_grad=True)


def test_parameters_are_keyword_only(backend):
    with pytest.raises(TypeError):
        fastloss.huber([1.0], [2.0], 0.5)
    with pytest.raises(TypeError):
        fastloss.mse([1.0], [2.0], None)
    with pytest.raises(TypeError):
        fastloss.margin_ranking_loss([1.0], [2.0], [1], 0.5)
