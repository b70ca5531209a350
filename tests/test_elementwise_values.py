"""Loss values (and the gradients that come with them) against independent references.

The closed forms in conftest are plain float64 NumPy; the optional oracles are PyTorch, SciPy and
scikit-learn, each skipped when it cannot be imported.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import (
    CASE_BY_ID,
    CASE_IDS,
    CASES,
    DTYPES,
    REDUCTIONS,
    WEIGHT_KINDS,
    float_compute,
    grad_atol,
    layout,
    make_weight,
    reduce_ref,
    split_grad,
    tolerances,
    torch_loss,
    torch_reduce,
)

import fastloss

SIZES = [0, 1, 7, 1000, 2049, 4097]


def _seed(*parts) -> int:
    """A stable per-test seed (hash() of a str changes from run to run)."""
    return zlib.crc32(repr(parts).encode())


def _check(got, want, rtol, atol, what):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol, err_msg=what)


# --------------------------------------------------------------------------------------------------
# Against the closed forms


@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS, ids=lambda k: f"w_{k}")
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_matches_closed_form(backend, case_id, dtype, n, weight_kind):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(_seed(case_id, n, weight_kind))
    shape = layout(n, weight_kind)
    args, extras = case.draw(rng, shape, dtype)
    weight = make_weight(rng, shape, weight_kind, dtype)
    loss, grads = case.reference(args, extras)
    fc = float_compute(case)
    rtol, atol = tolerances(dtype, case.transcendental, fc)
    for reduction in REDUCTIONS:
        what = f"{case_id} reduction={reduction}"
        want_v, want_g = reduce_ref(loss, grads, weight, reduction, shape)
        value, grad = case.call(args, extras, weight=weight, reduction=reduction, return_grad=True)
        plain = case.call(args, extras, weight=weight, reduction=reduction)
        if reduction == "none":
            assert isinstance(value, np.ndarray)
            assert value.shape == shape and value.dtype == dtype
        else:
            assert isinstance(value, np.generic) and value.dtype == dtype, type(value)
        np.testing.assert_array_equal(plain, value, err_msg=f"{what}: return_grad changed value")
        _check(value, want_v, rtol, atol, what)
        got_g = split_grad(case, grad)
        assert len(got_g) == len(want_g)
        for g, wg in zip(got_g, want_g):
            assert g.shape == shape and g.dtype == dtype
            _check(g, wg, rtol, max(atol, grad_atol(wg, dtype, fc)), what + " grad")


@pytest.mark.parametrize("weight_kind", [None, "full", "scalar", "col"], ids=lambda k: f"w_{k}")
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_rmse_closed_form(backend, dtype, n, weight_kind):
    rng = np.random.default_rng(_seed("rmse", n, weight_kind))
    shape = layout(n, weight_kind)
    p, t = (rng.normal(0, 2, shape).astype(dtype) for _ in range(2))
    weight = make_weight(rng, shape, weight_kind, dtype)
    d = p.astype(np.float64) - t.astype(np.float64)
    w = np.ones(shape) if weight is None else np.broadcast_to(weight.astype(np.float64), shape)
    with np.errstate(invalid="ignore"):
        want = np.sqrt(np.sum(w * d * d) / np.sum(w)) if n else np.nan
        want_g = w * d / (np.sum(w) * want)
    value, grad = fastloss.rmse(p, t, weight=weight, return_grad=True)
    assert isinstance(value, np.generic) and value.dtype == dtype
    rtol, atol = tolerances(dtype)
    _check(value, want, rtol, atol, "rmse")
    _check(fastloss.rmse(p, t, weight=weight), want, rtol, atol, "rmse")
    assert grad.shape == shape and grad.dtype == dtype
    _check(grad, want_g, rtol, atol, "rmse grad")


def test_rmse_zero_error_has_zero_gradient(backend):
    x = np.array([1.0, 2.0, 3.0])
    value, grad = fastloss.rmse(x, x.copy(), return_grad=True)
    assert value == 0.0
    np.testing.assert_array_equal(grad, np.zeros(3))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_smooth_l1_is_huber_over_beta(backend, dtype, beta):
    rng = np.random.default_rng(3)
    p, t = rng.normal(0, 2, (2, 500)).astype(dtype)
    h, hg = fastloss.huber(p, t, delta=beta, reduction="none", return_grad=True)
    s, sg = fastloss.smooth_l1(p, t, beta=beta, reduction="none", return_grad=True)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(s, h / dtype(beta), rtol=rtol)
    np.testing.assert_allclose(sg, hg / dtype(beta), rtol=rtol)


def test_doc_examples_exact_values(backend):
    assert float(fastloss.mse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])) == pytest.approx(4 / 3, rel=1e-15)
    assert float(fastloss.mae([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])) == 1.0
    assert float(fastloss.rmse([0.0, 0.0], [3.0, 4.0])) == pytest.approx(np.sqrt(12.5), rel=1e-15)
    assert float(fastloss.huber([0.0, 0.0], [0.5, 3.0])) == 1.3125
    assert float(fastloss.pinball([0.0, 0.0], [1.0, -1.0], quantile=0.9)) == 0.5
    assert float(fastloss.hinge([2.0, 0.5, -1.0], [1, 1, 1])) == pytest.approx(2.5 / 3)
    assert float(fastloss.margin_ranking_loss([1.0, 0.0], [0.0, 1.0], [1, 1], margin=0.5)) == 0.75


# --------------------------------------------------------------------------------------------------
# The two backends against each other


@pytest.mark.cpp_only
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS, ids=lambda k: f"w_{k}")
@pytest.mark.parametrize("n", [1, 7, 1000, 4097], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_cpp_matches_numpy_backend(core, case_id, dtype, n, weight_kind):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(_seed("x", case_id, n, weight_kind))
    shape = layout(n, weight_kind)
    args, extras = case.draw(rng, shape, dtype)
    weight = make_weight(rng, shape, weight_kind, dtype)
    fc = float_compute(case)
    if dtype == np.float64:
        rtol, atol = 1e-12, 1e-15
    elif fc:
        rtol, atol = 5e-6, 1e-6  # the compiled backend computes these in float32
    else:
        rtol, atol = 3e-7, 1e-7  # both compute in float64 and round once; a tie may round apart
    for reduction in REDUCTIONS:
        res = {}
        for name in ("cpp", "numpy"):
            with fastloss.use_backend(name):
                res[name] = case.call(args, extras, weight=weight, reduction=reduction, return_grad=True)
        (vc, gc), (vn, gn) = res["cpp"], res["numpy"]
        what = f"{case_id} reduction={reduction}"
        assert type(vc) is type(vn) and np.asarray(vc).dtype == np.asarray(vn).dtype
        np.testing.assert_allclose(vc, vn, rtol=rtol, atol=atol, err_msg=what)
        for a, b in zip(split_grad(case, gc), split_grad(case, gn)):
            gatol = atol * float(np.max(np.abs(b), initial=0.0))
            np.testing.assert_allclose(a, b, rtol=rtol, atol=gatol, err_msg=what + " grad")


# --------------------------------------------------------------------------------------------------
# Optional oracles: PyTorch


TORCH_CASES = [c.id for c in CASES if c.torch_name is not None]


@pytest.mark.parametrize("weight_kind", [None, "full", "col", "row"], ids=lambda k: f"w_{k}")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case_id", TORCH_CASES)
def test_matches_torch(torch, backend, case_id, reduction, weight_kind):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(_seed("torch", case_id, weight_kind))
    shape = layout(331, weight_kind)
    args, extras = case.draw(rng, shape, np.float64)
    weight = make_weight(rng, shape, weight_kind)
    value = case.call(args, extras, weight=weight, reduction=reduction)
    targs = [torch.tensor(a) for a in args]
    textras = {k: torch.tensor(v) for k, v in extras.items()}
    want = torch_reduce(
        torch, torch_loss(torch, case.torch_name, targs, textras, case.kwargs), weight, reduction
    )
    rtol = 1e-10 if case.transcendental else 1e-13
    np.testing.assert_allclose(value, want.numpy(), rtol=rtol, atol=1e-14)


@pytest.mark.parametrize(
    "case_id", ["mse", "mae", "huber_d0.3", "smooth_l1_b2.5", "bce", "bce_logits", "margin_ranking_m0.3"]
)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_torch_builtin_reduction_float32(torch, backend, case_id, reduction):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(_seed("torch32", case_id))
    args, extras = case.draw(rng, (64, 5), np.float32)
    targs = [torch.tensor(a) for a in args]
    F = torch.nn.functional
    kw = dict(case.kwargs)
    fn = {
        "mse": F.mse_loss,
        "mae": F.l1_loss,
        "huber_d0.3": F.huber_loss,
        "smooth_l1_b2.5": F.smooth_l1_loss,
        "bce": F.binary_cross_entropy,
        "bce_logits": F.binary_cross_entropy_with_logits,
        "margin_ranking_m0.3": F.margin_ranking_loss,
    }[case_id]
    want = fn(*targs, reduction=reduction, **kw).item()
    got = case.call(args, extras, reduction=reduction)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_bce_clamps_logs_like_torch(torch, backend):
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.3])
    value, grad = fastloss.binary_cross_entropy(p, t, reduction="none", return_grad=True)
    tp = torch.tensor(p, requires_grad=True)
    tl = torch.nn.functional.binary_cross_entropy(tp, torch.tensor(t), reduction="none")
    tl.sum().backward()
    np.testing.assert_allclose(value, tl.detach().numpy(), rtol=1e-14)
    # torch clamps p (1 - p) at float32(1e-12) = 9.99999996e-13; the contract says 1e-12
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-8)
    assert value[0] == 100.0 and value[1] == 100.0 and value[2] == 0.0 and value[3] == 0.0
    np.testing.assert_array_equal(grad[:5], [-1e12, 1e12, 0.0, 0.0, (1e-50 - 1.0) / 1e-12])


# --------------------------------------------------------------------------------------------------
# Optional oracles: SciPy and scikit-learn


@pytest.mark.parametrize("delta", [0.1, 1.0, 7.5])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_pseudo_huber_matches_scipy(scipy_special, backend, delta, dtype):
    rng = np.random.default_rng(11)
    d = rng.normal(0, 3, 1001) * np.exp(rng.uniform(-12, 6, 1001))
    p = d.astype(dtype)
    t = np.zeros_like(p)
    want = scipy_special.pseudo_huber(delta, p.astype(np.float64))
    got = fastloss.pseudo_huber(p, t, delta=delta, reduction="none")
    np.testing.assert_allclose(got, want, rtol=2e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(
        fastloss.pseudo_huber(p, t, delta=delta), np.mean(want), rtol=2e-6 if dtype == np.float32 else 1e-12
    )


def _sk(sklearn_metrics, name):
    fn = getattr(sklearn_metrics, name, None)
    if fn is None:
        pytest.skip(f"sklearn.metrics.{name} is not available")
    return fn


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("mean_squared_error", lambda p, t, w: fastloss.mse(p, t, weight=w)),
        ("mean_absolute_error", lambda p, t, w: fastloss.mae(p, t, weight=w)),
        ("root_mean_squared_error", lambda p, t, w: fastloss.rmse(p, t, weight=w)),
    ],
)
def test_regression_matches_sklearn(sklearn_metrics, backend, name, call, weighted):
    rng = np.random.default_rng(5)
    p, t = rng.normal(0, 2, (2, 2049))
    w = rng.uniform(0.1, 3.0, 2049) if weighted else None
    want = _sk(sklearn_metrics, name)(t, p, sample_weight=w)
    np.testing.assert_allclose(call(p, t, w), want, rtol=1e-13)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("quantile", [0.0, 0.1, 0.5, 0.95, 1.0])
def test_pinball_matches_sklearn(sklearn_metrics, backend, quantile, weighted):
    rng = np.random.default_rng(6)
    p, t = rng.normal(0, 2, (2, 1000))
    w = rng.uniform(0.1, 3.0, 1000) if weighted else None
    want = _sk(sklearn_metrics, "mean_pinball_loss")(y_true=t, y_pred=p, alpha=quantile, sample_weight=w)
    np.testing.assert_allclose(fastloss.pinball(p, t, quantile=quantile, weight=w), want, rtol=1e-13)


@pytest.mark.parametrize("weighted", [False, True])
def test_hinge_matches_sklearn(sklearn_metrics, backend, weighted):
    rng = np.random.default_rng(7)
    s = rng.normal(0, 1.5, 1000)
    y = rng.choice([-1.0, 1.0], 1000)
    w = rng.uniform(0.1, 3.0, 1000) if weighted else None
    want = _sk(sklearn_metrics, "hinge_loss")(y, s, sample_weight=w)
    np.testing.assert_allclose(fastloss.hinge(s, y, weight=w), want, rtol=1e-13)
    # integer labels give the same
    np.testing.assert_allclose(fastloss.hinge(s, y.astype(np.int64), weight=w), want, rtol=1e-13)
