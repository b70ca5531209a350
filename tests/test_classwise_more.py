"""Class-wise losses beyond cross-entropy: softmax_focal_loss, poly1_cross_entropy, multiclass_hinge, kl_div.

References: PyTorch (values and autograd gradients; skipped without torch), scikit-learn (Crammer-Singer
hinge) and SciPy (KL divergence) where importable, an independent NumPy formulation written here (so the
values are checked without any of them), central finite differences in float64 (gradients), and
hypothesis properties (backends agree; the reductions are consistent with each other).
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
from conftest import DTYPES, HAVE_CORE, REDUCTIONS, fd_grad, optional_module

import fastloss

AVAILABLE_BACKENDS = ["cpp", "numpy"] if HAVE_CORE else ["numpy"]


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def pos_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the per-position results (and of class-index targets) for scores of `shape`."""
    return () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])


def as_rows(a) -> np.ndarray:
    """(positions, C) float64 rows of an array whose class axis is 1 (a (C,) array is one row)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        return a[None, :]
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def from_rows(r: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of as_rows."""
    if len(shape) == 1:
        return r.reshape(shape)
    return np.moveaxis(r.reshape(pos_shape(shape) + (shape[1],)), -1, 1)


def tols(dtype) -> tuple[float, float]:
    """(rtol, atol relative to the largest magnitude) against a float64 reference."""
    return (2e-6, 2e-7) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)


def scale_of(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.max(np.abs(a), initial=0.0))


def assert_close(got, want, dtype, what="", scale=None):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    rtol, arel = tols(dtype)
    s = scale_of(want) if scale is None else scale
    np.testing.assert_allclose(got, want, rtol=rtol, atol=arel * s + 1e-300, equal_nan=True, err_msg=what)


# --------------------------------------------------------------------------------------------------
# Independent NumPy formulation (float64, per position; `keep` marks the counted positions)


def ref_log_softmax_rows(r: np.ndarray) -> np.ndarray:
    m = np.max(r, axis=1, keepdims=True)
    return r - (m + np.log(np.sum(np.exp(r - m), axis=1, keepdims=True)))


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


