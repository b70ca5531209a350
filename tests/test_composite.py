"""Regularisers (l1_penalty, l2_penalty) and the Composite builder: closed forms, gradients against
finite differences, gradient accumulation over shared inputs, dtypes and errors; both backends."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DTYPES, fd_grad

import fastloss

PENALTIES = {
    "l1": (fastloss.l1_penalty, lambda ws: sum(np.abs(w).sum() for w in ws), lambda w: np.sign(w)),
    "l2": (fastloss.l2_penalty, lambda ws: sum((w * w).sum() for w in ws), lambda w: 2.0 * w),
}


def _params(rng, dtype=np.float64):
    return [
        rng.normal(size=(3, 4)).astype(dtype),
        rng.normal(size=(5,)).astype(dtype),
        np.asarray(rng.normal(), dtype=dtype),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(PENALTIES))
def test_penalty_values_and_gradients(backend, kind, dtype):
    fn, ref, dref = PENALTIES[kind]
    ws = _params(np.random.default_rng(3), dtype)
    value, grads = fn(*ws, return_grad=True)
    want = ref([w.astype(np.float64) for w in ws])
    assert type(value) is np.dtype(dtype).type
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(float(value), want, rtol=rtol)
    np.testing.assert_allclose(float(fn(*ws)), want, rtol=rtol)
    assert len(grads) == len(ws)
    for w, g in zip(ws, grads):
        assert g.shape == w.shape and g.dtype == dtype
        np.testing.assert_allclose(g, dref(w.astype(np.float64)), rtol=rtol)


@pytest.mark.parametrize("kind", list(PENALTIES))
def test_penalty_gradient_finite_differences(backend, kind):
    fn = PENALTIES[kind][0]
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(2,))
    _, (ga, gb) = fn(a, b, return_grad=True)
    np.testing.assert_allclose(ga, fd_grad(lambda z: float(fn(z, b)), a), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, fd_grad(lambda z: float(fn(a, z)), b), rtol=1e-6, atol=1e-8)


def test_penalty_edge_cases(backend):
    assert float(fastloss.l2_penalty()) == 0.0
    assert float(fastloss.l1_penalty(np.zeros(0))) == 0.0
    value, grads = fastloss.l1_penalty([0.0, -0.0, 2.0], return_grad=True)
    assert float(value) == 2.0
    np.testing.assert_array_equal(grads[0], [0.0, 0.0, 1.0])
    assert np.isnan(fastloss.l2_penalty([1.0, np.nan]))
    # mixed dtypes promote; integers compute as float64
    assert type(fastloss.l2_penalty(np.ones(2, np.float32), np.ones(2))) is np.float64
    assert type(fastloss.l1_penalty([1, 2])) is np.float64
    w = np.ones(3)
    w.flags.writeable = False
    fastloss.l2_penalty(w[::-1], return_grad=True)
    with pytest.raises(TypeError):
        fastloss.l1_penalty(["a"])
    with pytest.raises(TypeError):
        fastloss.l2_penalty([1.0], return_grad=1)


def _problem(rng):
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, 6)
    W = rng.normal(size=(4, 3))
    emb = rng.normal(size=(6, 3))
    return logits, labels, W, emb


def test_composite_total_terms_and_gradients(backend):
    logits, labels, W, emb = _problem(np.random.default_rng(5))
    loss = (
        fastloss.Composite()
        .add(fastloss.cross_entropy, logits, labels, name="ce")
        .add(fastloss.l2_penalty, W, emb, weight=1e-2, name="l2")
        .add(fastloss.l1_penalty, W, weight=3e-3, name="l1")
    )
    assert loss.names == ["ce", "l2", "l1"]
    res = loss.evaluate(return_grad=True)
    ce = fastloss.cross_entropy(logits, labels)
    want = ce + 1e-2 * (np.sum(W * W) + np.sum(emb * emb)) + 3e-3 * np.sum(np.abs(W))
    np.testing.assert_allclose(float(res.total), want, rtol=1e-14)
    assert set(res.terms) == {"ce", "l2", "l1"}
    np.testing.assert_allclose(float(res.terms["ce"]), ce, rtol=1e-15)
    # W appears in two terms: its gradient is the weighted sum of both
    np.testing.assert_allclose(res.grad(W), 1e-2 * 2 * W + 3e-3 * np.sign(W), rtol=1e-14)
    np.testing.assert_allclose(res.grad(emb), 1e-2 * 2 * emb, rtol=1e-14)
    _, g_ce = fastloss.cross_entropy(logits, labels, return_grad=True)
    np.testing.assert_allclose(res.grad(logits), g_ce, rtol=1e-15)
    # the labels are an input but differentiable by no term
    assert res.grads[[i for i, a in enumerate(res.inputs) if a is labels][0]] is None
    # finite differences of the total
    fd = fd_grad(
        lambda z: float(
            fastloss.Composite()
            .add(fastloss.cross_entropy, logits, labels)
            .add(fastloss.l2_penalty, z, emb, weight=1e-2)
            .add(fastloss.l1_penalty, z, weight=3e-3)
            .evaluate()
            .total
        ),
        W,
    )
    np.testing.assert_allclose(res.grad(W), fd, rtol=1e-6, atol=1e-9)
    # without gradients
    res0 = loss.evaluate()
    assert res0.grads is None and float(res0.total) == float(res.total)
    with pytest.raises(ValueError, match="gradients"):
        res0.grad(W)
    with pytest.raises(KeyError):
        res.grad(np.ones(3))


def test_composite_wrt_and_multi_gradient_terms(backend):
    rng = np.random.default_rng(6)
    a, p, n = (rng.normal(size=(5, 3)) for _ in range(3))
    pred, target = rng.normal(size=7), rng.normal(size=7)
    prior, prior_t = rng.normal(size=4), rng.normal(size=4)
    res = (
        fastloss.Composite()
        .add(fastloss.triplet_margin_loss, a, p, n, margin=0.5)
        .add(fastloss.prior_preservation_loss, pred, target, prior, prior_t, weight=2.0, wrt=(0, 2))
        .evaluate(return_grad=True)
    )
    _, (ga, gp, gn) = fastloss.triplet_margin_loss(a, p, n, margin=0.5, return_grad=True)
    _, (g_pred, g_prior) = fastloss.prior_preservation_loss(pred, target, prior, prior_t, return_grad=True)
    np.testing.assert_allclose(res.grad(a), ga)
    np.testing.assert_allclose(res.grad(n), gn)
    np.testing.assert_allclose(res.grad(pred), 2.0 * g_pred)
    np.testing.assert_allclose(res.grad(prior), 2.0 * g_prior)


@pytest.mark.parametrize("dtype", DTYPES)
def test_composite_dtype(backend, dtype):
    logits, labels, W, _ = _problem(np.random.default_rng(7))
    res = (
        fastloss.Composite()
        .add(fastloss.cross_entropy, logits.astype(dtype), labels)
        .add(fastloss.l2_penalty, W.astype(dtype), weight=0.1)
        .evaluate()
    )
    assert type(res.total) is np.dtype(dtype).type


def test_composite_errors(backend):
    logits, labels, W, _ = _problem(np.random.default_rng(8))
    c = fastloss.Composite()
    with pytest.raises(ValueError, match="no terms"):
        c.evaluate()
    with pytest.raises(TypeError, match="callable"):
        c.add("mse", W)
    c.add(fastloss.l2_penalty, W)
    with pytest.raises(ValueError, match="exists already"):
        c.add(fastloss.l2_penalty, W)
    with pytest.raises(ValueError, match="return_grad"):
        c.add(fastloss.mse, W, W, name="m", return_grad=True)
    with pytest.raises(ValueError, match="wrt"):
        c.add(fastloss.mse, W, W, name="m", wrt=(2,))
    with pytest.raises(ValueError, match="weight must not be NaN"):
        c.add(fastloss.mse, W, W, name="m", weight=np.nan)
    c.add(fastloss.cross_entropy, logits, labels, reduction="none", name="ce")
    with pytest.raises(ValueError, match="scalar"):
        c.evaluate()
