"""The class-wise losses beyond cross-entropy: softmax_focal_loss, poly1_cross_entropy,
multiclass_hinge and kl_div against an independent NumPy formulation, their special cases, finite
differences, errors, NaN and empty inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _classwise import (
    FOCAL_CASES,
    FOCAL_IDS,
    HINGE_CASES,
    HINGE_IDS,
    KL_SHAPES,
    LOSS_SHAPE_IDS,
    LOSS_SHAPES,
    POLY1_CASES,
    POLY1_IDS,
    _hinge_fd_problem,
    _seed,
    as_rows,
    class_weight,
    close_in,
    focal_kwargs,
    make_index_problem,
    make_kl_problem,
    pos_shape,
    ref_kl_terms,
    ref_log_softmax_rows,
    scale_of,
)
from conftest import DTYPES, REDUCTIONS, fd_grad

import fastloss


def _targets(y, ignore_index):
    y = np.asarray(y).reshape(-1).astype(np.int64)
    keep = np.ones(y.shape, bool) if ignore_index is None else y != ignore_index
    return np.where(keep, y, 0), keep


def ref_focal_rows(x, y, *, gamma=2.0, alpha=None, ignore_index=-100):
    r = as_rows(x)
    C = r.shape[1]
    yc, keep = _targets(y, ignore_index)
    idx = np.arange(yc.size)
    logp = ref_log_softmax_rows(r)
    p = np.exp(logp)
    onehot = np.arange(C)[None, :] == yc[:, None]
    q = np.sum(np.where(onehot, 0.0, p), axis=1)  # 1 - p_y, summed from the other classes
    a = np.ones(C) if alpha is None else np.broadcast_to(np.asarray(alpha, np.float64), (C,))
    loss = -a[yc] * q**gamma * logp[idx, yc]
    return np.where(keep, loss, 0.0), keep


def ref_poly1_rows(x, y, *, epsilon=1.0, ignore_index=-100):
    r = as_rows(x)
    yc, keep = _targets(y, ignore_index)
    idx = np.arange(yc.size)
    logp = ref_log_softmax_rows(r)
    loss = -logp[idx, yc] + epsilon * (1.0 - np.exp(logp[idx, yc]))
    return np.where(keep, loss, 0.0), keep


def ref_hinge_rows(x, y, *, margin=1.0, p=1, weight=None, method="weston_watkins"):
    r = as_rows(x)
    npos, C = r.shape
    yc, keep = _targets(y, None)
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    loss = np.zeros(npos)
    for i in range(npos):
        s, t = r[i], yc[i]
        others = [s[j] for j in range(C) if j != t]
        if method == "weston_watkins":
            loss[i] = w[t] / C * sum(max(0.0, margin - s[t] + sj) ** p for sj in others)
        elif others:
            loss[i] = w[t] * max(0.0, margin + max(others) - s[t]) ** p
    return loss, keep


def ref_reduce_pos(loss, keep, reduction, shape):
    if reduction == "none":
        return loss.reshape(pos_shape(shape))
    total = np.sum(loss)
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(total) / np.float64(np.sum(keep))


def ref_kl(x, t, *, log_target=False, reduction="batchmean"):
    terms = ref_kl_terms(x, t, log_target=log_target)
    if reduction == "none":
        return terms
    total = np.sum(terms)
    if reduction == "sum":
        return total
    n = terms.size if reduction == "mean" else (terms.shape[0] if terms.ndim else 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(total) / np.float64(n)


METHODS = ["weston_watkins", "crammer_singer"]


def _check_result(res, dtype, reduction, shape):
    """fastloss result: dtype and shape."""
    if reduction == "none":
        assert isinstance(res, np.ndarray) and res.dtype == dtype and res.shape == pos_shape(shape)
    else:
        assert np.ndim(res) == 0 and np.asarray(res).dtype == dtype


# --------------------------------------------------------------------------------------------------
# 1. Values against the NumPy formulation


@pytest.mark.parametrize("shape_id", LOSS_SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", FOCAL_CASES, ids=FOCAL_IDS)
def test_focal_values_numpy_ref(backend, case, dtype, reduction, shape_id):
    shape = LOSS_SHAPES[shape_id]
    seed = _seed("focal", case[0], shape_id)
    kw, ign = focal_kwargs(case, shape[1], seed)
    x, y = make_index_problem(shape, seed, ignore_index=ign, dtype=dtype)
    got = fastloss.softmax_focal_loss(x, y, reduction=reduction, **kw)
    _check_result(got, dtype, reduction, shape)
    loss, keep = ref_focal_rows(x, y, gamma=kw["gamma"], alpha=kw["alpha"], ignore_index=ign)
    close_in(got, ref_reduce_pos(loss, keep, reduction, shape), dtype, "focal")


@pytest.mark.parametrize("shape_id", LOSS_SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POLY1_CASES, ids=POLY1_IDS)
def test_poly1_values_numpy_ref(backend, case, dtype, reduction, shape_id):
    shape = LOSS_SHAPES[shape_id]
    _, eps, ign = case
    x, y = make_index_problem(shape, _seed("poly1", case[0], shape_id), ignore_index=ign, dtype=dtype)
    kw = {"epsilon": eps} if ign is None else {"epsilon": eps, "ignore_index": ign}
    got = fastloss.poly1_cross_entropy(x, y, reduction=reduction, **kw)
    _check_result(got, dtype, reduction, shape)
    loss, keep = ref_poly1_rows(x, y, epsilon=eps, ignore_index=ign)
    close_in(got, ref_reduce_pos(loss, keep, reduction, shape), dtype, "poly1")


@pytest.mark.parametrize("shape_id", LOSS_SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", HINGE_CASES, ids=HINGE_IDS)
def test_hinge_values_numpy_ref(backend, case, method, dtype, reduction, shape_id):
    shape = LOSS_SHAPES[shape_id]
    _, p, margin, weighted = case
    seed = _seed("hinge", case[0], method, shape_id)
    x, y = make_index_problem(shape, seed, scale=1.0, dtype=dtype)
    w = class_weight(weighted, shape[1], seed, dtype)
    got = fastloss.multiclass_hinge(x, y, margin=margin, p=p, weight=w, method=method, reduction=reduction)
    _check_result(got, dtype, reduction, shape)
    loss, keep = ref_hinge_rows(x, y, margin=margin, p=p, weight=w, method=method)
    close_in(got, ref_reduce_pos(loss, keep, reduction, shape), dtype, "hinge")


@pytest.mark.parametrize("shape_id", list(KL_SHAPES))
@pytest.mark.parametrize("reduction", ["batchmean", *REDUCTIONS])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("log_target", [False, True], ids=["prob", "logt"])
def test_kl_values_numpy_ref(backend, log_target, dtype, reduction, shape_id):
    shape = KL_SHAPES[shape_id]
    x, t = make_kl_problem(shape, _seed("kl", shape_id, log_target), dtype=dtype, log_target=log_target)
    got, grad = fastloss.kl_div(x, t, log_target=log_target, reduction=reduction, return_grad=True)
    want = ref_kl(x, t, log_target=log_target, reduction=reduction)
    terms = ref_kl_terms(x, t, log_target=log_target)
    assert np.asarray(got).dtype == dtype and grad.dtype == dtype and grad.shape == shape
    # the terms are of both signs: allow for the cancellation in the total
    close_in(got, want, dtype, "kl", scale=float(np.sum(np.abs(terms))) if reduction != "none" else None)
    # d/dinput = -P, scaled by the reduction
    p = np.exp(t.astype(np.float64)) if log_target else t.astype(np.float64)
    div = {"none": 1, "sum": 1, "mean": t.size, "batchmean": shape[0]}[reduction]
    close_in(grad, -p / div, dtype, "kl grad")


def test_focal_gamma0_equals_cross_entropy(backend):
    for shape in LOSS_SHAPES.values():
        for dtype in DTYPES:
            x, y = make_index_problem(shape, _seed("fce", shape), ignore_index=-100, dtype=dtype)
            for reduction in REDUCTIONS:
                f, fg = fastloss.softmax_focal_loss(x, y, gamma=0.0, reduction=reduction, return_grad=True)
                c, cg = fastloss.cross_entropy(x, y, reduction=reduction, return_grad=True)
                close_in(f, c, dtype, f"focal gamma=0 vs ce {shape} {reduction}")
                close_in(fg, cg, dtype, f"focal gamma=0 grad vs ce {shape} {reduction}")


def test_poly1_eps0_equals_cross_entropy(backend):
    for shape in LOSS_SHAPES.values():
        x, y = make_index_problem(shape, _seed("pce", shape), ignore_index=3)
        for reduction in REDUCTIONS:
            f, fg = fastloss.poly1_cross_entropy(
                x, y, epsilon=0.0, ignore_index=3, reduction=reduction, return_grad=True
            )
            c, cg = fastloss.cross_entropy(x, y, ignore_index=3, reduction=reduction, return_grad=True)
            close_in(f, c, np.float64, f"poly1 eps=0 vs ce {shape} {reduction}")
            close_in(fg, cg, np.float64, f"poly1 eps=0 grad vs ce {shape} {reduction}")


def test_focal_mean_is_not_divided_by_alpha(backend):
    """'mean' averages over the non-ignored positions; alpha is a factor, not a weight."""
    x, y = make_index_problem((9, 3), 5, ignore_index=-100)
    alpha = np.array([0.2, 0.5, 3.0])
    per = fastloss.softmax_focal_loss(x, y, alpha=alpha, reduction="none")
    mean = fastloss.softmax_focal_loss(x, y, alpha=alpha, reduction="mean")
    n_kept = int(np.sum(y != -100))
    assert 0 < n_kept < y.size
    assert np.all(per[y == -100] == 0.0)
    close_in(mean, np.sum(per) / n_kept, np.float64)
    # a scalar alpha scales every term
    plain = fastloss.softmax_focal_loss(x, y, reduction="none")
    close_in(fastloss.softmax_focal_loss(x, y, alpha=0.3, reduction="none"), 0.3 * plain, np.float64)
    close_in(fastloss.softmax_focal_loss(x, y, alpha=0.3), 0.3 * np.sum(plain) / n_kept, np.float64)


def test_hinge_ww_weight_mean_over_positions(backend):
    x, y = make_index_problem((8, 4), 11, scale=1.0)
    w = np.array([0.5, 1.0, 2.0, 4.0])
    per = fastloss.multiclass_hinge(x, y, weight=w, reduction="none")
    close_in(fastloss.multiclass_hinge(x, y, weight=w), np.sum(per) / 8, np.float64)


@pytest.mark.parametrize("method", METHODS)
def test_hinge_single_class_is_zero(backend, method):
    x = np.array([[3.0], [-1.0], [0.0]])
    y = np.zeros(3, np.int64)
    for p in (1, 2):
        v, g = fastloss.multiclass_hinge(x, y, p=p, method=method, reduction="none", return_grad=True)
        np.testing.assert_array_equal(v, np.zeros(3))
        np.testing.assert_array_equal(g, np.zeros((3, 1)))
        assert fastloss.multiclass_hinge(x, y, p=p, method=method) == 0.0


def test_crammer_singer_gradient_goes_to_first_argmax(backend):
    x = np.array([[0.0, 2.0, 2.0, 1.0], [2.0, 2.0, 1.0, -3.0], [5.0, 0.0, 1.0, 1.0]])
    y = np.array([0, 1, 0])
    v, g = fastloss.multiclass_hinge(
        x, y, method="crammer_singer", reduction="none", return_grad=True
    )  # row 2 satisfies the margin
    np.testing.assert_allclose(v, [3.0, 1.0, 0.0])
    np.testing.assert_array_equal(g, [[-1.0, 1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    v2, g2 = fastloss.multiclass_hinge(
        x, y, method="crammer_singer", p=2, margin=0.5, weight=[1.0, 3.0, 1.0, 1.0], return_grad=True
    )
    # p=2, margin 0.5: h = 2.5 (w 1), 0.5 (w 3), 0; mean over the 3 positions
    np.testing.assert_allclose(v2, (2.5**2 + 3.0 * 0.5**2) / 3)
    want = np.array([[-5.0, 5.0, 0.0, 0.0], [3.0, -3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]) / 3
    np.testing.assert_allclose(g2, want, rtol=1e-15)


def test_unbatched_scores(backend):
    """(C,) scores with a scalar target are one position of (1, C)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=5)
    calls = [
        lambda s, t, **k: fastloss.softmax_focal_loss(s, t, gamma=1.5, alpha=[1, 2, 3, 4, 5.0], **k),
        lambda s, t, **k: fastloss.poly1_cross_entropy(s, t, epsilon=2.0, **k),
        lambda s, t, **k: fastloss.multiclass_hinge(s, t, p=2, **k),
        lambda s, t, **k: fastloss.multiclass_hinge(s, t, method="crammer_singer", **k),
    ]
    for i, f in enumerate(calls):
        for reduction in REDUCTIONS:
            v1, g1 = f(x, 2, reduction=reduction, return_grad=True)
            v2, g2 = f(x[None], np.array([2]), reduction=reduction, return_grad=True)
            assert np.shape(v1) == () and g1.shape == (5,), i
            close_in(v1, np.reshape(v2, ()), np.float64, f"call {i} {reduction}")
            close_in(g1, g2[0], np.float64, f"call {i} {reduction} grad")


