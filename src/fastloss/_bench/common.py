"""What every benchmark case shares: the Case record, the peers (PyTorch, scikit-learn's ``_loss``), the
synthetic data builders and the idiomatic NumPy building blocks of the references.

A case makes its inputs once and returns callables that take no arguments, so timing measures only the
computation. ``n`` maps to each case's shapes (see :mod:`fastloss._bench`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Fn = Callable[[], Any]
LN2 = math.log(2.0)


@dataclass
class Case:
    name: str
    arrays: tuple[np.ndarray, ...]
    fastloss: Fn
    numpy: Fn
    torch: Callable[[int], Fn] | None = None  # threads -> callable
    sklearn: Callable[[int], Fn] | None = None
    peers: dict[str, str] = field(default_factory=dict)  # what each peer computes, when it differs
    flops: float | None = None  # compute-bound cases: floating-point operations of one call

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _sk_loss():
    try:
        from sklearn._loss import loss as sk
    except ImportError:
        return None
    return sk


def _with_threads(torch, nt: int, fn: Fn) -> Fn:
    def run():
        torch.set_num_threads(nt)
        return fn()

    return run


def torch_factory(torch, fn: Fn) -> Callable[[int], Fn] | None:
    """The torch factory of a case (threads -> callable), None without PyTorch."""
    return None if torch is None else (lambda nt: _with_threads(torch, nt, fn))


def tensors(torch, *arrays: np.ndarray) -> tuple[Any, ...]:
    """The arrays as tensors sharing their memory (Nones without PyTorch, where no peer runs)."""
    return tuple(None if torch is None else torch.from_numpy(a) for a in arrays)


def leaf(t):
    """A fresh leaf tensor requiring grad on `t`'s memory: autograd peers start from one each call."""
    return t.detach().requires_grad_()


# --------------------------------------------------------------------------------------------------
# Data builders, shared by the cases of every family


def make_data(kind: str, n: int, dtype: np.dtype, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    if kind == "regression":
        return (rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype))
    if kind == "pm1":
        return (rng.standard_normal(n).astype(dtype), np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dtype))
    if kind == "probs":
        return (rng.uniform(0.01, 0.99, n).astype(dtype), (rng.random(n) < 0.5).astype(dtype))
    if kind == "logits":
        return ((2.0 * rng.standard_normal(n)).astype(dtype), (rng.random(n) < 0.5).astype(dtype))
    if kind == "ranking":
        return (
            rng.standard_normal(n).astype(dtype),
            rng.standard_normal(n).astype(dtype),
            np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dtype),
        )
    raise ValueError(kind)


def class_data(shape: tuple[int, ...], classes: int, dtype: np.dtype, seed: int = 0):
    """Standard-normal scores of `shape` (class axis 1) and integer labels of the other axes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    return x, rng.integers(0, classes, (shape[0], *shape[2:]))


def class_rows(n: int, classes: int, dtype: np.dtype, seed: int = 0):
    """(n // C, C) scores (at least one row) and their labels."""
    return class_data((max(1, n // classes), classes), classes, dtype, seed)


PAIR_D = 128  # the feature dimension of every embedding case


def pair_rows(n: int) -> int:
    """The N of the N x N cases: n is about the number of pairs, N = sqrt(n) rounded to a multiple of 64,
    at least 64 (1024 at n = 10^6, 3136 at 10^7)."""
    return max(64, 64 * round(math.sqrt(n) / 64))


def gaussian_rows(rows: int, count: int, dtype: np.dtype, seed: int = 0) -> list[np.ndarray]:
    """`count` independent standard-normal (rows, PAIR_D) embeddings."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((rows, PAIR_D)).astype(dtype) for _ in range(count)]


def row_labels(rows: int, classes: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, rows)


def seg_shape(n: int, classes: int) -> tuple[int, ...]:
    """(B, C, 256, 256) with B = n // (C 256^2) in [1, 64], or (1, C, n // C, 1) below one such image."""
    if n >= classes * 256 * 256:
        return (max(1, min(64, n // (classes * 256 * 256))), classes, 256, 256)
    return (1, classes, max(1, n // classes), 1)


def seg_data(shape: tuple[int, ...], dtype: np.dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities in [0, 1) and a dense 0/1 target with 30 % ones, both of `shape`."""
    rng = np.random.default_rng(seed)
    p = rng.random(shape, dtype=np.float32).astype(dtype, copy=False)
    g = (rng.random(shape, dtype=np.float32) < 0.3).astype(dtype)
    return p, g


# --------------------------------------------------------------------------------------------------
# Idiomatic NumPy building blocks of the references (written the way a user would, not fastloss's own
# NumPy backend)


def np_logsumexp(x: np.ndarray, axis: int = 1, keepdims: bool = False) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    return lse if keepdims else np.squeeze(lse, axis=axis)


def np_log_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    return x - np_logsumexp(x, axis, keepdims=True)


def np_cross_entropy(logits: np.ndarray, target: np.ndarray) -> Any:
    """Mean softmax cross-entropy of (N, C) logits against class indices."""
    return np.mean(np_logsumexp(logits) - logits[np.arange(logits.shape[0]), target])


def np_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_sigmoid(x: np.ndarray) -> np.ndarray:
    """The stable logistic function: exp of a non-positive number only."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _np_focal(x, t, alpha=0.25, gamma=2.0):
    p = 1.0 / (1.0 + np.exp(-x))
    ce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    p_t = p * t + (1 - p) * (1 - t)
    a_t = alpha * t + (1 - alpha) * (1 - t)
    return np.mean(a_t * ce * (1 - p_t) ** gamma)


PAIR_MARGIN = 16.0  # about the typical distance of two rows, so both branches of a hinge occur


def _np_sqdist(x, y):
    """The idiomatic NumPy squared distances: the BLAS expansion (what scikit-learn does too)."""
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T), 0.0)


def kmeans_shape(n: int) -> tuple[int, int]:
    """(points, centers) of the kmeans_inertia case."""
    rows = max(2, n // PAIR_D)
    return rows, min(256, max(1, rows // 4))


def np_dice(p, g, axes) -> Any:
    """MONAI's Dice loss of dense predictions and targets, the sums over `axes`."""
    inter = (p * g).sum(axis=axes)
    return np.mean(1.0 - (2.0 * inter + 1e-5) / (p.sum(axis=axes) + g.sum(axis=axes) + 1e-5))


def torch_dice(torch, p, g, dims) -> Any:
    inter = (p * g).sum(dim=dims)
    return torch.mean(1.0 - (2.0 * inter + 1e-5) / (p.sum(dim=dims) + g.sum(dim=dims) + 1e-5))


CLASSES = 100  # the class count of these class-wise cases (as the "cross_entropy" case)
COMPOSED = {"torch": "composed"}


class _Peers:
    """PyTorch (with its functional module) and sklearn._loss where importable, else None."""

    def __init__(self) -> None:
        self.torch = _torch()
        self.sk = _sk_loss()
        self.F = self.torch.nn.functional if self.torch is not None else None

    def t(self, *arrays: np.ndarray) -> tuple[Any, ...]:
        return tensors(self.torch, *arrays)

    def case(self, fn: Callable[[], Any]):
        return torch_factory(self.torch, fn)
