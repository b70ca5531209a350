"""Shared fixtures and the reference table of the elementwise losses.

Every loss gets a `Case`: how to call fastloss, how to draw valid random inputs for it, and an
independent closed-form reference (plain NumPy, float64) of the per-element loss and of its
derivative with respect to each differentiable input. The test modules import `CASES` and the
helpers from here
(``from conftest import ...``; pytest puts this directory on sys.path).
"""

from __future__ import annotations

import contextvars
import importlib
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import fastloss
from fastloss import _backend

HAVE_CORE = _backend._core is not None
BACKENDS = ["cpp", "numpy"]
REDUCTIONS = ["mean", "sum", "none"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
# For tests of the compiled module itself (the backend fixture skips "cpp" on its own).
needs_core = pytest.mark.skipif(not HAVE_CORE, reason="compiled backend fastloss._core is unavailable")


# --------------------------------------------------------------------------------------------------
# Fixtures


def pytest_configure(config):
    # declared in pyproject.toml too; registered here for runs from a copy of tests/ (wheel test)
    config.addinivalue_line(
        "markers",
        "cpp_only: about the compiled backend only (SIMD levels, thread determinism at scale)",
    )


def _backend_param(name: str):
    marks = []
    if name == "cpp" and not HAVE_CORE:
        marks.append(pytest.mark.skip(reason="compiled backend fastloss._core is unavailable"))
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture(params=[_backend_param(b) for b in BACKENDS])
def backend(request) -> Any:
    """Runs the test once per backend, with that backend active."""
    with fastloss.use_backend(request.param):
        yield request.param


@pytest.fixture
def core():
    """The compiled module (skips when it is missing)."""
    if not HAVE_CORE:
        pytest.skip("compiled backend fastloss._core is unavailable")
    return _backend._core


@pytest.fixture(autouse=True)
def _restore_global_state():
    """No test may leak a backend, thread or SIMD setting into the next."""
    backend_before = fastloss.get_backend()
    threads_before = _backend._num_threads
    simd_before = _backend._core.get_simd() if HAVE_CORE else None
    yield
    _backend._backend = backend_before
    _backend._num_threads = threads_before
    if HAVE_CORE and _backend._core.get_simd() != simd_before:
        _backend._core.set_simd(simd_before)


def optional_module(name: str):
    """The module, or None when it cannot be imported (the suite must pass without it)."""
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a broken install that fails while importing
        return None


def _require(name: str):
    mod = optional_module(name)
    if mod is None:
        pytest.skip(f"{name} is not importable")
    return mod


def seed_of(*parts) -> int:
    """A stable seed from a test's parameters."""
    return zlib.crc32(repr(parts).encode())


def f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def scale_of(a) -> float:
    a = f64(a)
    a = a[np.isfinite(a)]
    return float(np.max(np.abs(a), initial=0.0))


def assert_close(got, want, rtol, atol=0.0, what=""):
    """Same shape, and equal within rtol/atol in float64 (NaN equals NaN)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    np.testing.assert_allclose(f64(got), f64(want), rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


# Memory layouts every input handling test runs through.
LAYOUTS = ["fortran", "strided", "reversed", "readonly"]


def relayout(a, kind: str):
    """A view of a copy of `a` with the same values and another memory layout."""
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype=a.dtype)
        idx = tuple(slice(1, None, 2) for _ in a.shape)
        big[idx] = a
        return big[idx]
    if kind == "reversed":
        idx = tuple(slice(None, None, -1) for _ in a.shape)
        return a[idx].copy()[idx]
    if kind == "readonly":
        b = a.copy()
        b.setflags(write=False)
        return b
    raise KeyError(kind)


def hypothesis_settings(max_examples: int):
    """The suite's hypothesis settings: no deadline (shared machines), no example database, and no
    health checks against slow data or function-scoped fixtures (the backend fixture is one)."""
    hyp = importlib.import_module("hypothesis")
    return hyp.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[hyp.HealthCheck.too_slow, hyp.HealthCheck.function_scoped_fixture],
    )


def run_concurrently(jobs: dict[str, Callable[[], Any]], repeats: int = 3) -> dict[str, list]:
    """Run each job `repeats` times on its own Python thread, all starting together; returns the results
    per job, and fails on any exception or hang."""
    results: dict[str, list] = {k: [] for k in jobs}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def worker(name):
        try:
            barrier.wait(timeout=60)
            for _ in range(repeats):
                results[name].append(jobs[name]())
        except BaseException as e:  # reported below
            errors.append(e)

    # Each thread runs in a copy of the caller's context, so a backend or thread count chosen with the
    # (per-thread) context managers, as the backend fixture does, holds in the jobs too.
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker, k)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a concurrent call hangs"
    assert not errors, errors
    return results


@pytest.fixture(scope="session")
def torch():
    return _require("torch")


@pytest.fixture(scope="session")
def scipy_special():
    return _require("scipy.special")


@pytest.fixture(scope="session")
def sklearn_metrics():
    return _require("sklearn.metrics")


# --------------------------------------------------------------------------------------------------
# Independent closed forms (float64)


def expit(x):
    """1 / (1 + e^-x), written without overflow warnings."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.logaddexp(0.0, x)


def ref_mse(p, t):
    d = p - t
    return d * d, (2.0 * d,)


def ref_mae(p, t):
    d = p - t
    return np.abs(d), (np.sign(d),)


def ref_huber(delta):
    def f(p, t):
        d = p - t
        ad = np.abs(d)
        inner = ad <= delta
        loss = np.where(inner, 0.5 * d * d, delta * (ad - 0.5 * delta))
        return loss, (np.where(inner, d, delta * np.sign(d)),)

    return f


def ref_smooth_l1(beta):
    def f(p, t):
        d = p - t
        ad = np.abs(d)
        inner = ad < beta
        loss = np.where(inner, 0.5 * d * d / beta, ad - 0.5 * beta)
        return loss, (np.where(inner, d / beta, np.sign(d)),)

    return f


def ref_log_cosh(p, t):
    d = p - t
    # log cosh d = log(1 + 2 sinh^2(d/2)): no cancellation for small d
    return np.log1p(2.0 * np.sinh(0.5 * d) ** 2), (np.tanh(d),)


def ref_pseudo_huber(delta):
    def f(p, t):
        d = p - t
        u2 = (d / delta) ** 2
        loss = delta * delta * np.expm1(0.5 * np.log1p(u2))  # delta^2 (sqrt(1 + u^2) - 1)
        return loss, (d / np.sqrt(1.0 + u2),)

    return f


def ref_pinball(q):
    def f(p, t):
        r = t - p
        loss = np.maximum(q * r, (q - 1.0) * r)
        return loss, (np.where(r > 0, -q, np.where(r < 0, 1.0 - q, 0.0)),)

    return f


def ref_hinge(margin, squared=False):
    def f(s, t):
        v = margin - t * s
        h = np.maximum(v, 0.0)
        if squared:
            return h * h, (-2.0 * t * h,)
        return h, (np.where(v > 0, -t, 0.0),)

    return f


def ref_bce(p, t):
    with np.errstate(divide="ignore"):
        lp = np.maximum(np.log(p), -100.0)
        lq = np.maximum(np.log(1.0 - p), -100.0)
    loss = -(t * lp + (1.0 - t) * lq)
    return loss, ((p - t) / np.maximum(p * (1.0 - p), 1e-12),)


def ref_bce_logits(x, t, pos_weight=1.0):
    w = pos_weight
    loss = t * w * softplus(-x) + (1.0 - t) * softplus(x)
    return loss, ((1.0 - t) * expit(x) - t * w * expit(-x),)


def ref_focal(alpha, gamma):
    def f(x, t):
        p, pn = expit(x), expit(-x)
        ce = t * softplus(-x) + (1.0 - t) * softplus(x)
        q = p * (1.0 - t) + pn * t  # 1 - p_t
        at = 1.0 if alpha < 0 else alpha * t + (1.0 - alpha) * (1.0 - t)
        loss = at * ce * q**gamma
        dce = (1.0 - t) * p - t * pn
        dq = p * pn * (1.0 - 2.0 * t)
        grad = at * (dce * q**gamma + ce * gamma * q ** (gamma - 1.0) * dq)
        return loss, (grad,)

    return f


def ref_margin_ranking(margin):
    def f(x1, x2, y):
        v = margin - y * (x1 - x2)
        g1 = np.where(v > 0, -y, 0.0)
        return np.maximum(v, 0.0), (g1, -g1)

    return f


# --------------------------------------------------------------------------------------------------
# Random valid inputs (float64; the tests cast them)


def gen_regression(rng, shape):
    return (rng.normal(0.0, 2.0, shape), rng.normal(0.0, 2.0, shape)), {}


def gen_hinge(rng, shape):
    return (rng.normal(0.0, 1.5, shape), rng.choice([-1.0, 1.0], size=shape)), {}


def soft_labels(rng, shape):
    """Labels in [0, 1]: a third soft, the rest exactly 0 or 1."""
    hard = rng.integers(0, 2, shape).astype(np.float64)
    return np.where(rng.random(shape) < 1 / 3, rng.random(shape), hard)


def gen_bce(rng, shape):
    return (rng.uniform(0.02, 0.98, shape), soft_labels(rng, shape)), {}


def gen_logits(rng, shape):
    return (rng.normal(0.0, 3.0, shape), soft_labels(rng, shape)), {}


def gen_logits_pw(rng, shape):
    pw_shape = shape[-1:] if len(shape) >= 2 else shape
    return (rng.normal(0.0, 3.0, shape), soft_labels(rng, shape)), {
        "pos_weight": rng.uniform(0.25, 4.0, pw_shape)
    }


def gen_ranking(rng, shape):
    x1, x2 = rng.normal(0.0, 1.0, shape), rng.normal(0.0, 1.0, shape)
    return (x1, x2, rng.choice([-1.0, 1.0], size=shape)), {}


# Distance of each element to the nearest kink of the loss's first derivative (finite differences
# must stay away from it).


def kink_none(*args):
    return np.full(np.shape(args[0]), np.inf)


def kink_abs_d(p, t):
    return np.abs(p - t)


def kink_at(level):
    def f(p, t):
        ad = np.abs(p - t)
        return np.minimum(ad, np.abs(ad - level))

    return f


def kink_hinge(margin):
    def f(s, t):
        return np.abs(margin - t * s)

    return f


def kink_ranking(margin):
    def f(x1, x2, y):
        return np.abs(margin - y * (x1 - x2))

    return f


@dataclass(frozen=True)
class Case:
    id: str
    fn: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)
    gen: Callable = gen_regression
    ref: Callable = ref_mse
    kink: Callable = kink_none
    transcendental: bool = False
    ngrads: int = 1  # differentiable positional inputs: the first (and the second for ranking)
    torch_name: str | None = None  # key of TORCH_LOSSES, where torch has this loss

    def draw(self, rng, shape, dtype=np.float64):
        """(args, extras) cast to `dtype`, and their float64 images for the reference."""
        args, extras = self.gen(rng, shape)
        args = tuple(np.asarray(a, dtype=dtype) for a in args)
        extras = {k: np.asarray(v, dtype=dtype) for k, v in extras.items()}
        return args, extras

    def call(self, args, extras=None, **kw):
        return self.fn(*args, **self.kwargs, **(extras or {}), **kw)

    def reference(self, args, extras=None):
        """Per-element (loss, grads) in float64 of the (already cast) inputs."""
        a64 = tuple(np.asarray(a, dtype=np.float64) for a in args)
        e64 = {k: np.asarray(v, dtype=np.float64) for k, v in (extras or {}).items()}
        return self.ref(*a64, **e64)


