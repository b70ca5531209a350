"""The call path of the pairwise and metric-learning losses: validation, row normalisation and the
reductions they share. The heavy work (distance and similarity tiles, their fused losses) happens in
the backend primitives; what is here is O(N d)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastloss import _validate
from fastloss._specs import Reduction

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
    return 1.0 / count if code == Reduction.MEAN and count > 0 else 1.0


def reduce_rows(loss: np.ndarray, code: int, dtype: np.dtype, count: int | None = None, shape=None) -> Any:
    """Reduce float64 per-row losses: mean (over `count`, default the number of rows), sum or none."""
    if code == Reduction.NONE:
        return loss.astype(dtype, copy=False).reshape(shape if shape is not None else loss.shape)
    total = float(np.sum(loss))
    if code == Reduction.SUM:
        return _validate.scalar(total, dtype)
    count = loss.size if count is None else count
    return _validate.scalar(total / count if count else np.nan, dtype)


# Rows per float64 temporary of the gradient helpers: chunks of about this many bytes, so that a
# backward pass over huge embeddings adds two chunks, not copies of the whole (N, d) matrix.
_CHUNK_BYTES = 4 * 2**20


def _row_chunks(n: int, d: int):
    step = max(1, _CHUNK_BYTES // max(8 * d, 1))
    return ((lo, min(lo + step, n)) for lo in range(0, n, step))


class Gather:
    """The rows k[i] * src[idx[i]] (src[i] without idx) in float64, formed on demand for a slice of rows:
    a gradient term that is never materialised whole (normalize_backward's `plus`)."""

    def __init__(self, k: np.ndarray, src: np.ndarray, idx: np.ndarray | None = None):
        self.k, self.src, self.idx = k, src, idx

    def __getitem__(self, sl: slice) -> np.ndarray:
        rows = self.src[sl] if self.idx is None else self.src[self.idx[sl]]
        return self.k[sl, None] * rows


class Scatter:
    """The rows sum over {i : idx[i] = r} of k[i] * src[i] for r < nrows in float64, formed on demand for a
    slice of rows r (by chunks of the contributing i, in increasing i): the gradient term of a gather."""

    def __init__(self, k: np.ndarray, src: np.ndarray, idx: np.ndarray, nrows: int):
        self.k, self.src, self.idx = k, src, idx
        self.order = np.argsort(idx, kind="stable")
        self.bounds = np.searchsorted(idx[self.order], np.arange(nrows + 1))

    def __getitem__(self, sl: slice) -> np.ndarray:
        lo, hi = sl.start, sl.stop
        out = np.zeros((hi - lo, self.src.shape[1]))
        a, b = int(self.bounds[lo]), int(self.bounds[hi])
        for c0, c1 in _row_chunks(b - a, self.src.shape[1]):
            ii = self.order[a + c0 : a + c1]
            np.add.at(out, self.idx[ii] - lo, self.k[ii, None] * self.src[ii])
        return out


@_validate.ieee
def normalize(x: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x over max(||x||, 1e-12) in x's dtype (into `out` if given), and the float64 factors
    1 / max(||x||, 1e-12). The product is formed in float64 and rounded once, without an (N, d) float64
    temporary."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    inv = 1.0 / np.maximum(norms, NORM_EPS)
    if out is None and x.dtype == np.float64:  # no rounding to do: the plain product
        return x * inv[:, None], inv
    out = np.empty_like(x) if out is None else out
    np.multiply(x, inv[:, None], out=out, dtype=np.float64, casting="unsafe")
    return out, inv


@_validate.ieee
def normalize_backward(
    g: np.ndarray,
    xhat: np.ndarray,
    inv: np.ndarray,
    dtype: np.dtype,
    plus: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """d/dx from d/dxhat = g (+ plus) for xhat = x / max(||x||, eps): (g - xhat (xhat . g)) / ||x|| where
    the norm is above eps, g / eps below (where the map is linear). In float64, by chunks of rows, into
    `out` (which may be g itself) or a new array of `dtype`."""
    n, d = g.shape
    out = np.empty(g.shape, dtype) if out is None else out
    for lo, hi in _row_chunks(n, d):
        gc = g[lo:hi].astype(np.float64)
        if plus is not None:
            gc += plus[lo:hi]
        xh = xhat[lo:hi].astype(np.float64)
        radial = np.einsum("ij,ij->i", xh, gc)
        radial = np.where(inv[lo:hi] < 1.0 / NORM_EPS, radial, 0.0)
        xh *= radial[:, None]
        gc -= xh
        gc *= inv[lo:hi, None]
        out[lo:hi] = gc
    return out


def rowdot(a: np.ndarray, b: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Row-wise dot products a_i . b_i (a_i . b_{idx_i} with idx, gathering chunk by chunk) in float64."""
    if idx is None:
        return np.einsum("ij,ij->i", a, b, dtype=np.float64)
    out = np.empty(a.shape[0])
    for lo, hi in _row_chunks(*a.shape):
        out[lo:hi] = np.einsum("ij,ij->i", a[lo:hi], b[idx[lo:hi]], dtype=np.float64)
    return out
