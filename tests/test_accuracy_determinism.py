"""Accuracy of float32 means at 10^7 elements, bitwise determinism across thread counts, and
concurrent calls from Python threads (the kernels release the GIL)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    CASES,
    HAVE_CORE,
    ref_bce,
    ref_bce_logits,
    ref_focal,
    ref_hinge,
    ref_huber,
    ref_log_cosh,
    ref_mae,
    ref_mse,
    ref_pinball,
    ref_pseudo_huber,
    ref_smooth_l1,
    run_concurrently,
    split_grad,
)

import fastloss

N = 10_000_000
SEED = 20240607


@pytest.fixture(scope="module")
def big_pair():
    """One float32 pair of 10^7 elements for the whole module."""
    rng = np.random.default_rng(SEED)
    pred = rng.standard_normal(N, dtype=np.float32) * np.float32(2.0)
    target = rng.standard_normal(N, dtype=np.float32) * np.float32(2.0)
    return pred, target


def _expit32(x):
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


# (id, fastloss call, closed form, inputs derived from the pair, accuracy class)
ACCURACY = [
    ("mse", fastloss.mse, ref_mse, "pair", "ulp"),
    ("mae", fastloss.mae, ref_mae, "pair", "ulp"),
    ("huber", fastloss.huber, ref_huber(1.0), "pair", "ulp"),
    ("smooth_l1", lambda p, t: fastloss.smooth_l1(p, t, beta=0.5), ref_smooth_l1(0.5), "pair", "ulp"),
    ("pinball", lambda p, t: fastloss.pinball(p, t, quantile=0.8), ref_pinball(0.8), "pair", "ulp"),
    ("hinge", fastloss.hinge, ref_hinge(1.0), "pm1", "ulp"),
    ("log_cosh", fastloss.log_cosh, ref_log_cosh, "pair", "rel"),
    ("pseudo_huber", fastloss.pseudo_huber, ref_pseudo_huber(1.0), "pair", "rel"),
    ("bce", fastloss.binary_cross_entropy, ref_bce, "probs", "rel"),
    ("bce_logits", fastloss.binary_cross_entropy_with_logits, ref_bce_logits, "soft", "rel"),
    ("sigmoid_focal", fastloss.sigmoid_focal_loss, ref_focal(0.25, 2.0), "hard", "rel"),
]


@pytest.fixture(scope="module")
def derived(big_pair):
    """The inputs of each kind, made once from the pair (all float32)."""
    pred, target = big_pair
    cache = {}

    def get(kind):
        if kind not in cache:
            if kind == "pair":
                cache[kind] = (pred, target)
            elif kind == "pm1":
                cache[kind] = (pred, np.where(target >= 0, 1.0, -1.0).astype(np.float32))
            elif kind == "probs":
                cache[kind] = (_expit32(pred), _expit32(target))
            elif kind == "soft":
                cache[kind] = (pred, _expit32(target))
            elif kind == "hard":
                cache[kind] = (pred, (target >= 0).astype(np.float32))
        return cache[kind]

    return get


@pytest.fixture(scope="module")
def references(derived):
    """float64 reference mean of each loss on the float32 inputs, computed once."""
    cache = {}

    def get(loss_id, ref, kind):
        if loss_id not in cache:
            a, b = (x.astype(np.float64) for x in derived(kind))
            loss, _ = ref(a, b)
            cache[loss_id] = float(np.sum(loss, dtype=np.float64)) / N
        return cache[loss_id]

    return get


@pytest.mark.parametrize(("loss_id", "fn", "ref", "kind", "accuracy"), ACCURACY, ids=[a[0] for a in ACCURACY])
def test_float32_mean_of_1e7_elements(backend, derived, references, loss_id, fn, ref, kind, accuracy):
    a, b = derived(kind)
    want = references(loss_id, ref, kind)
    got = fn(a, b)
    assert type(got) is np.float32
    if accuracy == "ulp":
        bound = 2 * float(np.spacing(np.float32(want)))
        assert abs(float(got) - want) <= bound, (
            f"{loss_id}: got {float(got)!r}, float64 reference {want!r}, "
            f"error {abs(float(got) - want) / np.spacing(np.float32(want)):.2f} float32 ulp"
        )
    else:
        assert abs(float(got) - want) <= 1e-6 * abs(want), (
            f"{loss_id}: got {float(got)!r}, float64 reference {want!r}, "
            f"relative error {abs(float(got) - want) / abs(want):.3g}"
        )


# --------------------------------------------------------------------------------------------------
# Determinism

THREADS = [1, 2, 3, 4, 7]
DET_N = 300_007  # 147 blocks of 2048 and a partial one


def _bits(x):
    a = np.ascontiguousarray(np.asarray(x))
    return a.dtype.str, a.shape, a.tobytes()


def _outputs(case, args, extras, weight):
    out = []
    for reduction in ("mean", "sum", "none"):
        value, grad = case.call(args, extras, weight=weight, reduction=reduction, return_grad=True)
        out.append(_bits(value))
        out.extend(_bits(g) for g in split_grad(case, grad))
        out.append(_bits(case.call(args, extras, weight=weight, reduction=reduction)))
    return out


@pytest.mark.cpp_only
@pytest.mark.skipif(not HAVE_CORE, reason="compiled backend unavailable")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bitwise_identical_for_any_thread_count(case, dtype, weighted):
    rng = np.random.default_rng(99)
    args, extras = case.draw(rng, (DET_N,), dtype)
    weight = rng.uniform(0.5, 2.0, DET_N).astype(dtype) if weighted else None
    with fastloss.use_backend("cpp"):
        with fastloss.num_threads(1):
            want = _outputs(case, args, extras, weight)
        for n in THREADS:
            with fastloss.num_threads(n):
                for repeat in range(2):
                    got = _outputs(case, args, extras, weight)
                    assert got == want, f"{case.id}: {n} threads (run {repeat}) differ from 1"
        assert _outputs(case, args, extras, weight) == want  # the default thread count too


@pytest.mark.cpp_only
@pytest.mark.skipif(not HAVE_CORE, reason="compiled backend unavailable")
def test_rmse_bitwise_identical_for_any_thread_count():
    rng = np.random.default_rng(98)
    p, t = rng.normal(0, 1, (2, DET_N))
    with fastloss.use_backend("cpp"):
        with fastloss.num_threads(1):
            v1, g1 = fastloss.rmse(p, t, return_grad=True)
        for n in THREADS:
            with fastloss.num_threads(n):
                v, g = fastloss.rmse(p, t, return_grad=True)
            assert _bits(v) == _bits(v1) and _bits(g) == _bits(g1)


@pytest.mark.cpp_only
@pytest.mark.skipif(not HAVE_CORE, reason="compiled backend unavailable")
def test_domain_error_position_independent_of_threads():
    y = np.ones(DET_N)
    y[[150_001, 200_000, 299_999]] = 0.5
    s = np.zeros(DET_N)
    with fastloss.use_backend("cpp"):
        for n in THREADS:
            with fastloss.num_threads(n):
                with pytest.raises(ValueError, match=r"found target\[150001\] = 0\.5"):
                    fastloss.hinge(s, y)


# --------------------------------------------------------------------------------------------------
# Concurrent calls from Python threads


@pytest.mark.cpp_only
@pytest.mark.skipif(not HAVE_CORE, reason="compiled backend unavailable")
def test_two_python_threads_get_correct_results(big_pair):
    pred, target = big_pair
    jobs = {
        "huber": lambda: fastloss.huber(pred, target, return_grad=True),
        "log_cosh": lambda: fastloss.log_cosh(pred, target, reduction="sum", return_grad=True),
    }
    with fastloss.use_backend("cpp"):
        want = {k: fn() for k, fn in jobs.items()}
        results = run_concurrently(jobs)
    for name, runs in results.items():
        assert len(runs) == 3
        for value, grad in runs:
            assert _bits(value) == _bits(want[name][0]), name
            assert _bits(grad) == _bits(want[name][1]), name
