"""The bodies of the toolbox losses (:mod:`fastloss.toolbox`): compositions of the elementwise kernels
(:func:`fastloss.mse`, :func:`fastloss.mae`) and, for the Gram matrix, NumPy's BLAS product."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fastloss import _validate
from fastloss._specs import SPECS, Reduction, ReductionName
from fastloss.regression import mae, mse


def _arrays(names: tuple[str, ...], values: tuple) -> tuple[tuple[np.ndarray, ...], np.dtype]:
    """Validated arrays of one shape, converted to their common compute dtype."""
    arrays = tuple(_validate.as_array(v, k) for k, v in zip(names, values))
    if len(arrays) > 1:
        _validate.same_shape(names, arrays)
    dtype = _validate.compute_dtype(*arrays)
    return tuple(np.asarray(a, dtype=dtype) for a in arrays), dtype


def _stack(features: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """Features as a C-contiguous (B, C, N) stack and the Gram normaliser C*N (per batch item)."""
    if features.ndim not in (2, 3, 4):
        raise ValueError(
            f"{name} must have shape (C, N), (C, H, W) or (B, C, H, W); got {features.ndim}-D "
            f"shape {features.shape}"
        )
    b, c = features.shape[:2] if features.ndim == 4 else (1, features.shape[0])
    spatial = features.shape[2:] if features.ndim == 4 else features.shape[1:]
    n = int(np.prod(spatial, dtype=np.int64))
    return np.ascontiguousarray(features).reshape(b, c, n), float(c * n)


@_validate.ieee
def _gram(f: np.ndarray, k: float, normalize: bool) -> np.ndarray:
    g = np.matmul(f, f.transpose(0, 2, 1))
    if normalize:
        g /= g.dtype.type(k)
    return g


def gram_matrix(features: ArrayLike, *, normalize: bool = True) -> np.ndarray:
    """The body of :func:`fastloss.gram_matrix`."""
    normalize = SPECS["gram_matrix"].check("normalize", normalize)
    (f,), _ = _arrays(("features",), (features,))
    stack, k = _stack(f, "features")
    g = _gram(stack, k, normalize)
    return g if f.ndim == 4 else g[0]


@_validate.ieee
def style_loss(features_a: ArrayLike, features_b: ArrayLike, *, return_grad: bool = False) -> Any:
    """The body of :func:`fastloss.style_loss`."""
    return_grad = SPECS["style_loss"].check("return_grad", return_grad)
    (fa, fb), dtype = _arrays(("features_a", "features_b"), (features_a, features_b))
    sa, k = _stack(fa, "features_a")
    sb, _ = _stack(fb, "features_b")
    ga, gb = _gram(sa, k, True), _gram(sb, k, True)
    # The Gram matrices are small (B C^2 entries), so their MSE runs here on one thread, in float64: a
    # parallel kernel right after the BLAS products would wait for cores that OpenBLAS's threads still
    # spin on (measured: 8 ms instead of 1.8 ms for (4, 64, 62, 62) float32 maps on 2 cores).
    diff = ga.astype(np.float64) - gb
    value = dtype.type(np.mean(diff * diff)) if diff.size else dtype.type(np.nan)
    if not return_grad:
        return value
    dg = (diff * (2.0 / diff.size)).astype(dtype) if diff.size else np.zeros_like(ga)
    sym = dg + dg.transpose(0, 2, 1)
    scale = dtype.type(1.0 / k) if k else dtype.type(np.nan)
    grad_a = (np.matmul(sym, sa) * scale).reshape(fa.shape)
    grad_b = (np.matmul(sym, sb) * -scale).reshape(fb.shape)
    return value, (grad_a, grad_b)


def perceptual_loss(
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.perceptual_loss`."""
    return_grad = SPECS["perceptual_loss"].check("return_grad", return_grad)
    features_a = _validate.as_array(features_a, "features_a")  # errors name these, not mse's pred/target
    features_b = _validate.as_array(features_b, "features_b")
    if not return_grad:
        return mse(features_a, features_b, reduction=reduction)
    value, g = mse(features_a, features_b, reduction=reduction, return_grad=True)
    return value, (g, -g)


def temporal_consistency_loss(frames: ArrayLike, *, p: int = 1, return_grad: bool = False) -> Any:
    """The body of :func:`fastloss.temporal_consistency_loss`."""
    return_grad = SPECS["temporal_consistency_loss"].check("return_grad", return_grad)
    p = SPECS["temporal_consistency_loss"].check("p", p)
    (y,), dtype = _arrays(("frames",), (frames,))
    if y.ndim < 1 or y.shape[0] < 2:
        raise ValueError(f"frames must have shape (T, ...) with T >= 2 frames, got shape {y.shape}")
    kernel = mae if p == 1 else mse
    if not return_grad:
        return kernel(y[1:], y[:-1])
    value, g = kernel(y[1:], y[:-1], return_grad=True)
    grad = np.zeros(y.shape, dtype=dtype)
    grad[1:] += g
    grad[:-1] -= g
    return value, grad