def test_integer_scores_and_unsigned_targets(backend):
    x = np.array([[2, 0, -1], [0, 1, 0]])
    y = np.array([0, 2], dtype=np.uint8)
    xf = x.astype(np.float64)
    y64 = y.astype(np.int64)
    for f in (
        fastloss.softmax_focal_loss,
        fastloss.poly1_cross_entropy,
        fastloss.multiclass_hinge,
    ):
        got = f(x, y)
        assert np.asarray(got).dtype == np.float64
        assert got == f(xf, y64)


def test_huge_ignore_index_matches_nothing(backend):
    x, y = make_index_problem((6, 4), 9)
    for f in (fastloss.softmax_focal_loss, fastloss.poly1_cross_entropy):
        close_in(f(x, y, ignore_index=2**70), f(x, y), np.float64, f.__name__)
        with pytest.raises(ValueError, match=r"found target\[2\] = -100"):
            f(x, np.array([0, 1, -100, 2, 3, 0]), ignore_index=2**70)


def test_all_ignored(backend):
    x, _ = make_index_problem((3, 4), 1)
    y = np.full(3, -100)
    for f in (fastloss.softmax_focal_loss, fastloss.poly1_cross_entropy):
        v, g = f(x, y, return_grad=True)
        assert np.isnan(v)
        np.testing.assert_array_equal(g, np.zeros_like(x))
        s, gs = f(x, y, reduction="sum", return_grad=True)
        assert s == 0.0
        np.testing.assert_array_equal(gs, np.zeros_like(x))