fl = fastloss
CASES = [
    Case("mse", fl.mse, ref=ref_mse, torch_name="mse"),
    Case("mae", fl.mae, ref=ref_mae, kink=kink_abs_d, torch_name="l1"),
    Case("huber", fl.huber, ref=ref_huber(1.0), kink=kink_at(1.0), torch_name="huber"),
    Case("huber_d0.3", fl.huber, {"delta": 0.3}, ref=ref_huber(0.3), kink=kink_at(0.3), torch_name="huber"),
    Case("smooth_l1", fl.smooth_l1, ref=ref_smooth_l1(1.0), kink=kink_at(1.0), torch_name="smooth_l1"),
    Case(
        "smooth_l1_b2.5",
        fl.smooth_l1,
        {"beta": 2.5},
        ref=ref_smooth_l1(2.5),
        kink=kink_at(2.5),
        torch_name="smooth_l1",
    ),
    Case("log_cosh", fl.log_cosh, ref=ref_log_cosh, transcendental=True),
    Case("pseudo_huber", fl.pseudo_huber, ref=ref_pseudo_huber(1.0), transcendental=True),
    Case("pseudo_huber_d2", fl.pseudo_huber, {"delta": 2.0}, ref=ref_pseudo_huber(2.0), transcendental=True),
    Case("pinball", fl.pinball, ref=ref_pinball(0.5), kink=kink_abs_d),
    Case("pinball_q0.9", fl.pinball, {"quantile": 0.9}, ref=ref_pinball(0.9), kink=kink_abs_d),
    Case("pinball_q0", fl.pinball, {"quantile": 0.0}, ref=ref_pinball(0.0), kink=kink_abs_d),
    Case("hinge", fl.hinge, gen=gen_hinge, ref=ref_hinge(1.0), kink=kink_hinge(1.0)),
    Case("hinge_m0.5", fl.hinge, {"margin": 0.5}, gen=gen_hinge, ref=ref_hinge(0.5), kink=kink_hinge(0.5)),
    Case(
        "hinge_sq", fl.hinge, {"squared": True}, gen=gen_hinge, ref=ref_hinge(1.0, True), kink=kink_hinge(1.0)
    ),
    Case("bce", fl.binary_cross_entropy, gen=gen_bce, ref=ref_bce, transcendental=True, torch_name="bce"),
    Case(
        "bce_logits",
        fl.binary_cross_entropy_with_logits,
        gen=gen_logits,
        ref=ref_bce_logits,
        transcendental=True,
        torch_name="bce_logits",
    ),
    Case(
        "bce_logits_pw",
        fl.binary_cross_entropy_with_logits,
        gen=gen_logits_pw,
        ref=ref_bce_logits,
        transcendental=True,
        torch_name="bce_logits",
    ),
    Case(
        "focal",
        fl.sigmoid_focal_loss,
        gen=gen_logits,
        ref=ref_focal(0.25, 2.0),
        transcendental=True,
        torch_name="focal",
    ),
    Case(
        "focal_a-1_g0.5",
        fl.sigmoid_focal_loss,
        {"alpha": -1.0, "gamma": 0.5},
        gen=gen_logits,
        ref=ref_focal(-1.0, 0.5),
        transcendental=True,
        torch_name="focal",
    ),
    Case(
        "focal_g0",
        fl.sigmoid_focal_loss,
        {"alpha": 0.6, "gamma": 0.0},
        gen=gen_logits,
        ref=ref_focal(0.6, 0.0),
        transcendental=True,
        torch_name="focal",
    ),
    Case(
        "margin_ranking",
        fl.margin_ranking_loss,
        gen=gen_ranking,
        ref=ref_margin_ranking(0.0),
        kink=kink_ranking(0.0),
        ngrads=2,
        torch_name="margin_ranking",
    ),
    Case(
        "margin_ranking_m0.3",
        fl.margin_ranking_loss,
        {"margin": 0.3},
        gen=gen_ranking,
        ref=ref_margin_ranking(0.3),
        kink=kink_ranking(0.3),
        ngrads=2,
        torch_name="margin_ranking",
    ),
]
CASE_IDS = [c.id for c in CASES]
CASE_BY_ID = {c.id: c for c in CASES}