def ref_kl_terms(x, t, *, log_target=False):
    x = np.asarray(x, np.float64)
    t = np.asarray(t, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if log_target:
            p = np.exp(t)
            return np.where(p == 0.0, 0.0, p * (t - x))
        return np.where(t == 0.0, 0.0, t * (np.log(t) - x))


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


# --------------------------------------------------------------------------------------------------
# Problems


def make_index_problem(shape, seed, *, ignore_index=None, scale=2.0, dtype=np.float64, min_class=0):
    """(scores, target): scores of `dtype`; about a quarter of the positions hold ignore_index (the
    first position never does)."""
    rng = np.random.default_rng(seed)
    C = shape[0] if len(shape) == 1 else shape[1]
    x = rng.normal(0.0, scale, shape).astype(dtype)
    y = rng.integers(min_class, C, pos_shape(shape)).astype(np.int64)
    if ignore_index is not None and y.size > 1:
        flat = y.reshape(-1)
        mask = rng.random(flat.size) < 0.25
        mask[0] = False
        flat[mask] = ignore_index
    return x, y


def make_kl_problem(shape, seed, *, dtype=np.float64, zeros=True, log_target=False):
    """(log Q, P) (or (log Q, log P)) with distributions along axis 1 (axis 0 for 1-D)."""
    rng = np.random.default_rng(seed)
    ax = 0 if len(shape) == 1 else 1
    a = rng.normal(0.0, 1.5, shape)
    logq = a - np.log(np.sum(np.exp(a), axis=ax, keepdims=True))
    b = np.exp(rng.normal(0.0, 1.5, shape))
    if zeros:
        b = np.where(rng.random(shape) < 0.2, 0.0, b)
        b = np.where(np.sum(b, axis=ax, keepdims=True) == 0.0, 1.0, b)  # no all-zero distribution
    p = b / np.sum(b, axis=ax, keepdims=True)
    t = p
    if log_target:
        with np.errstate(divide="ignore"):
            t = np.log(p)
    return logq.astype(dtype), t.astype(dtype)


SHAPES = {"2d": (7, 4), "seg": (3, 5, 2, 3)}
SHAPE_IDS = list(SHAPES)

FOCAL_CASES = [
    # (id, gamma, alpha kind, ignore_index)
    ("g2", 2.0, None, -100),
    ("g0.5_alpha_scalar", 0.5, "scalar", -100),
    ("g2_alpha_class", 2.0, "class", -100),
    ("g0_alpha_class_ignore1", 0.0, "class", 1),  # ignore_index is also a valid class
    ("g3.5_noignore", 3.5, None, None),
]
FOCAL_IDS = [c[0] for c in FOCAL_CASES]

POLY1_CASES = [("e1", 1.0, -100), ("e0", 0.0, -100), ("e2.5_ignore2", 2.5, 2), ("e-0.5", -0.5, None)]
POLY1_IDS = [c[0] for c in POLY1_CASES]

HINGE_CASES = [
    # (id, p, margin, weighted)
    ("p1", 1, 1.0, False),
    ("p2", 2, 1.0, False),
    ("p1_m0.3_w", 1, 0.3, True),
    ("p2_m2_w", 2, 2.0, True),
]
HINGE_IDS = [c[0] for c in HINGE_CASES]
METHODS = ["weston_watkins", "crammer_singer"]


def alpha_of(kind, C, seed):
    if kind is None:
        return None
    if kind == "scalar":
        return 0.25
    return np.random.default_rng(seed + 1).uniform(0.1, 1.0, C)


def class_weight(weighted, C, seed, dtype=np.float64):
    if not weighted:
        return None
    return np.random.default_rng(seed + 2).uniform(0.5, 2.0, C).astype(dtype)


def focal_kwargs(case, C, seed):
    _, gamma, akind, ign = case
    kw = {"gamma": gamma, "alpha": alpha_of(akind, C, seed)}
    if ign is not None:
        kw["ignore_index"] = ign
    return kw, ign


def _check_result(res, dtype, reduction, shape):
    """fastloss result: dtype and shape."""
    if reduction == "none":
        assert isinstance(res, np.ndarray) and res.dtype == dtype and res.shape == pos_shape(shape)
    else:
        assert np.ndim(res) == 0 and np.asarray(res).dtype == dtype


# --------------------------------------------------------------------------------------------------
# 1. Values against the NumPy formulation


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", FOCAL_CASES, ids=FOCAL_IDS)
def test_focal_values_numpy_ref(backend, case, dtype, reduction, shape_id):
    shape = SHAPES[shape_id]
    seed = _seed("focal", case[0], shape_id)
    kw, ign = focal_kwargs(case, shape[1], seed)
    x, y = make_index_problem(shape, seed, ignore_index=ign, dtype=dtype)
    got = fastloss.softmax_focal_loss(x, y, reduction=reduction, **kw)
    _check_result(got, dtype, reduction, shape)
    loss, keep = ref_focal_rows(x, y, gamma=kw["gamma"], alpha=kw["alpha"], ignore_index=ign)
    assert_close(got, ref_reduce_pos(loss, keep, reduction, shape), dtype, "focal")


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POLY1_CASES, ids=POLY1_IDS)
def test_poly1_values_numpy_ref(backend, case, dtype, reduction, shape_id):
    shape = SHAPES[shape_id]
    _, eps, ign = case
    x, y = make_index_problem(shape, _seed("poly1", case[0], shape_id), ignore_index=ign, dtype=dtype)
    kw = {"epsilon": eps} if ign is None else {"epsilon": eps, "ignore_index": ign}
    got = fastloss.poly1_cross_entropy(x, y, reduction=reduction, **kw)
    _check_result(got, dtype, reduction, shape)
    loss, keep = ref_poly1_rows(x, y, epsilon=eps, ignore_index=ign)
    assert_close(got, ref_reduce_pos(loss, keep, reduction, shape), dtype, "poly1")


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", HINGE_CASES, ids=HINGE_IDS)
def test_hinge_values_numpy_ref(backend, case, method, dtype, reduction, shape_id):
    shape = SHAPES[shape_id]
    _, p, margin, weighted = case
    seed = _seed("hinge", case[0], method, shape_id)
    x, y = make_index_problem(shape, seed, scale=1.0, dtype=dtype)
    w = class_weight(weighted, shape[1], seed, dtype)
    got = fastloss.multiclass_hinge(x, y, margin=margin, p=p, weight=w, method=method, reduction=reduction)
    _check_result(got, dtype, reduction, shape)
    loss, keep = ref_hinge_rows(x, y, margin=margin, p=p, weight=w, method=method)
    assert_close(got, ref_reduce_pos(loss, keep, reduction, shape), dtype, "hinge")


