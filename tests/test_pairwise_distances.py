"""pairwise_distances against a direct formulation, SciPy's cdist and torch.cdist: near duplicates,
extreme float32 magnitudes, zero vectors, dtypes, NaN, layouts and errors."""

from __future__ import annotations

import numpy as np
import pytest
from _pairwise import (
    METRICS,
    pd_tols,
    ref_cdist,
)
from conftest import (
    DTYPE_IDS,
    DTYPES,
    LAYOUTS,
    assert_close,
    f64,
    optional_module,
    relayout,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

import fastloss

SCIPY_METRIC = {
    "euclidean": "euclidean",
    "sqeuclidean": "sqeuclidean",
    "cosine": "cosine",
    "manhattan": "cityblock",
}


# ==================================================================================================
# 1. pairwise_distances


# (3, 70, 40000): rows so wide that the column panels (64 d values each, however few rows) would take
# more than 16 MiB, so each k-chunk is packed on the fly (pairwise.hpp, kMaxPackBytes): 3 rows, 70 rows.
PD_SHAPES = [(1, 1, 1), (5, 7, 3), (17, 4, 7), (40, 33, 5), (3, 0, 4), (0, 6, 2), (3, 70, 40000)]


def _pd_problem(shape, seed, dtype=np.float64):
    N, M, d = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, (N, d)).astype(dtype)
    y = rng.normal(0.0, 2.0, (M, d)).astype(dtype)
    return x, y


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", PD_SHAPES, ids=str)
def test_pairwise_distances_matches_reference(backend, shape, metric, dtype):
    x, y = _pd_problem(shape, _seed("pd", shape), dtype)
    got = fastloss.pairwise_distances(x, y, metric=metric)
    want = ref_cdist(x, y, metric)
    assert got.dtype == dtype and got.shape == (shape[0], shape[1])
    rtol, atol = pd_tols(dtype, want, metric)
    assert_close(got, want, rtol, atol, what=metric)
    # y=None means y = x
    got_xx = fastloss.pairwise_distances(x, metric=metric)
    rtol, atol = pd_tols(dtype, ref_cdist(x, x, metric), metric)
    assert_close(got_xx, ref_cdist(x, x, metric), rtol, atol, what=f"{metric} y=None")
    np.testing.assert_array_equal(got_xx, fastloss.pairwise_distances(x, x, metric=metric))
    if metric != "cosine":  # exact differences: the diagonal of D(x, x) is exactly 0
        np.testing.assert_array_equal(np.diagonal(got_xx), np.zeros(shape[0], dtype))
    if metric == "euclidean":  # the default metric
        np.testing.assert_array_equal(fastloss.pairwise_distances(x, y), got)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (6, 9, 4), (40, 27, 7)], ids=str)
def test_pairwise_distances_matches_scipy(backend, shape, metric, dtype):
    sd = pytest.importorskip("scipy.spatial.distance")
    x, y = _pd_problem(shape, _seed("pd-scipy", shape), dtype)
    got = fastloss.pairwise_distances(x, y, metric=metric)
    want = sd.cdist(f64(x), f64(y), SCIPY_METRIC[metric])
    rtol, atol = pd_tols(dtype, want, metric)
    assert_close(got, want, rtol, atol, what=metric)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "manhattan"])
def test_pairwise_distances_matches_torch_cdist(backend, torch, metric):
    x, y = _pd_problem((23, 11, 6), _seed("pd-torch", metric))
    p = 1.0 if metric == "manhattan" else 2.0
    want = torch.cdist(
        torch.tensor(x), torch.tensor(y), p=p, compute_mode="donot_use_mm_for_euclid_dist"
    ).numpy()
    if metric == "sqeuclidean":
        want = want**2
    assert_close(fastloss.pairwise_distances(x, y, metric=metric), want, 1e-12, 1e-13 * scale_of(want))


@pytest.mark.parametrize("offset", [0.0, 1e3, -3e3])
def test_pairwise_distances_near_duplicates_float64(backend, offset):
    """No cancellation: x and x + 1e-6 noise far from the origin keep the tiny distance to ~1e-6 relative
    (the |x|^2 + |y|^2 - 2 x.y expansion would lose it entirely)."""
    rng = np.random.default_rng(_seed("near-dup", offset))
    x = offset + rng.normal(0.0, 1.0, (9, 5))
    y = x + 1e-6 * rng.normal(0.0, 1.0, x.shape)
    diff = x - y  # exact-ish small differences: the reference
    tiny = np.sqrt(np.sum(diff * diff, axis=1))
    for metric, want_diag in (
        ("euclidean", tiny),
        ("sqeuclidean", tiny**2),
        ("manhattan", np.sum(np.abs(diff), axis=1)),
    ):
        got = fastloss.pairwise_distances(x, y, metric=metric)
        assert_close(np.diagonal(got), want_diag, rtol=1e-6, what=f"{metric} diagonal")
        assert_close(got, ref_cdist(x, y, metric), rtol=1e-6, atol=0.0, what=metric)
        assert_close(
            fastloss.pairwise_distances(y, x, metric=metric), got.T, rtol=1e-6, what=f"{metric} transposed"
        )
    sd = optional_module("scipy.spatial.distance")
    if sd is not None:
        assert_close(np.diagonal(fastloss.pairwise_distances(x, y)), np.diagonal(sd.cdist(x, y)), rtol=1e-6)