# --------------------------------------------------------------------------------------------------
# Reductions and weights


WEIGHT_KINDS = [None, "full", "scalar", "col", "row"]


def fd_grad(f, x, h=1e-6):
    """Central differences of the scalar f at x (float64), one element at a time."""
    g = np.empty(x.shape)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (xp[idx] - xm[idx])
    return g


def layout(n: int, weight_kind: str | None) -> tuple[int, ...]:
    """The input shape a weight kind is tested on: (n,), or (n, 3) for the broadcasting ones."""
    return (n, 3) if weight_kind in ("col", "row") else (n,)


def make_weight(rng, shape, weight_kind, dtype=np.float64):
    """A positive weight of the given kind for inputs of `shape` (None for no weight)."""
    if weight_kind is None:
        return None
    wshape = {
        "full": shape,
        "scalar": (),
        "col": shape[:-1] + (1,),
        "row": shape[-1:],
    }[weight_kind]
    return np.asarray(rng.uniform(0.5, 2.0, wshape), dtype=dtype)


def reduce_ref(loss, grads, weight, reduction, shape):
    """Expected (value, grads) from float64 per-element losses/derivatives, weight, reduction."""
    w = np.ones(shape) if weight is None else np.broadcast_to(np.asarray(weight, np.float64), shape)
    wl = w * loss
    if reduction == "none":
        return wl, tuple(w * g for g in grads)
    total = float(np.sum(wl))
    if reduction == "sum":
        return total, tuple(w * g for g in grads)
    wsum = float(np.sum(w))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.float64(total) / wsum if wsum else np.nan), tuple(w * g / wsum for g in grads)