KL_SHAPES = {"2d": (6, 5), "3d": (3, 4, 5), "1d": (7,)}


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
    assert_close(got, want, dtype, "kl", scale=float(np.sum(np.abs(terms))) if reduction != "none" else None)
    # d/dinput = -P, scaled by the reduction
    p = np.exp(t.astype(np.float64)) if log_target else t.astype(np.float64)
    div = {"none": 1, "sum": 1, "mean": t.size, "batchmean": shape[0]}[reduction]
    assert_close(grad, -p / div, dtype, "kl grad")


def test_focal_gamma0_equals_cross_entropy(backend):
    for shape in SHAPES.values():
        for dtype in DTYPES:
            x, y = make_index_problem(shape, _seed("fce", shape), ignore_index=-100, dtype=dtype)
            for reduction in REDUCTIONS:
                f, fg = fastloss.softmax_focal_loss(x, y, gamma=0.0, reduction=reduction, return_grad=True)
                c, cg = fastloss.cross_entropy(x, y, reduction=reduction, return_grad=True)
                assert_close(f, c, dtype, f"focal gamma=0 vs ce {shape} {reduction}")
                assert_close(fg, cg, dtype, f"focal gamma=0 grad vs ce {shape} {reduction}")


def test_poly1_eps0_equals_cross_entropy(backend):
    for shape in SHAPES.values():
        x, y = make_index_problem(shape, _seed("pce", shape), ignore_index=3)
        for reduction in REDUCTIONS:
            f, fg = fastloss.poly1_cross_entropy(
                x, y, epsilon=0.0, ignore_index=3, reduction=reduction, return_grad=True
            )
            c, cg = fastloss.cross_entropy(x, y, ignore_index=3, reduction=reduction, return_grad=True)
            assert_close(f, c, np.float64, f"poly1 eps=0 vs ce {shape} {reduction}")
            assert_close(fg, cg, np.float64, f"poly1 eps=0 grad vs ce {shape} {reduction}")


def test_focal_mean_is_not_divided_by_alpha(backend):
    """'mean' averages over the non-ignored positions; alpha is a factor, not a weight."""
    x, y = make_index_problem((9, 3), 5, ignore_index=-100)
    alpha = np.array([0.2, 0.5, 3.0])
    per = fastloss.softmax_focal_loss(x, y, alpha=alpha, reduction="none")
    mean = fastloss.softmax_focal_loss(x, y, alpha=alpha, reduction="mean")
    n_kept = int(np.sum(y != -100))
    assert 0 < n_kept < y.size
    assert np.all(per[y == -100] == 0.0)
    assert_close(mean, np.sum(per) / n_kept, np.float64)
    # a scalar alpha scales every term
    plain = fastloss.softmax_focal_loss(x, y, reduction="none")
    assert_close(fastloss.softmax_focal_loss(x, y, alpha=0.3, reduction="none"), 0.3 * plain, np.float64)
    assert_close(fastloss.softmax_focal_loss(x, y, alpha=0.3), 0.3 * np.sum(plain) / n_kept, np.float64)


def test_hinge_ww_weight_mean_over_positions(backend):
    x, y = make_index_problem((8, 4), 11, scale=1.0)
    w = np.array([0.5, 1.0, 2.0, 4.0])
    per = fastloss.multiclass_hinge(x, y, weight=w, reduction="none")
    assert_close(fastloss.multiclass_hinge(x, y, weight=w), np.sum(per) / 8, np.float64)


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
            assert_close(v1, np.reshape(v2, ()), np.float64, f"call {i} {reduction}")
            assert_close(g1, g2[0], np.float64, f"call {i} {reduction} grad")


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
        assert_close(f(x, y, ignore_index=2**70), f(x, y), np.float64, f.__name__)
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
# 1b. Values against scikit-learn and SciPy