def test_pairwise_distances_near_duplicates_float32(backend):
    """float32 rows a few ulp apart, far from the origin: differences are exact in float32, so the
    distances must be within 1e-5 of the float64 values (an expansion in float32 would return noise)."""
    rng = np.random.default_rng(11)
    x = (1e3 + rng.normal(0.0, 1.0, (12, 6))).astype(np.float32)
    steps = rng.integers(1, 4, x.shape) * rng.choice([-1, 1], x.shape)
    y = (x + steps * np.spacing(x)).astype(np.float32)
    for metric in ("euclidean", "sqeuclidean", "manhattan"):
        got = fastloss.pairwise_distances(x, y, metric=metric)
        want = ref_cdist(x, y, metric)
        assert got.dtype == np.float32
        assert_close(np.diagonal(got), np.diagonal(want), rtol=1e-5, what=f"{metric} diagonal")
        assert_close(got, want, rtol=1e-5, what=metric)


@pytest.mark.parametrize("magnitude", [1e20, 1e-22], ids=["huge", "tiny"])
def test_pairwise_distances_float32_extreme_magnitudes(backend, magnitude):
    """float32 inputs whose squares leave the float32 range (but whose distances do not): the result is
    the float64 result on the same values, rounded to float32 (the NumPy backend computes in float64)."""
    rng = np.random.default_rng(_seed("extreme", magnitude))
    x = (magnitude * rng.normal(size=(5, 4))).astype(np.float32)
    y = (magnitude * rng.normal(size=(3, 4))).astype(np.float32)
    for metric in METRICS:
        with np.errstate(over="ignore", under="ignore"):
            want = ref_cdist(x, y, metric).astype(np.float32)
            got = fastloss.pairwise_distances(x, y, metric=metric)
            got_xx = fastloss.pairwise_distances(x, metric=metric)
            want_xx = ref_cdist(x, x, metric).astype(np.float32)
        assert_close(got, want, rtol=1e-5, atol=2e-6 if metric == "cosine" else 0.0, what=metric)
        assert_close(
            got_xx, want_xx, rtol=1e-5, atol=2e-6 if metric == "cosine" else 0.0, what=f"{metric} x, x"
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pairwise_distances_zero_vectors(backend, dtype):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(4, 3)).astype(dtype)
    y = rng.normal(size=(5, 3)).astype(dtype)
    x[1] = 0.0
    y[3] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = fastloss.pairwise_distances(x, y, metric="cosine")
    nan = np.zeros((4, 5), dtype=bool)
    nan[1, :] = True
    nan[:, 3] = True
    np.testing.assert_array_equal(np.isnan(cos), nan, err_msg="cosine distance of a zero vector is 0/0 = nan")
    assert_close(cos[~nan], ref_cdist(x, y, "cosine")[~nan], 1e-5 if dtype == np.float32 else 1e-12, 2e-6)
    for metric in ("euclidean", "sqeuclidean", "manhattan"):
        got = fastloss.pairwise_distances(x, y, metric=metric)
        assert np.isfinite(got).all()
        rtol, atol = pd_tols(dtype, got, metric)
        assert_close(got, ref_cdist(x, y, metric), rtol, atol, what=metric)
    # a vector with itself, and parallel / antiparallel vectors
    u = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [-1.0, -2.0, -3.0]], dtype=dtype)
    got = fastloss.pairwise_distances(u, metric="cosine")
    assert_close(got, [[0, 0, 2], [0, 0, 2], [2, 2, 0]], rtol=0, atol=1e-6 if dtype == np.float32 else 1e-14)
    assert (got >= 0).all() and (got <= 2).all()  # clipped