def split_grad(case: Case, grad):
    """The gradient(s) fastloss returned, as a tuple matching the reference's."""
    return tuple(grad) if case.ngrads == 2 else (grad,)


# --------------------------------------------------------------------------------------------------
# PyTorch counterparts (the `torch` fixture supplies the module)


def torch_loss(torch, name, args, extras, kwargs):
    """Per-element loss (reduction 'none') of fastloss case `name` computed by torch ops."""
    F = torch.nn.functional
    if name == "mse":
        return F.mse_loss(*args, reduction="none")
    if name == "l1":
        return F.l1_loss(*args, reduction="none")
    if name == "huber":
        return F.huber_loss(*args, delta=kwargs.get("delta", 1.0), reduction="none")
    if name == "smooth_l1":
        return F.smooth_l1_loss(*args, beta=kwargs.get("beta", 1.0), reduction="none")
    if name == "bce":
        return F.binary_cross_entropy(*args, reduction="none")
    if name == "bce_logits":
        return F.binary_cross_entropy_with_logits(
            *args, pos_weight=extras.get("pos_weight"), reduction="none"
        )
    if name == "margin_ranking":
        return F.margin_ranking_loss(*args, margin=kwargs.get("margin", 0.0), reduction="none")
    if name == "focal":
        return torchvision_sigmoid_focal_loss(
            torch, *args, alpha=kwargs.get("alpha", 0.25), gamma=kwargs.get("gamma", 2.0)
        )
    raise KeyError(name)