def test_crammer_singer_matches_sklearn(backend, sklearn_metrics):
    for C, n in ((4, 20), (3, 7), (6, 13)):
        x, y = make_index_problem((n, C), _seed("sk", C), scale=1.0)
        want = sklearn_metrics.hinge_loss(y, x, labels=list(range(C)))
        got = fastloss.multiclass_hinge(x, y, method="crammer_singer")
        assert_close(got, want, np.float64, f"C={C}")


def test_kl_matches_scipy(backend, scipy_special):
    stats = optional_module("scipy.stats")
    rng = np.random.default_rng(8)
    P = rng.dirichlet(np.ones(6), size=4)
    P[0, 2] = 0.0
    P[0] /= P[0].sum()
    P[2, [1, 4]] = 0.0
    P[2] /= P[2].sum()
    Q = rng.dirichlet(np.ones(6), size=4)
    for i in range(4):
        got = fastloss.kl_div(np.log(Q[i]), P[i], reduction="sum")
        assert_close(got, scipy_special.rel_entr(P[i], Q[i]).sum(), np.float64, f"rel_entr row {i}")
        if stats is not None:
            assert_close(got, stats.entropy(P[i], Q[i]), np.float64, f"entropy row {i}")
    # batchmean: the per-sample divergence averaged over the batch
    want = np.mean(np.sum(scipy_special.rel_entr(P, Q), axis=1))
    assert_close(fastloss.kl_div(np.log(Q), P), want, np.float64, "batchmean")
    with np.errstate(divide="ignore"):
        logp = np.log(P)
    assert_close(fastloss.kl_div(np.log(Q), logp, log_target=True), want, np.float64, "batchmean log_target")


def test_kl_zero_target_term_is_zero(backend, torch):
    x = np.array([[-np.inf, 0.0], [np.log(0.3), np.log(0.7)]])
    t = np.array([[0.0, 1.0], [0.5, 0.5]])
    v, g = fastloss.kl_div(x, t, reduction="none", return_grad=True)
    assert v[0, 0] == 0.0 and v[0, 1] == 0.0
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, -t)
    tv = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), reduction="none").numpy()
    assert np.isnan(tv[0, 0])  # torch's NaN that fastloss replaces by the limit
    assert_close(v[1], tv[1], np.float64)
    s = fastloss.kl_div(x, t, reduction="sum")
    assert np.isfinite(s)
    assert_close(s, 0.5 * (np.log(0.5 / 0.3) + np.log(0.5 / 0.7)), np.float64)
    # log_target: log P = -inf is P = 0
    vl = fastloss.kl_div(
        x, np.log(np.where(t == 0, 1.0, t)) + np.where(t == 0, -np.inf, 0.0), log_target=True
    )
    assert_close(vl, s / 2, np.float64)


def test_kl_zero_target_without_torch(backend):
    x = np.array([-np.inf, 0.0])
    t = np.array([0.0, 1.0])
    for reduction in ["batchmean", *REDUCTIONS]:
        v = fastloss.kl_div(x, t, reduction=reduction)
        np.testing.assert_array_equal(v, np.zeros(2) if reduction == "none" else 0.0)


# --------------------------------------------------------------------------------------------------
# 1c/2. Values and gradients against PyTorch


def _t(torch, a, grad=False):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


