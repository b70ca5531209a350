"""fastloss.toolbox: gram_matrix, style_loss, perceptual_loss, temporal_consistency_loss,
graph_matching_loss, flow_matching_loss, prior_preservation_loss.

References: direct float64 NumPy formulations written here from the definitions (explicit loops and
einsum, explicit permutation matrices), central finite differences for every gradient; both backends,
float32 against float64, dtype rules, shapes and errors, inputs never modified.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import DTYPE_IDS, DTYPES, REDUCTIONS, fd_grad

from fastloss.toolbox import (
    flow_matching_loss,
    gram_matrix,
    graph_matching_loss,
    perceptual_loss,
    prior_preservation_loss,
    style_loss,
    temporal_consistency_loss,
)


def rng_for(*parts) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def rtol_for(dtype) -> float:
    return 2e-5 if np.dtype(dtype) == np.float32 else 1e-11


def close(got, want, dtype=np.float64, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = float(np.max(np.abs(f64(want)), initial=0.0))
    np.testing.assert_allclose(
        f64(got), f64(want), rtol=rtol_for(dtype), atol=rtol_for(dtype) * scale * 1e-2, err_msg=what
    )


def fd_close(got, want, what=""):
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    np.testing.assert_allclose(f64(got), want, rtol=1e-5, atol=1e-6 * scale, err_msg=what)


# --------------------------------------------------------------------------------------------------
# Closed forms (float64)


def ref_gram(f, normalize=True):
    f = f64(f)
    if f.ndim == 4:
        return np.stack([ref_gram(x, normalize) for x in f])
    c = f.shape[0]
    m = f.reshape(c, -1)
    g = np.einsum("ik,jk->ij", m, m)
    return g / m.size if normalize else g


def ref_style(a, b):
    return float(np.mean((ref_gram(a) - ref_gram(b)) ** 2))


def ref_temporal(y, p):
    y = f64(y)
    return float(np.mean([np.mean(np.abs(y[t + 1] - y[t]) ** p) for t in range(len(y) - 1)]))


def perm_matrix(pi):
    n = len(pi)
    p = np.zeros((n, n))
    for i, j in enumerate(pi):
        p[i, j] = 1.0
    return p


def ref_graph(a1, a2, pi):
    p = perm_matrix(pi)
    return float(np.sum((f64(a1) - p @ f64(a2) @ p.T) ** 2))


def ref_flow(v, x0, x1, reduction):
    v, x0, x1 = f64(v), f64(x0), f64(x1)
    per = np.array([np.sum((v[i] - (x1[i] - x0[i])) ** 2) for i in range(len(v))])
    return {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]


def ref_prior(p, t, pp, pt, w):
    return float(np.mean((f64(p) - f64(t)) ** 2) + w * np.mean((f64(pp) - f64(pt)) ** 2))


# --------------------------------------------------------------------------------------------------
# gram_matrix


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(3, 5), (4, 3, 2), (2, 3, 4, 2)])
@pytest.mark.parametrize("normalize", [True, False])
def test_gram_matrix(backend, dtype, shape, normalize):
    f = rng_for("gram", shape).normal(size=shape).astype(dtype)
    g = gram_matrix(f, normalize=normalize)
    assert g.dtype == dtype
    close(g, ref_gram(f, normalize), dtype)
    c = shape[1] if len(shape) == 4 else shape[0]
    assert g.shape == ((shape[0], c, c) if len(shape) == 4 else (c, c))


def test_gram_matrix_normaliser_is_chw():
    f = np.ones((2, 3, 4))
    np.testing.assert_array_equal(gram_matrix(f), np.full((2, 2), 12.0 / 24.0))
    assert gram_matrix([[1, 2], [3, 4]]).dtype == np.float64  # ints compute as float64


@pytest.mark.parametrize("shape", [(), (4,), (1, 2, 3, 4, 5)])
def test_gram_matrix_bad_ndim(shape):
    with pytest.raises(ValueError, match="features"):
        gram_matrix(np.ones(shape))


# --------------------------------------------------------------------------------------------------
# style_loss


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 3), (2, 2, 2, 3)])
def test_style_loss(backend, dtype, shape):
    rng = rng_for("style", shape)
    a, b = (rng.normal(size=shape).astype(dtype) for _ in range(2))
    v = style_loss(a, b)
    assert isinstance(v, np.generic) and v.dtype == dtype
    close(v, ref_style(a, b), dtype)
    v2, (ga, gb) = style_loss(a, b, return_grad=True)
    assert v2 == v and ga.dtype == dtype and gb.dtype == dtype
    assert ga.shape == shape and gb.shape == shape
    if dtype == np.float64:
        fd_close(ga, fd_grad(lambda x: ref_style(x, b), f64(a)), "d/da")
        fd_close(gb, fd_grad(lambda x: ref_style(a, x), f64(b)), "d/db")
    else:
        _, (ga64, gb64) = style_loss(f64(a), f64(b), return_grad=True)
        close(ga, ga64, dtype)
        close(gb, gb64, dtype)


def test_style_loss_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 3\)"):
        style_loss(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="features_a"):
        style_loss(np.ones(3), np.ones(3))


# --------------------------------------------------------------------------------------------------
# perceptual_loss


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_perceptual_loss(backend, dtype, reduction):
    rng = rng_for("perc", reduction)
    a, b = (rng.normal(size=(2, 3, 4)).astype(dtype) for _ in range(2))
    d = f64(a) - f64(b)
    want = {"none": d**2, "sum": np.sum(d**2), "mean": np.mean(d**2)}[reduction]
    v, (ga, gb) = perceptual_loss(a, b, reduction=reduction, return_grad=True)
    close(v, want, dtype)
    close(perceptual_loss(a, b, reduction=reduction), want, dtype)
    gwant = 2 * d / (d.size if reduction == "mean" else 1)
    close(ga, gwant, dtype)
    np.testing.assert_array_equal(gb, -ga)
    assert ga.dtype == dtype and gb.dtype == dtype
    if reduction != "none":
        assert isinstance(v, np.generic) and v.dtype == dtype
        if dtype == np.float64:
            fd_close(ga, fd_grad(lambda x: float(np.sum(perceptual_loss(x, b, reduction=reduction))), a))


def test_perceptual_loss_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        perceptual_loss(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="reduction"):
        perceptual_loss(np.ones(2), np.ones(2), reduction="avg")


# --------------------------------------------------------------------------------------------------
# temporal_consistency_loss


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("shape", [(2,), (4, 3), (3, 2, 2)])
def test_temporal_consistency_loss(backend, dtype, p, shape):
    y = rng_for("temporal", shape, p).normal(size=shape).astype(dtype)
    v = temporal_consistency_loss(y, p=p)
    assert isinstance(v, np.generic) and v.dtype == dtype
    close(v, ref_temporal(y, p), dtype)
    v2, g = temporal_consistency_loss(y, p=p, return_grad=True)
    assert v2 == v and isinstance(g, np.ndarray) and g.shape == shape and g.dtype == dtype
    if dtype == np.float64:
        fd_close(g, fd_grad(lambda x: ref_temporal(x, p), y))


def test_temporal_consistency_is_mean_over_elements():
    y = rng_for("temporal-all").normal(size=(5, 7))
    want = np.mean(np.abs(np.diff(y, axis=0)))
    np.testing.assert_allclose(temporal_consistency_loss(y), want, rtol=1e-13)


def test_temporal_consistency_errors():
    with pytest.raises(ValueError, match="T >= 2"):
        temporal_consistency_loss(np.ones((1, 3)))
    with pytest.raises(ValueError, match="T >= 2"):
        temporal_consistency_loss(np.float64(1.0))
    for bad in (0, 3, -1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="p must be 1 or 2"):
            temporal_consistency_loss(np.ones((3, 2)), p=bad)


# --------------------------------------------------------------------------------------------------
# graph_matching_loss


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [1, 4, 6])
def test_graph_matching_loss(backend, dtype, n):
    rng = rng_for("graph", n)
    a1, a2 = (rng.normal(size=(n, n)).astype(dtype) for _ in range(2))
    pi = rng.permutation(n)
    want = ref_graph(a1, a2, pi)
    for perm in (pi, perm_matrix(pi), perm_matrix(pi).astype(bool), perm_matrix(pi).astype(np.int8)):
        v = graph_matching_loss(a1, a2, perm)
        assert isinstance(v, np.generic) and v.dtype == dtype
        close(v, want, dtype)
    v, (g1, g2) = graph_matching_loss(a1, a2, pi, return_grad=True)
    assert g1.shape == g2.shape == (n, n) and g1.dtype == g2.dtype == dtype
    p = perm_matrix(pi)
    r = f64(a1) - p @ f64(a2) @ p.T
    close(g1, 2 * r, dtype)
    close(g2, -2 * p.T @ r @ p, dtype)
    if dtype == np.float64:
        fd_close(g1, fd_grad(lambda x: ref_graph(x, a2, pi), a1))
        fd_close(g2, fd_grad(lambda x: ref_graph(a1, x, pi), a2))


def test_graph_matching_convention():
    a2 = np.arange(9.0).reshape(3, 3)
    pi = np.array([2, 0, 1])
    a1 = np.array([[a2[pi[i], pi[j]] for j in range(3)] for i in range(3)])
    assert graph_matching_loss(a1, a2, pi) == 0.0
    assert graph_matching_loss(a1, a2, perm_matrix(pi)) == 0.0
    assert graph_matching_loss(a1, a2, np.argsort(pi)) > 0.0


@pytest.mark.parametrize(
    "perm, match",
    [
        ([0, 0, 1], "not a permutation"),
        ([0, 1, 3], "not a permutation"),
        ([-1, 0, 1], "not a permutation"),
        ([0, 1], "length"),
        ([0.0, 1.0, 2.0], "integers"),
        (np.full((3, 3), 1 / 3), "0/1"),
        (np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]]), "permutation matrix"),
        (np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]]), "permutation matrix"),
        (np.array([[2, 0, 0], [0, 1, 0], [0, 0, 1]]), "0/1"),
        (np.eye(2), "shape"),
        (np.ones((3, 3, 3)), "permutation matrix or an index vector"),
        (3, "permutation matrix or an index vector"),
    ],
)
def test_graph_matching_bad_perm(perm, match):
    with pytest.raises(ValueError, match=match):
        graph_matching_loss(np.eye(3), np.eye(3), perm)


def test_graph_matching_bad_matrices():
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(2, 2\)"):
        graph_matching_loss(np.eye(3), np.eye(2), [0, 1, 2])
    with pytest.raises(ValueError, match="square"):
        graph_matching_loss(np.ones((2, 3)), np.ones((2, 3)), [0, 1])


# --------------------------------------------------------------------------------------------------
# flow_matching_loss


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(3,), (4, 3), (2, 3, 2)])
def test_flow_matching_loss(backend, dtype, reduction, shape):
    rng = rng_for("flow", shape, reduction)
    v, x0, x1 = (rng.normal(size=shape).astype(dtype) for _ in range(3))
    want = ref_flow(v, x0, x1, reduction)
    got = flow_matching_loss(v, x0, x1, reduction=reduction)
    close(got, want, dtype)
    assert np.asarray(got).dtype == dtype
    if reduction == "none":
        assert got.shape == (shape[0],)
    else:
        assert isinstance(got, np.generic)
    got2, g = flow_matching_loss(v, x0, x1, reduction=reduction, return_grad=True)
    close(got2, want, dtype)
    assert isinstance(g, np.ndarray) and g.shape == shape and g.dtype == dtype
    gwant = 2 * (f64(v) - (f64(x1) - f64(x0))) / (shape[0] if reduction == "mean" else 1)
    close(g, gwant, dtype)
    if dtype == np.float64:
        fd_close(g, fd_grad(lambda x: float(np.sum(ref_flow(x, x0, x1, reduction))), v))


def test_flow_matching_errors_and_empty():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        flow_matching_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="reduction"):
        flow_matching_loss(np.ones(2), np.ones(2), np.ones(2), reduction="batchmean")
    e = np.ones((0, 3))
    assert np.isnan(flow_matching_loss(e, e, e))
    assert flow_matching_loss(e, e, e, reduction="sum") == 0.0
    assert flow_matching_loss(e, e, e, reduction="none").shape == (0,)


# --------------------------------------------------------------------------------------------------
# prior_preservation_loss


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("w", [0.0, 1.0, 0.3])
def test_prior_preservation_loss(backend, dtype, w):
    rng = rng_for("prior", w)
    p, t = (rng.normal(size=(2, 3)).astype(dtype) for _ in range(2))
    pp, pt = (rng.normal(size=(4,)).astype(dtype) for _ in range(2))
    want = ref_prior(p, t, pp, pt, w)
    v = prior_preservation_loss(p, t, pp, pt, prior_weight=w)
    assert isinstance(v, np.generic) and v.dtype == dtype
    close(v, want, dtype)
    v2, (g1, g2) = prior_preservation_loss(p, t, pp, pt, prior_weight=w, return_grad=True)
    close(v2, want, dtype)
    assert g1.shape == p.shape and g2.shape == pp.shape and g1.dtype == g2.dtype == dtype
    close(g1, 2 * (f64(p) - f64(t)) / p.size, dtype)
    close(g2, w * 2 * (f64(pp) - f64(pt)) / pp.size, dtype)
    if dtype == np.float64:
        fd_close(g1, fd_grad(lambda x: ref_prior(x, t, pp, pt, w), p))
        fd_close(g2, fd_grad(lambda x: ref_prior(p, t, x, pt, w), pp))


def test_prior_preservation_errors():
    a, b = np.ones(3), np.ones(4)
    with pytest.raises(ValueError, match="prior_weight"):
        prior_preservation_loss(a, a, b, b, prior_weight=-0.1)
    with pytest.raises(ValueError, match="prior_weight"):
        prior_preservation_loss(a, a, b, b, prior_weight=float("nan"))
    with pytest.raises(TypeError, match="prior_weight"):
        prior_preservation_loss(a, a, b, b, prior_weight="1")
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        prior_preservation_loss(a, b, b, b)
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        prior_preservation_loss(a, a, b, a)


# --------------------------------------------------------------------------------------------------
# Conventions shared by all


def _all_calls(arrays):
    """Every function, called with return_grad where it has one, on the given float arrays."""
    a, b, c = arrays
    pi = np.array([2, 0, 1])
    return [
        gram_matrix(a),
        style_loss(a, b, return_grad=True),
        perceptual_loss(a, b, reduction="none", return_grad=True),
        temporal_consistency_loss(a, p=1, return_grad=True),
        temporal_consistency_loss(a, p=2, return_grad=True),
        graph_matching_loss(a[0], b[0], pi, return_grad=True),
        graph_matching_loss(a[0], b[0], perm_matrix(pi), return_grad=True),
        flow_matching_loss(a, b, c, return_grad=True),
        flow_matching_loss(a, b, c, reduction="none", return_grad=True),
        prior_preservation_loss(a, b, c, a, prior_weight=0.5, return_grad=True),
    ]


def _leaves(x):
    if isinstance(x, tuple):
        return [y for e in x for y in _leaves(e)]
    return [np.asarray(x)]


def test_inputs_never_modified_and_layouts(backend):
    rng = rng_for("inputs")
    arrays = [rng.normal(size=(3, 3, 3)) for _ in range(3)]
    copies = [x.copy() for x in arrays]
    for x in arrays:
        x.flags.writeable = False  # an in-place write would raise
    ref = _all_calls(arrays)
    for x, c in zip(arrays, copies):
        np.testing.assert_array_equal(x, c)
    # Fortran order and negative strides give the same results as contiguous copies
    odd = [np.asfortranarray(arrays[0]), arrays[1][::-1, :, ::-1].copy()[::-1, :, ::-1], arrays[2]]
    for want, got in zip(ref, _all_calls(odd)):
        for w, g in zip(_leaves(want), _leaves(got)):
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


def test_dtype_rules(backend):
    h = np.ones((3, 2, 2), np.float16)
    i = np.arange(12).reshape(3, 2, 2)
    assert gram_matrix(h).dtype == np.float32
    assert gram_matrix(i).dtype == np.float64
    assert style_loss(h, h).dtype == np.float32
    assert style_loss(i, i).dtype == np.float64
    assert temporal_consistency_loss(h).dtype == np.float32
    assert temporal_consistency_loss(i, p=2).dtype == np.float64
    assert graph_matching_loss(h[0], h[0], [0, 1]).dtype == np.float32
    assert flow_matching_loss(i, i, i).dtype == np.float64
    assert flow_matching_loss(h, h, h, reduction="none").dtype == np.float32
    assert prior_preservation_loss(h, h, i, i).dtype == np.float64
    assert prior_preservation_loss(h, h, h, h).dtype == np.float32
    assert style_loss(h.astype(np.float32), h.astype(np.float64)).dtype == np.float64
    with pytest.raises(TypeError):
        style_loss(h.astype(complex), h)


def test_bad_return_grad():
    with pytest.raises(TypeError, match="return_grad"):
        style_loss(np.ones((2, 2)), np.ones((2, 2)), return_grad=1)
    with pytest.raises(TypeError, match="normalize"):
        gram_matrix(np.ones((2, 2)), normalize="yes")