def torchvision_sigmoid_focal_loss(torch, inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss (reduction 'none'), as torchvision writes it."""
    p = torch.sigmoid(inputs)
    ce_loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


def torch_reduce(torch, loss, weight, reduction):
    if weight is not None:
        w = torch.as_tensor(np.broadcast_to(weight, loss.shape).copy())
        loss = w * loss
        if reduction == "mean":
            return loss.sum() / w.sum()
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


# The compiled backend computes float32 inputs of these losses in float32 (float polynomials for
# exp/log, within 2 float ulp; q^gamma as exp(gamma log q) loses |gamma log q| ulp more); every
# other loss computes in float64 and rounds once.
FLOAT_COMPUTE_FNS = (fastloss.binary_cross_entropy_with_logits, fastloss.sigmoid_focal_loss)


def float_compute(case: Case) -> bool:
    return case.fn in FLOAT_COMPUTE_FNS


def tolerances(dtype, transcendental=False, float_compute=False):
    """(rtol, atol) for comparing a float32/float64 result with a float64 reference."""
    if np.dtype(dtype) == np.float32:
        return (5e-6 if float_compute else 2e-6), 1e-37
    return (1e-11 if transcendental else 1e-13), 1e-300


def grad_atol(want, dtype, float_compute=False):
    """Absolute slack for derivatives that are differences of terms (they cancel): a few roundings
    of the compute type, relative to the largest derivative."""
    scale = float(np.max(np.abs(want), initial=0.0))
    if np.dtype(dtype) == np.float32 and float_compute:
        return 1e-6 * scale
    return 1e-13 * scale
