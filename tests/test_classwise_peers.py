"""softmax_focal_loss, poly1_cross_entropy, multiclass_hinge and kl_div against the peers: PyTorch
(values and autograd gradients), scikit-learn (Crammer-Singer hinge) and SciPy (KL divergence), each
skipped when not importable."""

from __future__ import annotations

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
    class_weight,
    close_in,
    focal_kwargs,
    make_index_problem,
    make_kl_problem,
    ref_kl_terms,
)
from conftest import DTYPES, REDUCTIONS, optional_module

import fastloss

# --------------------------------------------------------------------------------------------------
# 1b. Values against scikit-learn and SciPy


def test_crammer_singer_matches_sklearn(backend, sklearn_metrics):
    for C, n in ((4, 20), (3, 7), (6, 13)):
        x, y = make_index_problem((n, C), _seed("sk", C), scale=1.0)
        want = sklearn_metrics.hinge_loss(y, x, labels=list(range(C)))
        got = fastloss.multiclass_hinge(x, y, method="crammer_singer")
        close_in(got, want, np.float64, f"C={C}")


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
        close_in(got, scipy_special.rel_entr(P[i], Q[i]).sum(), np.float64, f"rel_entr row {i}")
        if stats is not None:
            close_in(got, stats.entropy(P[i], Q[i]), np.float64, f"entropy row {i}")
    # batchmean: the per-sample divergence averaged over the batch
    want = np.mean(np.sum(scipy_special.rel_entr(P, Q), axis=1))
    close_in(fastloss.kl_div(np.log(Q), P), want, np.float64, "batchmean")
    with np.errstate(divide="ignore"):
        logp = np.log(P)
    close_in(fastloss.kl_div(np.log(Q), logp, log_target=True), want, np.float64, "batchmean log_target")


def test_kl_zero_target_term_is_zero(backend, torch):
    x = np.array([[-np.inf, 0.0], [np.log(0.3), np.log(0.7)]])
    t = np.array([[0.0, 1.0], [0.5, 0.5]])
    v, g = fastloss.kl_div(x, t, reduction="none", return_grad=True)
    assert v[0, 0] == 0.0 and v[0, 1] == 0.0
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, -t)
    tv = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), reduction="none").numpy()
    assert np.isnan(tv[0, 0])  # torch's NaN that fastloss replaces by the limit
    close_in(v[1], tv[1], np.float64)
    s = fastloss.kl_div(x, t, reduction="sum")
    assert np.isfinite(s)
    close_in(s, 0.5 * (np.log(0.5 / 0.3) + np.log(0.5 / 0.7)), np.float64)
    # log_target: log P = -inf is P = 0
    vl = fastloss.kl_div(
        x, np.log(np.where(t == 0, 1.0, t)) + np.where(t == 0, -np.inf, 0.0), log_target=True
    )
    close_in(vl, s / 2, np.float64)


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
    close_in(got, want, dtype, what)
    close_in(grad, want_grad, dtype, what + " grad")


@pytest.mark.parametrize("shape_id", LOSS_SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", FOCAL_CASES, ids=FOCAL_IDS)
def test_focal_vs_torch(backend, torch, case, dtype, reduction, shape_id):
    shape = LOSS_SHAPES[shape_id]
    seed = _seed("tfocal", case[0], shape_id)
    kw, ign = focal_kwargs(case, shape[1], seed)
    x, y = make_index_problem(shape, seed, ignore_index=ign, dtype=dtype)
    got, grad = fastloss.softmax_focal_loss(x, y, reduction=reduction, return_grad=True, **kw)
    assert grad.dtype == dtype and grad.shape == shape
    want, want_grad = _torch_value_grad(
        torch, lambda t: torch_focal(torch, t, y, kw["gamma"], kw["alpha"], ign, reduction), x
    )
    _check_vs_torch(got, grad, want, want_grad, dtype, "focal")


@pytest.mark.parametrize("shape_id", LOSS_SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POLY1_CASES, ids=POLY1_IDS)
def test_poly1_vs_torch(backend, torch, case, dtype, reduction, shape_id):
    shape = LOSS_SHAPES[shape_id]
    _, eps, ign = case
    x, y = make_index_problem(shape, _seed("tpoly1", case[0], shape_id), ignore_index=ign, dtype=dtype)
    kw = {"epsilon": eps} if ign is None else {"epsilon": eps, "ignore_index": ign}
    got, grad = fastloss.poly1_cross_entropy(x, y, reduction=reduction, return_grad=True, **kw)
    assert grad.dtype == dtype and grad.shape == shape
    want, want_grad = _torch_value_grad(torch, lambda t: torch_poly1(torch, t, y, eps, ign, reduction), x)
    _check_vs_torch(got, grad, want, want_grad, dtype, "poly1")


@pytest.mark.parametrize("shape_id", LOSS_SHAPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", HINGE_CASES, ids=HINGE_IDS)
def test_weston_watkins_vs_torch(backend, torch, case, dtype, reduction, shape_id):
    shape = LOSS_SHAPES[shape_id]
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
    close_in(got, want, dtype, "kl", scale=float(np.sum(np.abs(terms))) if reduction != "none" else None)
    close_in(grad, want_grad, dtype, "kl grad")


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
