"""cross_entropy and nll_loss: PyTorch's semantics (values and autograd gradients; skipped without
torch) and an independent NumPy formulation, finite differences, ignore_index, targets, errors."""

from __future__ import annotations

import re

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
    ref_cross_entropy,
    ref_nll_loss,
    scale_of,
)
from conftest import DTYPES, REDUCTIONS, assert_close, fd_grad

import fastloss


def torch_value_grad(torch, name, x, target, reduction, **kw):
    """torch's value and autograd gradient (of the sum of the outputs, for reduction 'none')."""
    F = torch.nn.functional
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    t = np.asarray(target)
    tt = torch.tensor(t.astype(np.float64 if t.dtype.kind == "f" else np.int64))
    if kw.get("weight") is not None:
        kw = dict(kw, weight=torch.tensor(np.asarray(kw["weight"], dtype=np.float64)))
    fn = F.cross_entropy if name == "cross_entropy" else F.nll_loss
    out = fn(xt, tt, reduction=reduction, **kw)
    (out.sum() if reduction == "none" else out).backward()
    return out.detach().numpy(), xt.grad.numpy()


# --------------------------------------------------------------------------------------------------
# Problems: shapes and configurations


CE_SHAPES = {
    "odd_n": (7, 5),
    "seg": (2, 5, 7, 3),
    "spatial1d": (3, 4, 6),
    "unbatched": (5,),
    "c1": (4, 1),
    "large_c": (3, 3000),
    "tall": (1001, 19),  # several tiles, more than one thread
    "seg_big": (3, 21, 23, 17),  # tiles straddle the batch index
}


NLL_CONFIGS = [
    Config("plain"),
    Config("weight", weight=True),
    Config("ignore-100", ignore=-100),
    Config("ignore3", ignore=3),
    Config("weight_ignore3", weight=True, ignore=3),
]


def value_tols(dtype, x):
    """(rtol, atol) for a value or gradient against a float64 reference."""
    atol = 1e-13 * (1.0 + scale_of(x))
    if np.dtype(dtype) == np.float32:
        return 2e-6, max(atol, 1e-7)
    return 1e-11, atol


# --------------------------------------------------------------------------------------------------
# 1-2. Values and gradients against torch, the NumPy formulation and finite differences


def _check_result_shape(got, shape, reduction):
    if reduction == "none":
        assert np.shape(got) == pos_shape(shape)
    else:
        assert np.ndim(got) == 0


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("config", CE_CONFIGS, ids=lambda c: c.id)
@pytest.mark.parametrize("shape", list(CE_SHAPES.values()), ids=list(CE_SHAPES))
def test_cross_entropy_matches_torch(backend, torch, shape, config, reduction):
    x, t, kw = make_problem(shape, config, _seed("ce", shape, config.id))
    got, grad = fastloss.cross_entropy(x, t, reduction=reduction, return_grad=True, **kw)
    want, want_grad = torch_value_grad(torch, "cross_entropy", x, t, reduction, **kw)
    _check_result_shape(got, shape, reduction)
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert_close(got, want, rtol=1e-11, atol=1e-13 * (1.0 + scale_of(want)), what="value")
    assert_close(grad, want_grad, rtol=1e-10, atol=1e-13 * max(scale_of(want_grad), 1e-300), what="grad")
    # the value does not depend on whether the gradient is asked for
    np.testing.assert_array_equal(fastloss.cross_entropy(x, t, reduction=reduction, **kw), got)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("config", NLL_CONFIGS, ids=lambda c: c.id)