def test_noncontiguous_inputs(backend):
    rng = np.random.default_rng(4)
    base = np.asfortranarray(rng.normal(size=(4, 6, 5)))
    x = base[:, ::2, :]  # (4, 3, 5): Fortran order and strided
    y = rng.integers(0, 3, (4, 5))
    yv = np.repeat(y, 2, axis=1)[:, ::2]  # strided target
    xc = np.ascontiguousarray(x)
    yc = np.ascontiguousarray(yv)
    for f in (fastloss.softmax_focal_loss, fastloss.poly1_cross_entropy, fastloss.multiclass_hinge):
        v, g = f(x, yv, reduction="none", return_grad=True)
        vc, gc = f(xc, yc, reduction="none", return_grad=True)
        np.testing.assert_array_equal(v, vc)
        np.testing.assert_array_equal(g, gc)
    t = np.abs(base[:, 1::2, :])
    v, g = fastloss.kl_div(x, t, reduction="none", return_grad=True)
    np.testing.assert_array_equal(v, fastloss.kl_div(xc, np.ascontiguousarray(t), reduction="none"))
    np.testing.assert_array_equal(g, -t)


# --------------------------------------------------------------------------------------------------
# 2b. Gradients against central finite differences (float64)


LOSS_FD_SHAPES = [(4, 3), (2, 3, 2, 2)]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("shape", LOSS_FD_SHAPES, ids=["2d", "seg"])
def test_focal_poly1_grad_finite_differences(backend, shape, reduction):
    C = shape[1]
    x, y = make_index_problem(shape, _seed("fd", shape), ignore_index=-100)
    y1 = np.where(y == -100, 1, y)
    calls = {
        "focal_g2": lambda s, **k: fastloss.softmax_focal_loss(s, y, **k),
        "focal_g0.7_alpha": lambda s, **k: fastloss.softmax_focal_loss(
            s, y, gamma=0.7, alpha=np.linspace(0.2, 1.0, C), **k
        ),
        "focal_g0": lambda s, **k: fastloss.softmax_focal_loss(s, y, gamma=0.0, **k),
        "poly1_e1": lambda s, **k: fastloss.poly1_cross_entropy(s, y, **k),
        "poly1_e-2_ignore1": lambda s, **k: fastloss.poly1_cross_entropy(
            s, y1, epsilon=-2.0, ignore_index=1, **k
        ),
    }
    for name, f in calls.items():
        _, g = f(x, reduction=reduction, return_grad=True)
        want = fd_grad(lambda s, f=f: float(f(s, reduction=reduction)), x)
        np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8 * scale_of(want), err_msg=name)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("shape", LOSS_FD_SHAPES, ids=["2d", "seg"])