def _torch_reduce_pos(loss, keep, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / keep.sum()


def torch_focal(torch, x, y, gamma, alpha, ignore_index, reduction):
    F = torch.nn.functional
    yt = torch.tensor(np.asarray(y, np.int64))
    keep = torch.ones_like(yt, dtype=torch.bool) if ignore_index is None else yt != ignore_index
    yc = torch.where(keep, yt, torch.zeros_like(yt))
    lpy = F.log_softmax(x, dim=1).gather(1, yc.unsqueeze(1)).squeeze(1)
    C = x.shape[1]
    a = torch.ones(C, dtype=x.dtype) if alpha is None else _t(torch, np.broadcast_to(alpha, (C,)))
    loss = -a[yc] * (1.0 - lpy.exp()) ** gamma * lpy
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    return _torch_reduce_pos(loss, keep, reduction)


def torch_poly1(torch, x, y, eps, ignore_index, reduction):
    F = torch.nn.functional
    yt = torch.tensor(np.asarray(y, np.int64))
    ii = -100 if ignore_index is None else ignore_index
    keep = yt != ii
    yc = torch.where(keep, yt, torch.zeros_like(yt))
    ce = F.cross_entropy(x, yt, ignore_index=ii, reduction="none")
    py = F.softmax(x, dim=1).gather(1, yc.unsqueeze(1)).squeeze(1)
    loss = ce + eps * torch.where(keep, 1.0 - py, torch.zeros_like(py))
    return _torch_reduce_pos(loss, keep, reduction)


def torch_ww(torch, x, y, p, margin, weight, reduction):
    F = torch.nn.functional
    yt = torch.tensor(np.asarray(y, np.int64))
    wt = None if weight is None else _t(torch, weight)
    if x.ndim == 2:
        return F.multi_margin_loss(x, yt, p=p, margin=margin, weight=wt, reduction=reduction)
    C = x.shape[1]
    rows = x.movedim(1, -1).reshape(-1, C)
    loss = F.multi_margin_loss(rows, yt.reshape(-1), p=p, margin=margin, weight=wt, reduction=reduction)
    return loss.reshape(yt.shape) if reduction == "none" else loss


def _torch_value_grad(torch, fn, x):
    xt = _t(torch, x, grad=True)
    out = fn(xt)
    (out.sum() if out.ndim else out).backward()
    return out.detach().numpy(), xt.grad.numpy()


def _check_vs_torch(got, grad, want, want_grad, dtype, what):
    assert_close(got, want, dtype, what)
    assert_close(grad, want_grad, dtype, what + " grad")


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", FOCAL_CASES, ids=FOCAL_IDS)
def test_focal_vs_torch(backend, torch, case, dtype, reduction, shape_id):
    shape = SHAPES[shape_id]
    seed = _seed("tfocal", case[0], shape_id)
    kw, ign = focal_kwargs(case, shape[1], seed)
    x, y = make_index_problem(shape, seed, ignore_index=ign, dtype=dtype)
    got, grad = fastloss.softmax_focal_loss(x, y, reduction=reduction, return_grad=True, **kw)
    assert grad.dtype == dtype and grad.shape == shape
    want, want_grad = _torch_value_grad(
        torch, lambda t: torch_focal(torch, t, y, kw["gamma"], kw["alpha"], ign, reduction), x
    )
    _check_vs_torch(got, grad, want, want_grad, dtype, "focal")


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POLY1_CASES, ids=POLY1_IDS)
def test_poly1_vs_torch(backend, torch, case, dtype, reduction, shape_id):
    shape = SHAPES[shape_id]
    _, eps, ign = case
    x, y = make_index_problem(shape, _seed("tpoly1", case[0], shape_id), ignore_index=ign, dtype=dtype)
    kw = {"epsilon": eps} if ign is None else {"epsilon": eps, "ignore_index": ign}
    got, grad = fastloss.poly1_cross_entropy(x, y, reduction=reduction, return_grad=True, **kw)
    assert grad.dtype == dtype and grad.shape == shape
    want, want_grad = _torch_value_grad(torch, lambda t: torch_poly1(torch, t, y, eps, ign, reduction), x)
    _check_vs_torch(got, grad, want, want_grad, dtype, "poly1")


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", HINGE_CASES, ids=HINGE_IDS)
def test_weston_watkins_vs_torch(backend, torch, case, dtype, reduction, shape_id):
    shape = SHAPES[shape_id]
    _, p, margin, weighted = case
    seed = _seed("tww", case[0], shape_id)
    x, y = make_index_problem(shape, seed, scale=1.0, dtype=dtype)
    w = class_weight(weighted, shape[1], seed, dtype)
    got, grad = fastloss.multiclass_hinge(
        x, y, p=p, margin=margin, weight=w, reduction=reduction, return_grad=True
    )
    assert grad.dtype == dtype and grad.shape == shape
    want, want_grad = _torch_value_grad(torch, lambda t: torch_ww(torch, t, y, p, margin, w, reduction), x)
    _check_vs_torch(got, grad, want, want_grad, dtype, "weston_watkins")


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize("shape_id", list(KL_SHAPES))
@pytest.mark.parametrize("reduction", ["batchmean", *REDUCTIONS])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("log_target", [False, True], ids=["prob", "logt"])
def test_kl_vs_torch(backend, torch, log_target, dtype, reduction, shape_id):
    shape = KL_SHAPES[shape_id]
    # no zero targets: torch gives NaN where fastloss gives the limit (tested above)
    x, t = make_kl_problem(shape, _seed("tkl", shape_id), dtype=dtype, zeros=False, log_target=log_target)
    got, grad = fastloss.kl_div(x, t, log_target=log_target, reduction=reduction, return_grad=True)
    tt = _t(torch, t)
    want, want_grad = _torch_value_grad(
        torch,
        lambda xt: torch.nn.functional.kl_div(xt, tt, reduction=reduction, log_target=log_target),
        x,
    )
    terms = ref_kl_terms(x, t, log_target=log_target)
    assert_close(got, want, dtype, "kl", scale=float(np.sum(np.abs(terms))) if reduction != "none" else None)
    assert_close(grad, want_grad, dtype, "kl grad")


