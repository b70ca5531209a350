"""The call path of the pairwise and metric-learning losses: validation, row normalisation and the
reductions they share. The heavy work (distance and similarity tiles, their fused losses) happens in
the backend primitives; what is here is O(N d)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastloss import _validate

NORM_EPS = 1e-12  # torch.nn.functional.normalize's default


def embeddings(func: str, named: dict[str, Any], ndim: int = 2) -> tuple[list[np.ndarray], np.dtype]:
    """The named arrays as C-contiguous arrays of one compute dtype, each of `ndim` dimensions and the
    same last (feature) dimension."""
    arrays = []
    for name, value in named.items():
        a = _validate.as_array(value, name)
        if a.ndim != ndim:
            want = "(N, d)" if ndim == 2 else "(S, U, d)"
            raise ValueError(f"{func}: {name} must be a {ndim}-D array {want}, got shape {a.shape}")
        arrays.append(a)
    names = list(named)
    for name, a in zip(names[1:], arrays[1:]):
        if a.shape[-1] != arrays[0].shape[-1]:
            raise ValueError(
                f"{func}: {names[0]} and {name} must have the same number of features, "
                f"got shapes {arrays[0].shape} and {a.shape}"
            )
    dtype = _validate.compute_dtype(*arrays)
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrays], dtype


def same_shape(func: str, names: tuple[str, ...], arrays: list[np.ndarray]) -> None:
    for name, a in zip(names[1:], arrays[1:]):
        if a.shape != arrays[0].shape:
            raise ValueError(
                f"{func}: {names[0]} and {name} must have the same shape, got {arrays[0].shape} and {a.shape}"
            )


def int_labels(func: str, labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """Integer labels of shape (n,) as int64."""
    y = _validate.as_array(labels, name)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{func}: {name} must hold integers, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{func}: {name} must have shape ({n},), one per row, got {y.shape}")
    if y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{func}: {name} hold values beyond the int64 range")
    return np.ascontiguousarray(y, dtype=np.int64)


def row_target(func: str, target: Any, n: int, kind: str) -> np.ndarray:
    """A per-row float64 target of shape (n,): kind "unit" (values in [0, 1]) or "pm1" (exactly -1 or +1)."""
    t = _validate.as_array(target, "target")
    if t.shape != (n,):
        raise ValueError(f"{func}: target must have shape ({n},), one per row, got {t.shape}")
    t = np.ascontiguousarray(t, dtype=np.float64)
    if kind == "unit":
        bad = (t < 0.0) | (t > 1.0)  # NaN passes and propagates
        what = "must lie in [0, 1] (1: similar, 0: dissimilar)"
    else:
        bad = ~((t == 1.0) | (t == -1.0))
        what = "must be exactly -1 or +1"
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{func}: target {what}; found target[{i}] = {float(t[i])!r}")
    return t


def grad_scale(code: int, count: int) -> float:
    """The factor that turns gradients of the sum into gradients of the reduction."""
    return 1.0 / count if code == 2 and count > 0 else 1.0


def reduce_rows(loss: np.ndarray, code: int, dtype: np.dtype, count: int | None = None, shape=None) -> Any:
    """Reduce float64 per-row losses: mean (over `count`, default the number of rows), sum or none."""
    if code == 0:
        return loss.astype(dtype, copy=False).reshape(shape if shape is not None else loss.shape)
    total = float(np.sum(loss))
    if code == 1:
        return _validate.scalar(total, dtype)
    count = loss.size if count is None else count
    return _validate.scalar(total / count if count else np.nan, dtype)


@_validate.ieee
def normalize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x over max(||x||, 1e-12) in x's dtype, and the float64 factors 1 / max(||x||, 1e-12)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    inv = 1.0 / np.maximum(norms, NORM_EPS)
    return (x * inv[:, None]).astype(x.dtype, copy=False), inv


@_validate.ieee
def normalize_backward(g: np.ndarray, xhat: np.ndarray, inv: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """d/dx from d/dxhat for xhat = x / max(||x||, eps): (g - xhat (xhat . g)) / ||x|| where the norm is
    above eps, g / eps below (where the map is linear)."""
    g = np.asarray(g, dtype=np.float64)
    xh = xhat.astype(np.float64)
    radial = np.einsum("ij,ij->i", xh, g)
    radial = np.where(inv < 1.0 / NORM_EPS, radial, 0.0)
    return ((g - xh * radial[:, None]) * inv[:, None]).astype(dtype)


def rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products in float64."""
    return np.einsum("ij,ij->i", a, b, dtype=np.float64)