@pytest.mark.parametrize("method", METHODS)
def test_hinge_grad_finite_differences(backend, method, shape, reduction):
    C = shape[1]
    for p, margin, w in ((1, 1.0, None), (2, 0.5, np.linspace(0.5, 2.0, C))):
        x, y = _hinge_fd_problem(shape, _seed("hfd", shape, p), method, margin)

        def f(s, p=p, margin=margin, w=w, y=y, **k):
            return fastloss.multiclass_hinge(s, y, p=p, margin=margin, weight=w, method=method, **k)

        _, g = f(x, reduction=reduction, return_grad=True)
        want = fd_grad(lambda s, f=f: float(f(s, reduction=reduction)), x)
        np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8 * scale_of(want), err_msg=f"p={p}")


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean"])
@pytest.mark.parametrize("log_target", [False, True], ids=["prob", "logt"])
def test_kl_grad_finite_differences(backend, log_target, reduction):
    x, t = make_kl_problem((3, 4), 17, log_target=log_target)
    _, g = fastloss.kl_div(x, t, log_target=log_target, reduction=reduction, return_grad=True)
    want = fd_grad(lambda s: float(fastloss.kl_div(s, t, log_target=log_target, reduction=reduction)), x)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8 * scale_of(want))


# --------------------------------------------------------------------------------------------------
# 3. Errors