@pytest.mark.parametrize("shape", list(CE_SHAPES.values()), ids=list(CE_SHAPES))
def test_nll_loss_matches_torch(backend, torch, shape, config, reduction):
    x, t, kw = make_problem(shape, config, _seed("nll", shape, config.id), log_probs=True)
    got, grad = fastloss.nll_loss(x, t, reduction=reduction, return_grad=True, **kw)
    want, want_grad = torch_value_grad(torch, "nll_loss", x, t, reduction, **kw)
    _check_result_shape(got, shape, reduction)
    assert_close(got, want, rtol=1e-12, atol=1e-13 * (1.0 + scale_of(want)), what="value")
    assert_close(grad, want_grad, rtol=1e-12, atol=0.0, what="grad")
    np.testing.assert_array_equal(fastloss.nll_loss(x, t, reduction=reduction, **kw), got)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("config", CE_CONFIGS, ids=lambda c: c.id)
@pytest.mark.parametrize("shape", list(CE_SHAPES.values()), ids=list(CE_SHAPES))
def test_cross_entropy_matches_numpy_formulation(backend, shape, config, dtype):
    x, t, kw = make_problem(shape, config, _seed("ce-ref", shape, config.id))
    x = x.astype(dtype)
    if "weight" in kw:
        kw["weight"] = kw["weight"].astype(dtype)
    if config.prob:
        t = t.astype(dtype)
    rtol, atol = value_tols(dtype, x)
    for reduction in REDUCTIONS:
        got = fastloss.cross_entropy(x, t, reduction=reduction, **kw)
        want = ref_cross_entropy(x, t, reduction=reduction, **kw)
        assert np.asarray(got).dtype == dtype
        a = atol * (1 if reduction == "none" else np.prod(pos_shape(shape)))
        assert_close(got, want, rtol=rtol, atol=a, what=reduction)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("config", NLL_CONFIGS, ids=lambda c: c.id)
@pytest.mark.parametrize("shape", list(CE_SHAPES.values()), ids=list(CE_SHAPES))
def test_nll_loss_matches_numpy_formulation(backend, shape, config, dtype):
    x, t, kw = make_problem(shape, config, _seed("nll-ref", shape, config.id), log_probs=True)
    x = x.astype(dtype)
    if "weight" in kw:
        kw["weight"] = kw["weight"].astype(dtype)
    rtol, atol = value_tols(dtype, x)
    for reduction in REDUCTIONS:
        got = fastloss.nll_loss(x, t, reduction=reduction, **kw)
        want = ref_nll_loss(x, t, reduction=reduction, **kw)
        assert np.asarray(got).dtype == dtype
        a = atol * (1 if reduction == "none" else np.prod(pos_shape(shape)))
        assert_close(got, want, rtol=rtol, atol=a, what=reduction)


CE_FD_SHAPES = {"2d": (3, 4), "seg": (2, 3, 2, 2), "unbatched": (4,), "c1": (3, 1)}