def test_pairwise_distances_dtypes(backend):
    rng = np.random.default_rng(13)
    x = rng.normal(size=(5, 3))
    y = rng.normal(size=(4, 3))
    d32 = fastloss.pairwise_distances(x.astype(np.float32), y.astype(np.float32))
    assert d32.dtype == np.float32
    d16 = fastloss.pairwise_distances(x.astype(np.float16), y.astype(np.float16))
    assert d16.dtype == np.float32
    np.testing.assert_array_equal(
        d16,
        fastloss.pairwise_distances(
            x.astype(np.float16).astype(np.float32), y.astype(np.float16).astype(np.float32)
        ),
    )
    xi = rng.integers(-5, 5, (5, 3))
    di = fastloss.pairwise_distances(xi, metric="manhattan")
    assert di.dtype == np.float64
    np.testing.assert_array_equal(di, ref_cdist(xi, xi, "manhattan"))
    mixed = fastloss.pairwise_distances(x.astype(np.float32), y)
    assert mixed.dtype == np.float64  # np.result_type(float32, float64)
    assert_close(mixed, ref_cdist(x.astype(np.float32), y, "euclidean"), 1e-12)
    lists = fastloss.pairwise_distances([[0.0, 0.0], [3.0, 4.0]], [[0.0, 0.0]])
    np.testing.assert_array_equal(lists, [[0.0], [5.0]])
    b = fastloss.pairwise_distances(np.array([[True, False], [False, False]]), metric="sqeuclidean")
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, [[0.0, 1.0], [1.0, 0.0]])


def test_pairwise_distances_nan_propagates(backend):
    rng = np.random.default_rng(14)
    x = rng.normal(size=(4, 3))
    y = rng.normal(size=(5, 3))
    x[2, 1] = np.nan
    y[0, 0] = np.inf
    for metric in METRICS:
        with np.errstate(invalid="ignore"):
            got = fastloss.pairwise_distances(x, y, metric=metric)
        assert np.isnan(got[2]).all(), metric
        assert not np.isnan(got[np.ix_([0, 1, 3], [1, 2, 3, 4])]).any(), metric
        if metric != "cosine":
            assert np.isinf(got[[0, 1, 3], 0]).all(), metric


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pairwise_distances_layouts(backend, dtype, kind):
    x, y = _pd_problem((9, 6, 5), _seed("pd-layout"), dtype)
    x[3] = 0.0
    for metric in METRICS:
        with np.errstate(invalid="ignore"):
            want = fastloss.pairwise_distances(x, y, metric=metric)
            got = fastloss.pairwise_distances(relayout(x, kind), relayout(y, kind), metric=metric)
            got_xx = fastloss.pairwise_distances(relayout(x, kind), metric=metric)
            want_xx = fastloss.pairwise_distances(x, metric=metric)
        np.testing.assert_array_equal(got, want, err_msg=metric)
        np.testing.assert_array_equal(got_xx, want_xx, err_msg=metric)
    # a transposed view is an (N, d) Fortran array of other values
    xt = np.ascontiguousarray(x.T).T
    np.testing.assert_array_equal(fastloss.pairwise_distances(xt, y), fastloss.pairwise_distances(x, y))


def test_pairwise_distances_does_not_modify_inputs(backend):
    x, y = _pd_problem((7, 5, 3), 15)
    x0, y0 = x.copy(), y.copy()
    for metric in METRICS:
        fastloss.pairwise_distances(x, y, metric=metric)
        fastloss.pairwise_distances(x, metric=metric)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    out = fastloss.pairwise_distances(x, y)
    assert not np.shares_memory(out, x) and not np.shares_memory(out, y)


@pytest.mark.parametrize(
    ("call", "exc", "pattern"),
    [
        (lambda: fastloss.pairwise_distances(np.ones(3)), ValueError, r"(?i)2-?d|ndim|dimension"),
        (lambda: fastloss.pairwise_distances(np.ones((2, 3, 4))), ValueError, r"(?i)2-?d|ndim|dimension"),
        (
            lambda: fastloss.pairwise_distances(np.ones((2, 3)), np.ones(3)),
            ValueError,
            r"(?i)2-?d|ndim|dimension",
        ),
        (
            lambda: fastloss.pairwise_distances(np.ones((2, 3)), np.ones((2, 4))),
            ValueError,
            r"\(2, 3\)[\s\S]*\(2, 4\)|\(2, 4\)[\s\S]*\(2, 3\)",
        ),
        (
            lambda: fastloss.pairwise_distances(np.ones((2, 3)), metric="chebyshev"),
            ValueError,
            "chebyshev|metric",
        ),
        (lambda: fastloss.pairwise_distances(np.ones((2, 3)), metric=2), (TypeError, ValueError), "metric"),
        (lambda: fastloss.pairwise_distances(np.ones((2, 3)) * 1j), TypeError, "complex|real"),
        (lambda: fastloss.pairwise_distances(np.array([["a", "b"]])), TypeError, "real|dtype"),
    ],
    ids=["1d", "3d", "y1d", "d_mismatch", "unknown_metric", "metric_type", "complex", "str"],
)
def test_pairwise_distances_errors(backend, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_pairwise_distances_unknown_metric_lists_valid_ones(backend):
    with pytest.raises(ValueError) as e:
        fastloss.pairwise_distances(np.ones((2, 3)), metric="hamming")
    for name in METRICS:
        assert name in str(e.value), f"the message should list {name!r}: {e.value}"