X3 = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [2.0, 1.0, 0.0]])


INDEX_FNS = {
    "focal": fastloss.softmax_focal_loss,
    "poly1": fastloss.poly1_cross_entropy,
    "hinge_ww": fastloss.multiclass_hinge,
    "hinge_cs": lambda *a, **k: fastloss.multiclass_hinge(*a, method="crammer_singer", **k),
}


HAS_IGNORE = {"focal": True, "poly1": True, "hinge_ww": False, "hinge_cs": False}


def _unchanged(f, x, y):
    """Calls f(x, y) on copies and checks that they were left as they were."""
    xc, yc = x.copy(), y.copy()
    try:
        f(xc, yc)
    finally:
        np.testing.assert_array_equal(xc, x)
        np.testing.assert_array_equal(yc, y)
        assert xc.dtype == x.dtype and yc.dtype == y.dtype


@pytest.mark.parametrize("name", list(INDEX_FNS))
def test_bad_label_names_position_and_value(backend, name):
    f = INDEX_FNS[name]
    ign = " or ignore_index=-100" if HAS_IGNORE[name] else ""
    for y, where, val in (([0, 3, 1], "1", 3), ([0, 1, -1], "2", -1), ([7, 1, -5], "0", 7)):
        y = np.array(y)
        msg = rf"target must be a class index in \[0, 3\){re.escape(ign)}; found target\[{where}\] = {val}$"
        with pytest.raises(ValueError, match=msg):
            _unchanged(lambda a, b, f=f: f(a, b, return_grad=True), X3, y)
    # (N, C, d1, d2): the position is named by all its indices (the first bad one in C order)
    x, y = make_index_problem((2, 3, 2, 2), 5)
    y[1, 0, 1] = 9
    y[1, 1, 0] = -7
    with pytest.raises(ValueError, match=r"found target\[1, 0, 1\] = 9$"):
        _unchanged(f, x, y)
    # the unbatched form names no position
    with pytest.raises(ValueError, match=r"found target = 3$"):
        f(X3[0], 3)


def test_hinge_does_not_ignore_minus_100(backend):
    with pytest.raises(ValueError, match=r"in \[0, 3\); found target\[0\] = -100$"):
        fastloss.multiclass_hinge(X3, np.array([-100, 0, 1]))