FD_CE_CONFIGS = [
    c for c in CE_CONFIGS if c.id in ("plain", "weight_ignore_ls0.1", "weight_ignore3_ls1", "ls1")
] + [c for c in CE_CONFIGS if c.prob and c.id in ("prob", "prob_weight_ls0.1_raw")]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "config", FD_CE_CONFIGS + [Config("nll_weight_ignore", weight=True, ignore=-100)], ids=lambda c: c.id
)
@pytest.mark.parametrize("shape", list(CE_FD_SHAPES.values()), ids=list(CE_FD_SHAPES))
def test_gradient_finite_differences(backend, shape, config, reduction):
    name = "nll_loss" if config.id.startswith("nll") else "cross_entropy"
    fn = FNS[name]
    x, t, kw = make_problem(shape, config, _seed("fd", shape, config.id), log_probs=name == "nll_loss")
    value, grad = fn(x, t, reduction=reduction, return_grad=True, **kw)

    def f(z):
        return float(np.sum(fn(z, t, reduction=reduction, **kw)))

    want = fd_grad(f, x)
    assert_close(
        grad, want, rtol=1e-6, atol=1e-8 * max(1.0, scale_of(want)), what="grad vs finite differences"
    )
    assert_close(np.sum(value), f(x), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# Ignored positions, unbatched inputs, target dtypes


@pytest.mark.parametrize(
    ("name", "eps"),
    [("cross_entropy", 0.0), ("cross_entropy", 0.1), ("nll_loss", 0.0)],
    ids=["ce", "ce_ls", "nll"],
)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2), (3,)], ids=str)
def test_all_positions_ignored(backend, name, eps, shape):
    kw = {"label_smoothing": eps} if eps else {}
    x = np.random.default_rng(1).normal(size=shape)
    t = np.full(pos_shape(shape), 2, dtype=np.int64)
    fn = FNS[name]
    v, g = fn(x, t, ignore_index=2, reduction="mean", return_grad=True, **kw)
    assert np.isnan(v)
    assert g.shape == x.shape
    v, g = fn(x, t, ignore_index=2, reduction="sum", return_grad=True, **kw)
    assert v == 0.0
    np.testing.assert_array_equal(g, np.zeros(shape))
    v, g = fn(x, t, ignore_index=2, reduction="none", return_grad=True, **kw)
    np.testing.assert_array_equal(v, np.zeros(pos_shape(shape)))
    np.testing.assert_array_equal(g, np.zeros(shape))


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("shape", [(4, 3), (3,)], ids=str)
def test_all_positions_ignored_mean_gradient_matches_torch(backend, torch, name, shape):
    """torch: the mean is nan, and its gradient is 0 (no position contributes)."""
    x = np.random.default_rng(2).normal(size=shape)
    t = np.full(pos_shape(shape), -100, dtype=np.int64)
    v, g = FNS[name](x, t, return_grad=True)
    want, want_grad = torch_value_grad(torch, name, x, t, "mean")
    assert np.isnan(v) and np.isnan(want)
    assert_close(g, want_grad, rtol=0, atol=0, what="gradient of an all-ignored mean")


def test_unbatched_equals_batch_of_one(backend):
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=6), rng.uniform(0.5, 2, 6)
    for t in (4, np.int32(4), np.array(4)):
        for reduction in REDUCTIONS:
            v, g = fastloss.cross_entropy(
                x, t, weight=w, label_smoothing=0.2, reduction=reduction, return_grad=True
            )
            vb, gb = fastloss.cross_entropy(
                x[None], np.array([4]), weight=w, label_smoothing=0.2, reduction=reduction, return_grad=True
            )
            assert np.ndim(v) == 0 and g.shape == (6,)
            np.testing.assert_array_equal(v, vb[0] if reduction == "none" else vb)
            np.testing.assert_array_equal(g, gb[0])
    p = rng.random(6)
    np.testing.assert_array_equal(fastloss.cross_entropy(x, p), fastloss.cross_entropy(x[None], p[None]))
    np.testing.assert_array_equal(fastloss.nll_loss(x, 2), fastloss.nll_loss(x[None], [2]))


@pytest.mark.parametrize(
    "tdtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
def test_any_integer_target_dtype(backend, tdtype):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 4, 3))
    y = rng.integers(0, 4, (6, 3))
    w = rng.uniform(0.5, 2.0, 4)
    for name, fn in FNS.items():
        for reduction in REDUCTIONS:
            want = fn(x, y, weight=w, ignore_index=1, reduction=reduction, return_grad=True)
            got = fn(x, y.astype(tdtype), weight=w, ignore_index=1, reduction=reduction, return_grad=True)
            np.testing.assert_array_equal(got[0], want[0], err_msg=f"{name} {reduction}")
            np.testing.assert_array_equal(got[1], want[1], err_msg=f"{name} {reduction}")


def test_ignore_index_numpy_integer(backend):
    x, y = np.random.default_rng(5).normal(size=(5, 4)), np.array([0, 3, 3, 1, 2])
    want = fastloss.cross_entropy(x, y, ignore_index=3)
    assert fastloss.cross_entropy(x, y, ignore_index=np.int64(3)) == want
    assert fastloss.cross_entropy(x, y, ignore_index=np.uint8(3)) == want
    np.testing.assert_allclose(want, ref_cross_entropy(x, y, ignore_index=3), rtol=1e-12)


