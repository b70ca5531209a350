"""Metric-learning losses at scale: bitwise identical across thread counts, the backends agree, the values
match the references, hypothesis properties, concurrent Python threads, the backends' primitive sets."""

from __future__ import annotations

import numpy as np
import pytest
from _pairwise import (
    CASE_BY_ID,
    METRICS,
    ONE_IDS,
    ONE_PER_FN,
    _all_outputs,
    cast_args,
    make_problem,
    mk_arcface,
    mk_kmeans,
    pd_tols,
    reduce_ref,
    ref_cdist,
    ref_contrastive,
    value_atol,
)
from conftest import (
    DTYPES,
    LAYOUTS,
    REDUCTIONS,
    assert_close,
    hypothesis_settings,
    needs_core,
    optional_module,
    relayout,
    run_concurrently,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

import fastloss

# ==================================================================================================
# 6. Backends and threads


def _big_problem(case, seed):
    """N = 700, d = 33, with enough columns (speakers, classes, centers) that every kernel goes parallel."""
    rng = np.random.default_rng(seed)
    if case.fn == "ge2e_loss":
        spk = rng.normal(0.0, 1.0, (40, 1, 33))
        return (spk + rng.normal(0.0, 0.8, (40, 25, 33)),), {}
    if case.fn == "arcface_loss":
        return mk_arcface(rng, 700, 33, C=50)
    if case.fn == "kmeans_inertia":
        (x, c), _ = mk_kmeans(rng, 700, 33, K=16)
        return (x, c), ({"sample_weight": rng.uniform(0.0, 2.0, 700)} if case.id == "kmeans_w" else {})
    return case.make(rng, 700, 33)


@pytest.mark.cpp_only
@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_bitwise_identical_across_threads(core, case):
    args, kw = _big_problem(case, _seed("threads", case.id))
    for dtype in DTYPES:
        a, k = cast_args(case, args, kw, dtype)
        with fastloss.use_backend("cpp"):
            with fastloss.num_threads(1):
                one = _all_outputs(case, a, k)
            with fastloss.num_threads(2):
                two = _all_outputs(case, a, k)
        for i, (x, y) in enumerate(zip(one, two)):
            np.testing.assert_array_equal(
                x, y, err_msg=f"{case.id} {np.dtype(dtype).name} output {i}: 1 vs 2 threads"
            )


@pytest.mark.cpp_only
@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_distances_bitwise_identical_across_threads(core, metric):
    rng = np.random.default_rng(_seed("pd-threads", metric))
    x, y = rng.normal(size=(700, 33)), rng.normal(size=(650, 33))
    for dtype in DTYPES:
        with fastloss.use_backend("cpp"):
            with fastloss.num_threads(1):
                one = fastloss.pairwise_distances(x.astype(dtype), y.astype(dtype), metric=metric)
            with fastloss.num_threads(2):
                two = fastloss.pairwise_distances(x.astype(dtype), y.astype(dtype), metric=metric)
        np.testing.assert_array_equal(one, two)


@needs_core
@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_backends_agree_at_scale(case):
    """Many tiles / chunks on both backends (the reference tests are small)."""
    args, kw = make_problem(case, 300, 17, _seed("agree", case.id), kink_min=0.0)
    for dtype in DTYPES:
        a, k = cast_args(case, args, kw, dtype)
        with fastloss.use_backend("cpp"):
            c = _all_outputs(case, a, k)
        with fastloss.use_backend("numpy"):
            n = _all_outputs(case, a, k)
        rtol = 1e-5 if dtype == np.float32 else 1e-11
        for i, (x, y) in enumerate(zip(c, n)):
            assert x.dtype == y.dtype
            atol = (1e-5 if dtype == np.float32 else 1e-12) * max(scale_of(y), 1e-300)
            assert_close(x, y, rtol=rtol, atol=atol, what=f"{case.id} output {i}")


@pytest.mark.parametrize(
    "case",
    [
        CASE_BY_ID[i]
        for i in ("batch_hard", "info_nce", "nt_xent", "arcface", "kmeans_w", "pairwise_contrastive")
    ],
    ids=lambda c: c.id,
)
def test_values_at_scale_match_reference(backend, case):
    """N = 300: row chunks and tiles of both backends against the full-matrix reference (float64)."""
    args, kw = make_problem(case, 300, 9, _seed("scale", case.id), kink_min=0.0)
    ref = case.reference(args, kw)
    red = case.reductions[0]
    v, g, _ = case.run(args, red, kw)
    want, want_g = reduce_ref(ref, red)
    assert_close(v, want, rtol=1e-10, atol=value_atol(ref, red, 1e-12))
    for a, b in zip(g, want_g):
        assert_close(a, b, rtol=1e-8, atol=1e-10 * scale_of(b))


def test_pairwise_distances_at_scale(backend):
    rng = np.random.default_rng(26)
    x, y = rng.normal(size=(300, 9)), rng.normal(size=(270, 9))
    for metric in METRICS:
        want = ref_cdist(x, y, metric)
        assert_close(
            fastloss.pairwise_distances(x, y, metric=metric), want, 1e-12, 1e-14 * scale_of(want), what=metric
        )


# ==================================================================================================
# 7. Properties (hypothesis)


hypothesis = optional_module("hypothesis")


hnp = optional_module("hypothesis.extra.numpy")


if hypothesis is None or hnp is None:

    def test_properties_need_hypothesis():
        pytest.skip("hypothesis is not importable")

else:
    st = hypothesis.strategies
    SETTINGS = hypothesis_settings(25)
    # away from 0 (no underflow of |x|^2 in float32) but including exact zeros
    _LO = float(np.float32(0.01))
    ELEMENTS = st.one_of(st.just(0.0), st.floats(_LO, 100.0, width=32), st.floats(-100.0, -_LO, width=32))

    @st.composite
    def embeddings(draw, n=None, d=None, min_n=0, max_n=9):
        dtype = draw(st.sampled_from(DTYPES))
        n = draw(st.integers(min_n, max_n)) if n is None else n
        d = draw(st.integers(1, 6)) if d is None else d
        return draw(hnp.arrays(np.float64, (n, d), elements=ELEMENTS)).astype(dtype)

    @SETTINGS
    @hypothesis.given(data=st.data(), metric=st.sampled_from(METRICS), same=st.booleans())
    def test_property_pairwise_distances(backend, data, metric, same):
        x = data.draw(embeddings())
        y = x if same else data.draw(embeddings(d=x.shape[1])).astype(x.dtype)
        layout = data.draw(st.sampled_from(["c"] + LAYOUTS))
        xl, yl = (x, y) if layout == "c" else (relayout(x, layout), relayout(y, layout))
        with np.errstate(invalid="ignore", divide="ignore"):
            got = fastloss.pairwise_distances(xl, None if same else yl, metric=metric)
            want = ref_cdist(x, y, metric)
        assert got.dtype == x.dtype and got.shape == (len(x), len(y))
        rtol, atol = pd_tols(x.dtype, want, metric)
        assert_close(got, want, rtol, atol, what=metric)
        if metric != "cosine":
            assert (got >= 0).all()

    @SETTINGS
    @hypothesis.given(
        data=st.data(),
        margin=st.one_of(st.just(0.0), st.floats(0.0, 3.0)),
        reduction=st.sampled_from(REDUCTIONS),
    )
    def test_property_contrastive(backend, data, margin, reduction):
        x1 = data.draw(embeddings())
        x2 = data.draw(embeddings(n=len(x1), d=x1.shape[1])).astype(x1.dtype)
        n = len(x1)
        t = data.draw(
            hnp.arrays(np.float64, (n,), elements=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
        )
        t = t.astype(x1.dtype)
        v, (g1, g2) = fastloss.contrastive_loss(
            x1, x2, t, margin=margin, reduction=reduction, return_grad=True
        )
        ref = ref_contrastive((x1, x2, t), {"margin": margin})
        want, (w1, w2) = reduce_ref(ref, reduction)
        assert g1.dtype == g2.dtype == x1.dtype and g1.shape == x1.shape
        if x1.dtype == np.float32:
            rtol, rel = 1e-5, 1e-5
        else:
            rtol, rel = 1e-11, 1e-13
        assert_close(v, want, rtol, atol=value_atol(ref, reduction, rel) + 1e-30)
        for g, w in ((g1, w1), (g2, w2)):
            if w is None:
                continue
            assert_close(g, w, rtol, atol=rel * max(scale_of(w), 1e-30) * 10)
        np.testing.assert_array_equal(g2, -g1)

    @SETTINGS
    @hypothesis.given(data=st.data())
    def test_property_kmeans(backend, data):
        x = data.draw(embeddings(max_n=12))
        c = data.draw(embeddings(min_n=1, max_n=5, d=x.shape[1])).astype(x.dtype)
        inertia, lab, (gx, gc) = fastloss.kmeans_inertia(x, c, return_grad=True)
        D = ref_cdist(x, c, "sqeuclidean")
        best = D[np.arange(len(x)), lab] if len(x) else np.zeros(0)
        # the label is a nearest center (ties: the lowest index among the exact minima in float64)
        assert (
            best <= D.min(axis=1, initial=np.inf) * (1 + (3e-6 if x.dtype == np.float32 else 1e-12)) + 1e-30
        ).all()
        want = float(np.sum(np.min(D, axis=1))) if len(x) else 0.0
        assert_close(inertia, want, 1e-5 if x.dtype == np.float32 else 1e-11, atol=1e-30)
        assert gx.shape == x.shape and gc.shape == c.shape


# --------------------------------------------------------------------------------------------------
# More thread counts, concurrent Python threads, and the two backends' primitive sets


PRIMITIVES = ("pairwise_distances", "pairwise_contrastive", "batch_hard", "kmeans", "sim_ce", "rowwise")


def test_backends_expose_the_same_primitives():
    from fastloss import _backend, _numpy

    for name in PRIMITIVES:
        assert callable(getattr(_numpy, name)), name
        if _backend._core is not None:
            assert callable(getattr(_backend._core, name)), name


def _pair_jobs(x, labels):
    return {
        "contrastive": lambda: fastloss.pairwise_contrastive_loss(x, labels, margin=4.0, return_grad=True),
        "info_nce": lambda: fastloss.info_nce(x, x[::-1], return_grad=True),
        "batch_hard": lambda: fastloss.batch_hard_triplet_loss(x, labels, return_grad=True),
    }


def _flat_bits(result):
    value, grads = result
    grads = grads if isinstance(grads, tuple) else (grads,)
    return [np.asarray(value).tobytes()] + [g.tobytes() for g in grads]


@pytest.mark.cpp_only
@pytest.mark.parametrize("threads", [3, 4, 7])
def test_bitwise_identical_for_more_thread_counts(core, threads):
    rng = np.random.default_rng(_seed("more-threads", threads))
    x = rng.normal(size=(600, 40)).astype(np.float32)
    labels = rng.integers(0, 9, 600)
    with fastloss.use_backend("cpp"):
        for name, job in _pair_jobs(x, labels).items():
            with fastloss.num_threads(1):
                one = _flat_bits(job())
            with fastloss.num_threads(threads):
                many = _flat_bits(job())
            assert one == many, f"{name}: 1 vs {threads} threads"


@pytest.mark.cpp_only
def test_two_python_threads_get_correct_results(core):
    rng = np.random.default_rng(_seed("python-threads"))
    x = rng.normal(size=(500, 24))
    labels = rng.integers(0, 7, 500)
    jobs = {k: (lambda fn=fn: _flat_bits(fn())) for k, fn in _pair_jobs(x, labels).items()}
    with fastloss.use_backend("cpp"):
        want = {k: fn() for k, fn in jobs.items()}
        results = run_concurrently(jobs)
    for name, runs in results.items():
        assert len(runs) == 3 and all(r == want[name] for r in runs), name