def _permutation(perm: ArrayLike, n: int) -> np.ndarray:
    """The index vector pi of a permutation given as pi itself or as a permutation matrix P."""
    q = _validate.as_array(perm, "perm")
    if q.ndim == 1:
        if q.dtype.kind not in "iu":
            raise ValueError(f"perm as an index vector must hold integers, got dtype {q.dtype}")
        if q.shape != (n,):
            raise ValueError(f"perm as an index vector must have length n = {n}, got shape {q.shape}")
        pi = q.astype(np.int64)
        if not np.array_equal(np.sort(pi), np.arange(n)):
            raise ValueError(f"perm is not a permutation of 0..{n - 1}: {q.tolist()}")
        return pi
    if q.ndim == 2:
        if q.dtype.kind not in "biuf":
            raise ValueError(f"perm as a matrix must be numeric 0/1, got dtype {q.dtype}")
        if q.shape != (n, n):
            raise ValueError(f"perm as a matrix must have shape ({n}, {n}), got {q.shape}")
        zero_one = (q == 0) | (q == 1)
        if not np.all(zero_one):
            i, j = np.argwhere(~zero_one)[0]
            raise ValueError(f"perm is not a 0/1 matrix: perm[{i}, {j}] = {q[i, j]!r}")
        qi = q.astype(np.int64)
        if not (np.all(qi.sum(axis=1) == 1) and np.all(qi.sum(axis=0) == 1)):
            raise ValueError("perm is not a permutation matrix: every row and column needs exactly one 1")
        return np.argmax(qi, axis=1) if n else np.zeros(0, np.int64)
    raise ValueError(
        f"perm must be an (n, n) permutation matrix or an index vector of length n, got shape {q.shape}"
    )


def graph_matching_loss(a1: ArrayLike, a2: ArrayLike, perm: ArrayLike, *, return_grad: bool = False) -> Any:
    """The body of :func:`fastloss.graph_matching_loss`."""
    return_grad = SPECS["graph_matching_loss"].check("return_grad", return_grad)
    (m1, m2), _ = _arrays(("a1", "a2"), (a1, a2))
    if m1.ndim != 2 or m1.shape[0] != m1.shape[1]:
        raise ValueError(f"a1 and a2 must be square (n, n) matrices, got shape {m1.shape}")
    pi = _permutation(perm, m1.shape[0])
    permuted = m2[np.ix_(pi, pi)]
    if not return_grad:
        return mse(m1, permuted, reduction="sum")
    value, g1 = mse(m1, permuted, reduction="sum", return_grad=True)
    inv = np.argsort(pi)
    return value, (g1, -g1[np.ix_(inv, inv)])


@_validate.ieee
def flow_matching_loss(
    v_pred: ArrayLike,
    x0: ArrayLike,
    x1: ArrayLike,
    *,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.flow_matching_loss`."""
    code = SPECS["flow_matching_loss"].check("reduction", reduction)
    return_grad = SPECS["flow_matching_loss"].check("return_grad", return_grad)
    (v, a, b), dtype = _arrays(("v_pred", "x0", "x1"), (v_pred, x0, x1))
    if v.ndim < 1:
        raise ValueError(f"v_pred, x0 and x1 must have a sample axis (B, ...), got shape {v.shape}")
    n = v.shape[0]
    target = b - a
    if code == Reduction.NONE:
        res = mse(v, target, reduction="none", return_grad=return_grad)
        per_elem = res[0] if return_grad else res
        per_sample = per_elem.reshape(n, -1 if n else 0).sum(axis=1, dtype=np.float64).astype(dtype)
        return (per_sample, res[1]) if return_grad else per_sample
    res = mse(v, target, reduction="sum", return_grad=return_grad)
    if code == Reduction.SUM:
        return res
    value, g = res if return_grad else (res, None)
    value = _validate.scalar(float(value) / n if n else np.nan, dtype)
    if g is not None and n:
        g *= dtype.type(1.0 / n)
    return (value, g) if return_grad else value


def prior_preservation_loss(
    pred: ArrayLike,
    target: ArrayLike,
    prior_pred: ArrayLike,
    prior_target: ArrayLike,
    *,
    prior_weight: float = 1.0,
    return_grad: bool = False,
) -> Any:
    """The body of :func:`fastloss.prior_preservation_loss`."""
    w = SPECS["prior_preservation_loss"].check("prior_weight", prior_weight)
    return_grad = SPECS["prior_preservation_loss"].check("return_grad", return_grad)
    r1 = mse(pred, target, return_grad=return_grad)
    prior_pred = _validate.as_array(prior_pred, "prior_pred")  # errors name these, not mse's pred/target
    prior_target = _validate.as_array(prior_target, "prior_target")
    r2 = mse(prior_pred, prior_target, return_grad=return_grad)
    (v1, g1), (v2, g2) = (r1, r2) if return_grad else ((r1, None), (r2, None))
    dtype = np.result_type(np.asarray(v1).dtype, np.asarray(v2).dtype)
    value = _validate.scalar(float(v1) + w * float(v2), dtype)
    if not return_grad:
        return value
    with np.errstate(over="ignore", invalid="ignore"):  # inf * 0 is nan, overflow inf, as IEEE says
        g2 *= g2.dtype.type(w)
    return value, (g1, g2)