def test_crammer_singer_gradient_vs_torch(backend, torch):
    """Autograd of the Crammer-Singer formula written in torch (no ties, away from the kink)."""
    x, y = _hinge_fd_problem((6, 5), 21, "crammer_singer", 1.0)
    w = np.array([1.0, 0.5, 2.0, 1.5, 0.7])
    for p in (1, 2):
        for reduction in REDUCTIONS:
            got, grad = fastloss.multiclass_hinge(
                x, y, p=p, weight=w, method="crammer_singer", reduction=reduction, return_grad=True
            )

            def cs(t, p=p, reduction=reduction):
                yt = torch.tensor(y)
                sy = t.gather(1, yt[:, None]).squeeze(1)
                others = t.masked_fill(torch.nn.functional.one_hot(yt, 5).bool(), -float("inf"))
                loss = _t(torch, w)[yt] * torch.clamp(1.0 + others.max(1).values - sy, min=0.0) ** p
                return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]

            want, want_grad = _torch_value_grad(torch, cs, x)
            _check_vs_torch(got, grad, want, want_grad, np.float64, f"cs p={p} {reduction}")


# --------------------------------------------------------------------------------------------------
# 2b. Gradients against central finite differences (float64)


FD_SHAPES = [(4, 3), (2, 3, 2, 2)]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("shape", FD_SHAPES, ids=["2d", "seg"])
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


def _hinge_fd_problem(shape, seed, method, margin, gap=1e-2):
    """Scores whose rows stay at least `gap` away from every kink of the hinge (and from ties)."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    rows = []
    npos = int(np.prod(pos_shape(shape)))
    ys = rng.integers(0, C, npos)
    for t in ys:
        while True:
            s = rng.normal(0.0, 1.0, C)
            others = np.delete(s, t)
            if method == "weston_watkins":
                ok = np.min(np.abs(margin - s[t] + others)) > gap
            else:
                srt = np.sort(others)
                ok = abs(margin + srt[-1] - s[t]) > gap and (C < 3 or srt[-1] - srt[-2] > gap)
            if ok:
                rows.append(s)
                break
    return from_rows(np.array(rows), shape).copy(), ys.reshape(pos_shape(shape))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("shape", FD_SHAPES, ids=["2d", "seg"])
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


# --------------------------------------------------------------------------------------------------
# 4. Properties (hypothesis)


hypothesis = optional_module("hypothesis")

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

    def test_properties_need_hypothesis():
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
    def test_reductions_consistent(name, prob):
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