@pytest.mark.parametrize("name", list(INDEX_FNS))
def test_target_shape_and_dtype_errors(backend, name):
    f = INDEX_FNS[name]
    with pytest.raises(ValueError, match=r"class-index targets must have shape \(3,\).*got \(2,\)"):
        _unchanged(f, X3, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"class-index targets must have shape \(3,\).*got \(3, 1\)"):
        f(X3, np.array([[0], [1], [2]]))
    with pytest.raises(ValueError, match=r"must have shape \(2, 2\) for input of shape \(2, 3, 2\)"):
        f(np.zeros((2, 3, 2)), np.zeros((2, 3), np.int64))
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        _unchanged(f, X3, np.array([0.0, 1.0, 2.0]))
    scores = "scores" if name.startswith("hinge") else "logits"  # the public name of the scores argument
    with pytest.raises(ValueError, match=rf"{scores} has no classes"):
        f(np.zeros((3, 0)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=rf"{scores} must have shape \(N, C\)"):
        f(np.float64(1.0), np.int64(0))
    with pytest.raises(ValueError, match="reduction must be one of"):
        f(X3, np.array([0, 1, 2]), reduction="batchmean")


def test_parameter_errors(backend):
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="gamma must be >= 0, got -0.5"):
        fastloss.softmax_focal_loss(X3, y, gamma=-0.5)
    with pytest.raises(ValueError, match="gamma must not be NaN"):
        fastloss.softmax_focal_loss(X3, y, gamma=float("nan"))
    with pytest.raises(ValueError, match=r"alpha must have shape \(3,\), one per class, got \(2,\)"):
        _unchanged(lambda a, b: fastloss.softmax_focal_loss(a, b, alpha=[0.5, 0.5]), X3, y)
    with pytest.raises(ValueError, match=r"alpha must have shape \(3,\), one per class, got \(1, 3\)"):
        fastloss.softmax_focal_loss(X3, y, alpha=[[0.5, 0.5, 0.5]])
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        fastloss.poly1_cross_entropy(X3, y, ignore_index=1.0)
    with pytest.raises(TypeError, match="epsilon must be a real number"):
        fastloss.poly1_cross_entropy(X3, y, epsilon="1")
    for p in (0, 3, -1, True, 1.5):
        with pytest.raises(ValueError, match=rf"p must be 1 or 2, got {re.escape(repr(p))}"):
            fastloss.multiclass_hinge(X3, y, p=p)
    with pytest.raises(ValueError, match=r"method must be one of 'weston_watkins', 'crammer_singer'; got"):
        fastloss.multiclass_hinge(X3, y, method="ww")
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), one per class, got \(4,\)"):
        fastloss.multiclass_hinge(X3, y, weight=np.ones(4))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        fastloss.multiclass_hinge(X3, y, weight=2.0)  # no scalar weight (only alpha may be one)
    with pytest.raises(ValueError, match="margin must not be NaN"):
        fastloss.multiclass_hinge(X3, y, margin=float("nan"))


