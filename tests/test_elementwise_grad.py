"""Gradients: central finite differences in float64 and, where torch has the loss, autograd."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import (
    CASE_BY_ID,
    CASE_IDS,
    CASES,
    REDUCTIONS,
    layout,
    make_weight,
    split_grad,
    torch_loss,
    torch_reduce,
)

import fastloss

FD_WEIGHTS = [None, "full", "scalar", "col"]


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def draw_away_from_kinks(case, rng, shape, gap=1e-3):
    """Random float64 inputs whose elements all lie at least `gap` from a kink of the derivative."""
    for _ in range(100):
        args, extras = case.draw(rng, shape)
        if np.all(case.kink(*args) > gap):
            return args, extras
    raise AssertionError(f"could not draw inputs away from the kinks of {case.id}")


def finite_difference(f, args, k, reduction, h=1e-6):
    """Central-difference derivative of f(args) with respect to args[k], per element.

    For 'none' each output element depends on its own input element only, so one perturbation of
    the whole array gives every derivative; a reduced value is perturbed one element at a time.
    """
    x = args[k]
    step = h * np.maximum(1.0, np.abs(x))

    def with_x(xk):
        return tuple(xk if i == k else a for i, a in enumerate(args))

    if reduction == "none":
        return (f(with_x(x + step)) - f(with_x(x - step))) / (2.0 * step)
    fd = np.empty(x.shape)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += step[idx]
        xm[idx] -= step[idx]
        fd[idx] = (float(f(with_x(xp))) - float(f(with_x(xm)))) / (xp[idx] - xm[idx])
    return fd


@pytest.mark.parametrize("weight_kind", FD_WEIGHTS, ids=lambda k: f"w_{k}")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_grad_matches_finite_differences(backend, case_id, reduction, weight_kind):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(_seed("fd", case_id, reduction, weight_kind))
    shape = layout(5, weight_kind)
    args, extras = draw_away_from_kinks(case, rng, shape)
    weight = make_weight(rng, shape, weight_kind)

    def f(a):
        return case.call(a, extras, weight=weight, reduction=reduction)

    value, grad = case.call(args, extras, weight=weight, reduction=reduction, return_grad=True)
    np.testing.assert_array_equal(value, f(args))
    grads = split_grad(case, grad)
    assert len(grads) == case.ngrads
    for k, g in enumerate(grads):
        assert g.shape == shape and g.dtype == np.float64
        fd = finite_difference(f, args, k, reduction)
        np.testing.assert_allclose(
            g, fd, rtol=1e-6, atol=1e-8, err_msg=f"{case_id}: d/d(arg {k}), reduction={reduction}"
        )


@pytest.mark.parametrize("weight_kind", FD_WEIGHTS, ids=lambda k: f"w_{k}")
def test_rmse_grad_matches_finite_differences(backend, weight_kind):
    rng = np.random.default_rng(_seed("rmse", weight_kind))
    shape = layout(5, weight_kind)
    p, t = rng.normal(0, 2, (2,) + shape)
    weight = make_weight(rng, shape, weight_kind)

    def f(a):
        return fastloss.rmse(a[0], a[1], weight=weight)

    value, grad = fastloss.rmse(p, t, weight=weight, return_grad=True)
    assert value == f((p, t))
    np.testing.assert_allclose(grad, finite_difference(f, (p, t), 0, "mean"), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_grads_are_opposite(backend, reduction):
    case = CASE_BY_ID["margin_ranking_m0.3"]
    args, _ = case.draw(np.random.default_rng(1), (40,))
    _, (g1, g2) = fastloss.margin_ranking_loss(*args, margin=0.3, reduction=reduction, return_grad=True)
    np.testing.assert_array_equal(g2, -g1)
    assert np.any(g1 != 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_grad_dtype_and_shape(backend, case_id, dtype):
    case = CASE_BY_ID[case_id]
    args, extras = case.draw(np.random.default_rng(2), (3, 1, 4), dtype)
    for reduction in REDUCTIONS:
        _, grad = case.call(args, extras, reduction=reduction, return_grad=True)
        for g in split_grad(case, grad):
            assert isinstance(g, np.ndarray)
            assert g.shape == (3, 1, 4) and g.dtype == dtype


# --------------------------------------------------------------------------------------------------
# PyTorch autograd


TORCH_CASES = [c.id for c in CASES if c.torch_name is not None]


@pytest.mark.parametrize("weight_kind", [None, "full", "col", "row"], ids=lambda k: f"w_{k}")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case_id", TORCH_CASES)
def test_grad_matches_torch_autograd(torch, backend, case_id, reduction, weight_kind):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(_seed("torch-grad", case_id, weight_kind))
    shape = layout(257, weight_kind)
    args, extras = case.draw(rng, shape)
    weight = make_weight(rng, shape, weight_kind)
    _, grad = case.call(args, extras, weight=weight, reduction=reduction, return_grad=True)

    targs = [torch.tensor(a) for a in args]
    wrt = targs[: case.ngrads]  # x1 and x2 for ranking (target comes last there)
    for t in wrt:
        t.requires_grad_(True)
    textras = {k: torch.tensor(v) for k, v in extras.items()}
    out = torch_reduce(
        torch, torch_loss(torch, case.torch_name, targs, textras, case.kwargs), weight, reduction
    )
    out.backward(torch.ones_like(out))
    rtol = 1e-10 if case.transcendental else 1e-13
    for g, t in zip(split_grad(case, grad), wrt):
        want = t.grad.numpy()
        atol = 1e-13 * float(np.max(np.abs(want)))  # derivatives that are differences cancel
        np.testing.assert_allclose(g, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_pos_weight_broadcast_grad_matches_torch(torch, backend, reduction):
    rng = np.random.default_rng(9)
    x = rng.normal(0, 3, (50, 4))
    t = rng.random((50, 4))
    pw = np.array([0.5, 1.0, 2.0, 10.0])
    value, grad = fastloss.binary_cross_entropy_with_logits(
        x, t, pos_weight=pw, reduction=reduction, return_grad=True
    )
    tx = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, torch.tensor(t), pos_weight=torch.tensor(pw), reduction=reduction
    )
    out.backward()
    np.testing.assert_allclose(value, out.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-16)