def test_ignore_index_beyond_int64(backend):
    """An ignore_index no int64 target can equal: the default's result, or a clean error naming it."""
    x, y = np.random.default_rng(6).normal(size=(5, 4)), np.array([0, 3, 3, 1, 2])
    want = fastloss.cross_entropy(x, y)
    for ii in (2**63, -(2**63) - 1):
        try:
            got = fastloss.cross_entropy(x, y, ignore_index=ii)
        except (TypeError, ValueError) as e:
            msg = str(e)
            assert msg.startswith("cross_entropy:") and "ignore_index" in msg, (
                f"ignore_index={ii}: unclear error {type(e).__name__}: {msg[:200]}"
            )
        else:
            assert got == want


# --------------------------------------------------------------------------------------------------
# 5. Errors, empty inputs, immutability


X45 = np.zeros((4, 5))


Y4 = np.array([0, 1, 2, 3])


ERROR_CASES = [
    # (id, callable, exception, match)
    (
        "ce_target_out_of_range_seg",
        lambda: fastloss.cross_entropy(np.zeros((2, 5, 3)), np.array([[0, 1, 2], [3, 4, 7]])),
        ValueError,
        re.escape(
            "cross_entropy: target must be a class index in [0, 5) or ignore_index=-100; "
            "found target[1, 2] = 7"
        ),
    ),
    (
        "ce_target_first_bad",
        lambda: fastloss.cross_entropy(np.zeros((2, 5, 3)), np.array([[0, -1, 2], [3, 4, 7]])),
        ValueError,
        re.escape("found target[0, 1] = -1"),
    ),
    (
        "ce_target_negative_2d",
        lambda: fastloss.cross_entropy(X45, np.array([0, 1, -101, 3])),
        ValueError,
        re.escape("[0, 5) or ignore_index=-100; found target[2] = -101"),
    ),
    (
        "ce_target_is_C",
        lambda: fastloss.cross_entropy(X45, np.array([0, 5, 1, 3]), ignore_index=3),
        ValueError,
        re.escape("[0, 5) or ignore_index=3; found target[1] = 5"),
    ),
    (
        "ce_unbatched_out_of_range",
        lambda: fastloss.cross_entropy(np.zeros(5), 7),
        ValueError,
        re.escape("found target = 7"),
    ),
    (
        "nll_target_out_of_range",
        lambda: fastloss.nll_loss(X45, np.array([0, 1, 5, 3])),
        ValueError,
        re.escape(
            "nll_loss: target must be a class index in [0, 5) or ignore_index=-100; found target[2] = 5"
        ),
    ),
    (
        "ce_prob_above_one",
        lambda: fastloss.cross_entropy(X45, np.full((4, 5), 0.2) + np.eye(4, 5)),
        ValueError,
        r"\[0, 1\]",
    ),
    ("ce_prob_negative", lambda: fastloss.cross_entropy(X45, -np.eye(4, 5)), ValueError, r"\[0, 1\]"),
    (
        "ce_prob_wrong_shape",
        lambda: fastloss.cross_entropy(X45, np.zeros((4, 6))),
        ValueError,
        r"\(4, 5\).*\(4, 6\)|\(4, 6\).*\(4, 5\)",
    ),
    (
        "ce_index_wrong_shape",
        lambda: fastloss.cross_entropy(X45, np.array([0, 1, 2])),
        ValueError,
        r"\(4,\).*\(3,\)|\(3,\).*\(4,\)",
    ),
    (
        "ce_index_wrong_shape_seg",
        lambda: fastloss.cross_entropy(np.zeros((2, 5, 3)), np.zeros((2, 5), dtype=int)),
        ValueError,
        r"\(2, 3\).*\(2, 5\)|\(2, 5\).*\(2, 3\)",
    ),
    (
        "nll_index_wrong_shape",
        lambda: fastloss.nll_loss(X45, np.zeros((4, 1), dtype=int)),
        ValueError,
        r"\(4,\).*\(4, 1\)|\(4, 1\).*\(4,\)",
    ),
    ("ce_bool_target", lambda: fastloss.cross_entropy(X45, Y4 > 1), TypeError, "target"),
    ("nll_bool_target", lambda: fastloss.nll_loss(X45, Y4 > 1), TypeError, "target"),
    ("nll_float_target", lambda: fastloss.nll_loss(X45, np.full((4, 5), 0.2)), TypeError, "target"),
    ("nll_float_index_target", lambda: fastloss.nll_loss(X45, Y4.astype(float)), TypeError, "target"),
    ("ce_weight_short", lambda: fastloss.cross_entropy(X45, Y4, weight=np.ones(4)), ValueError, "weight"),
    ("ce_weight_2d", lambda: fastloss.cross_entropy(X45, Y4, weight=np.ones((1, 5))), ValueError, "weight"),
    ("ce_weight_scalar", lambda: fastloss.cross_entropy(X45, Y4, weight=1.0), ValueError, "weight"),
    ("nll_weight_long", lambda: fastloss.nll_loss(X45, Y4, weight=np.ones(6)), ValueError, "weight"),
    (
        "ce_weight_short_prob",
        lambda: fastloss.cross_entropy(X45, np.full((4, 5), 0.2), weight=np.ones(4)),
        ValueError,
        "weight",
    ),
    (
        "ce_ls_negative",
        lambda: fastloss.cross_entropy(X45, Y4, label_smoothing=-0.1),
        ValueError,
        "label_smoothing",
    ),
    (
        "ce_ls_above_one",
        lambda: fastloss.cross_entropy(X45, Y4, label_smoothing=1.5),
        ValueError,
        "label_smoothing",
    ),
    (
        "ce_ls_nan",
        lambda: fastloss.cross_entropy(X45, Y4, label_smoothing=float("nan")),
        ValueError,
        "label_smoothing",
    ),
    ("ce_reduction", lambda: fastloss.cross_entropy(X45, Y4, reduction="avg"), ValueError, "reduction"),
    ("nll_reduction", lambda: fastloss.nll_loss(X45, Y4, reduction="MEAN"), ValueError, "reduction"),
    ("ce_ignore_float", lambda: fastloss.cross_entropy(X45, Y4, ignore_index=3.0), TypeError, "ignore_index"),
    ("ce_ignore_bool", lambda: fastloss.cross_entropy(X45, Y4, ignore_index=True), TypeError, "ignore_index"),
    ("nll_ignore_str", lambda: fastloss.nll_loss(X45, Y4, ignore_index="3"), TypeError, "ignore_index"),
    ("ce_no_classes", lambda: fastloss.cross_entropy(np.zeros((4, 0)), Y4), ValueError, "C = 0|class"),
    (
        "ce_no_classes_prob",
        lambda: fastloss.cross_entropy(np.zeros((4, 0)), np.zeros((4, 0))),
        ValueError,
        "C = 0|class",
    ),
    ("ce_no_classes_unbatched", lambda: fastloss.cross_entropy(np.zeros(0), 0), ValueError, "C = 0|class"),
    (
        "nll_no_classes",
        lambda: fastloss.nll_loss(np.zeros((4, 0, 2)), np.zeros((4, 2), dtype=int)),
        ValueError,
        "C = 0|class",
    ),
    ("softmax_axis", lambda: fastloss.softmax(X45, axis=2), ValueError, "axis"),
    ("log_softmax_axis", lambda: fastloss.log_softmax(X45, axis=-3), ValueError, "axis"),
    ("logsumexp_axis", lambda: fastloss.logsumexp(np.zeros(3), axis=1), ValueError, "axis"),
    ("softmax_empty_axis", lambda: fastloss.softmax(np.zeros((3, 0))), ValueError, "length 0|axis"),
    (
        "logsumexp_empty_axis",
        lambda: fastloss.logsumexp(np.zeros((0, 3)), axis=0),
        ValueError,
        "length 0|axis",
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors(backend, case):
    _, call, exc, match = case
    with pytest.raises(exc, match=match):
        call()


def test_target_error_position_across_tiles(backend):
    x = np.zeros((1000, 5))
    y = np.zeros(1000, dtype=np.int64)
    y[[900, 310, 300]] = [9, 8, 7]
    with pytest.raises(ValueError, match=re.escape("found target[300] = 7")):
        fastloss.cross_entropy(x, y, return_grad=True)
    with pytest.raises(ValueError, match=re.escape("found target[300] = 7")):
        fastloss.nll_loss(x, y, reduction="none")


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "cross_entropy_prob"])
@pytest.mark.parametrize("shape", [(0, 5), (0, 5, 3), (2, 5, 0)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_empty_positions(backend, name, shape, dtype):
    x = np.zeros(shape, dtype=dtype)
    prob = name == "cross_entropy_prob"
    t = np.zeros(shape, dtype=dtype) if prob else np.zeros(pos_shape(shape), dtype=np.int64)
    fn = fastloss.nll_loss if name == "nll_loss" else fastloss.cross_entropy
    kw = {"weight": np.ones(5, dtype=dtype)}
    v, g = fn(x, t, reduction="mean", return_grad=True, **kw)
    assert np.isnan(v) and np.asarray(v).dtype == dtype
    assert g.shape == shape and g.dtype == dtype
    v, g = fn(x, t, reduction="sum", return_grad=True, **kw)
    assert v == 0.0 and np.asarray(v).dtype == dtype and g.shape == shape
    v, g = fn(x, t, reduction="none", return_grad=True, **kw)
    assert v.shape == pos_shape(shape) and v.dtype == dtype and g.shape == shape


def _snapshot(objs):
    return [(a.copy(), a.flags.writeable, a.strides) for a in objs]


@pytest.mark.parametrize("layout", ["contiguous", "reversed"])
def test_inputs_not_modified(backend, layout):
    rng = np.random.default_rng(8)
    for dtype in DTYPES:
        x = rng.normal(size=(6, 5, 3)).astype(dtype)
        p = rng.random((6, 5, 3)).astype(dtype)
        y = rng.integers(0, 5, (6, 3))
        y[0, 0] = -100
        w = rng.uniform(0.5, 2.0, 5).astype(dtype)
        if layout == "reversed":
            x, p, y, w = (_strided(a, "reversed") for a in (x, p, y, w))
        arrays = [x, p, y, w]
        before = _snapshot(arrays)
        for reduction in REDUCTIONS:
            fastloss.cross_entropy(x, y, weight=w, label_smoothing=0.1, reduction=reduction, return_grad=True)
            fastloss.cross_entropy(x, p, weight=w, label_smoothing=0.1, reduction=reduction, return_grad=True)
            fastloss.nll_loss(x, y, weight=w, reduction=reduction, return_grad=True)
        for fn in (fastloss.softmax, fastloss.log_softmax, fastloss.logsumexp):
            fn(x, axis=1)
        fastloss.sigmoid(x)
        for a, (copy, writeable, strides) in zip(arrays, before):
            np.testing.assert_array_equal(a, copy)
            assert a.flags.writeable == writeable and a.strides == strides
    xl = [[1.0, 2.0], [3.0, -1.0]]
    fastloss.cross_entropy(xl, [0, 1])
    assert xl == [[1.0, 2.0], [3.0, -1.0]]


def test_results_are_fresh_arrays(backend):
    """Outputs never alias an input: writing to them leaves the inputs as they were."""
    x = np.random.default_rng(9).normal(size=(4, 3))
    keep = x.copy()
    for out in (
        fastloss.softmax(x),
        fastloss.log_softmax(x),
        fastloss.cross_entropy(x, [0, 1, 2, 0], return_grad=True)[1],
    ):
        assert not np.shares_memory(out, x)
        out[...] = 0.0
    np.testing.assert_array_equal(x, keep)