def test_kl_errors(backend):
    x = np.log(np.full((2, 3), 1 / 3))
    t = np.full((2, 3), 1 / 3)
    t[1, 2] = -0.1
    with pytest.raises(
        ValueError, match=r"target must be >= 0 \(probabilities\); found target\[1, 2\] = -0.1"
    ):
        _unchanged(lambda a, b: fastloss.kl_div(a, b, return_grad=True), x, t)
    t[1, 2] = 0.2
    t[0, 1] = -1e-300
    with pytest.raises(ValueError, match=r"found target\[0, 1\] = -1e-300"):
        fastloss.kl_div(x, t, reduction="none")
    # log_target: any log-probability is allowed, negative ones included
    assert np.isfinite(fastloss.kl_div(x, np.log(np.full((2, 3), 1 / 3)), log_target=True))
    with pytest.raises(
        ValueError, match=r"must have the same shape \(no broadcasting\), got \(2, 3\) and \(3,\)"
    ):
        _unchanged(fastloss.kl_div, x, np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        fastloss.kl_div(x, np.abs(t), reduction="batch")
    with pytest.raises(TypeError, match="log_target must be a bool"):
        fastloss.kl_div(x, np.abs(t), log_target=1)


def test_inputs_unchanged_by_valid_calls(backend):
    for dtype in DTYPES:
        x, y = make_index_problem((3, 4, 5), 2, ignore_index=-100, dtype=dtype)
        for name, f in INDEX_FNS.items():
            yy = np.where(y == -100, 0, y) if not HAS_IGNORE[name] else y
            for reduction in REDUCTIONS:
                _unchanged(lambda a, b, f=f, r=reduction: f(a, b, reduction=r, return_grad=True), x, yy)
        xk, tk = make_kl_problem((3, 4), 2, dtype=dtype)
        for reduction in ["batchmean", *REDUCTIONS]:
            _unchanged(lambda a, b, r=reduction: fastloss.kl_div(a, b, reduction=r, return_grad=True), xk, tk)


# --------------------------------------------------------------------------------------------------
# 5. Edge cases: NaN rows, empty batches


ALL_FNS = {
    **INDEX_FNS,
    "hinge_ww_p2": lambda *a, **k: fastloss.multiclass_hinge(*a, p=2, **k),
    "focal_alpha": lambda *a, **k: fastloss.softmax_focal_loss(*a, alpha=[0.2, 0.3, 0.4, 0.5], **k),
}


@pytest.mark.parametrize("name", list(ALL_FNS))
@pytest.mark.parametrize("nan_at", ["target_class", "other_class"])
def test_nan_propagates_to_its_position(backend, name, nan_at):
    f = ALL_FNS[name]
    x, y = make_index_problem((5, 4), 13, scale=1.0)
    y[2] = 1
    x[2, 1 if nan_at == "target_class" else 3] = np.nan
    clean = x.copy()
    clean[2] = 0.0
    v, g = f(x, y, reduction="none", return_grad=True)
    vc, gc = f(clean, y, reduction="none", return_grad=True)
    assert np.isnan(v[2]), v
    keep = np.arange(5) != 2
    np.testing.assert_array_equal(v[keep], vc[keep])
    np.testing.assert_array_equal(g[keep], gc[keep])
    assert np.isnan(g[2]).any()
    for reduction in ("mean", "sum"):
        r, gr = f(x, y, reduction=reduction, return_grad=True)
        assert np.isnan(r)
        assert np.all(np.isfinite(gr[keep]))


def test_nan_in_ignored_row_is_ignored(backend):
    x, y = make_index_problem((4, 3), 3)
    y[1] = -100
    x[1, 0] = np.nan
    for f in (fastloss.softmax_focal_loss, fastloss.poly1_cross_entropy):
        v, g = f(x, y, return_grad=True)
        assert np.isfinite(v) and np.all(np.isfinite(g))
        np.testing.assert_array_equal(g[1], np.zeros(3))


def test_kl_nan_propagates(backend):
    x, t = make_kl_problem((3, 4), 4, zeros=False)
    x[1, 2] = np.nan
    v, g = fastloss.kl_div(x, t, reduction="none", return_grad=True)
    assert np.isnan(v[1, 2]) and np.isnan(v).sum() == 1
    assert np.all(np.isfinite(g))  # d/dinput = -target does not depend on the input
    for reduction in ("batchmean", "sum", "mean"):
        assert np.isnan(fastloss.kl_div(x, t, reduction=reduction))
    t2 = t.copy()
    t2[0, 0] = np.nan
    v2 = fastloss.kl_div(np.where(np.isnan(x), 0.0, x), t2, reduction="none")
    assert np.isnan(v2[0, 0]) and np.isnan(v2).sum() == 1


@pytest.mark.parametrize("name", list(ALL_FNS))
@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3)], ids=["2d", "seg"])
def test_empty_batch(backend, name, shape):
    f = ALL_FNS[name]
    for dtype in DTYPES:
        x = np.zeros(shape, dtype)
        y = np.zeros(pos_shape(shape), np.int64)
        v, g = f(x, y, reduction="none", return_grad=True)
        assert v.shape == pos_shape(shape) and v.dtype == dtype
        assert g.shape == shape and g.dtype == dtype
        s, gs = f(x, y, reduction="sum", return_grad=True)
        assert s == 0.0 and np.asarray(s).dtype == dtype and gs.shape == shape
        m = f(x, y)
        assert np.isnan(m) and np.asarray(m).dtype == dtype


def test_kl_empty(backend):
    for shape in [(0, 3), (0,)]:
        x = np.zeros(shape)
        v, g = fastloss.kl_div(x, x, reduction="none", return_grad=True)
        assert v.shape == shape and g.shape == shape
        assert fastloss.kl_div(x, x, reduction="sum") == 0.0
        assert np.isnan(fastloss.kl_div(x, x, reduction="mean"))
        assert np.isnan(fastloss.kl_div(x, x, reduction="batchmean"))
