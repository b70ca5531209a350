"""NumPy twins of the overlap (Dice / Jaccard / Tversky) kernels (csrc/fastloss/overlap.hpp), same
signatures as the primitives of fastloss._core: overlap_sums and overlap_grad.

``x`` is the prediction (B, C, S), float32 or float64; the target is either ``target`` dense (B, C, S) of
the same dtype or ``labels`` int64 (B, S) of class indices, whose one-hot g_c = [labels == c] is built by
comparison one block at a time, never whole. ``activation`` is 0 (none), 1 (sigmoid, elementwise) or 2
(softmax over the C axis, max-shifted). Everything is computed in float64, in blocks of whole batch rows or
of S-ranges of one batch row, each holding about ``_BUDGET`` values of (B, C, S). NaN propagates: a NaN
prediction makes I and P of its (b, c) NaN (every c of its position with softmax), as does a NaN dense
target for I and G. ``num_threads`` is accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

Arr = np.ndarray
_BUDGET = 1 << 18  # float64 values of (B, C, S) per block (2 MiB per temporary)
ACTIVATIONS = {0: "none", 1: "sigmoid", 2: "softmax"}


def _blocks(b: int, c: int, s: int) -> Iterator[tuple[int, int, int, int]]:
    """(b0, b1, s0, s1) blocks covering (B, S), each with about _BUDGET values of (B, C, S)."""
    if b == 0 or c == 0 or s == 0:
        return
    if c * s <= _BUDGET:
        nb = max(1, _BUDGET // (c * s))
        for b0 in range(0, b, nb):
            yield b0, min(b, b0 + nb), 0, s
    else:
        ns = max(1, _BUDGET // c)
        for b0 in range(b):
            for s0 in range(0, s, ns):
                yield b0, b0 + 1, s0, min(s, s0 + ns)


def _sigmoid_pair(x: Arr) -> tuple[Arr, Arr]:
    """(sigmoid(x), sigmoid(-x)) without overflow; both accurate far in the tails."""
    e = np.exp(-np.abs(x))
    r = 1.0 / (1.0 + e)
    pos = x >= 0.0
    return np.where(pos, r, e * r), np.where(pos, e * r, r)  # NaN: x >= 0 is False, e is NaN


def _activate(xc: Arr, activation: int) -> tuple[Arr, Arr | None]:
    """p = activation(xc) for a float64 block (nb, C, ns), and 1 - p for sigmoid (else None)."""
    if activation == 0:
        return xc, None
    if activation == 1:
        return _sigmoid_pair(xc)
    m = np.max(xc, axis=1, keepdims=True)  # NaN anywhere on the C axis makes the whole position NaN
    e = np.exp(xc - m)
    return e / np.sum(e, axis=1, keepdims=True), None


def _check_activation(activation: int) -> int:
    a = int(activation)
    if a not in ACTIVATIONS:
        raise ValueError(f"overlap: unknown activation {activation!r}; valid: 0 none, 1 sigmoid, 2 softmax")
    return a


def _first_bad(labels: Arr, c: int) -> int:
    """Flat index b*S + s of the first label outside [0, C), or -1."""
    flat = labels.reshape(-1)
    bad = (flat < 0) | (flat >= c)
    if flat.size == 0 or not bad.any():
        return -1
    return int(np.argmax(bad))


def _target_block(target: Arr | None, labels: Arr | None, c: int, blk: tuple[int, int, int, int]) -> Arr:
    """g for a block: the dense target as float64, or the one-hot of the labels by comparison."""
    b0, b1, s0, s1 = blk
    if target is not None:
        return target[b0:b1, :, s0:s1].astype(np.float64)
    lab = labels[b0:b1, s0:s1]
    return (lab[:, None, :] == np.arange(c, dtype=lab.dtype)[None, :, None]).astype(np.float64)


def overlap_sums(
    x: Arr, target: Arr | None, labels: Arr | None, activation: int, squared: bool, num_threads: int
) -> tuple[Arr, int]:
    """Per-(b, c) sums (I, P, G) over s: I = sum p g, P = sum p (p^2 if squared), G = sum g (g^2 if
    squared), p = activation(x), g = the dense target or [labels == c].

    Returns (sums float64 (B, C, 3), first_bad): first_bad is the flat index b*S + s of the first label
    outside [0, C) (the sums are then zeros) or -1; dense targets are not checked.
    """
    act = _check_activation(activation)
    if (target is None) == (labels is None):
        raise ValueError("overlap_sums: exactly one of target and labels must be given")
    b, c, s = x.shape
    sums = np.zeros((b, c, 3))
    if labels is not None:
        labels = np.asarray(labels)
        bad = _first_bad(labels, c)
        if bad >= 0:
            return sums, bad
    with np.errstate(all="ignore"):
        for blk in _blocks(b, c, s):
            b0, b1, s0, s1 = blk
            p, _ = _activate(x[b0:b1, :, s0:s1].astype(np.float64), act)
            g = _target_block(target, labels, c, blk)
            out = sums[b0:b1]
            out[:, :, 0] += np.sum(p * g, axis=2)
            out[:, :, 1] += np.sum(p * p if squared else p, axis=2)
            out[:, :, 2] += np.sum(g * g if (squared and target is not None) else g, axis=2)
    return sums, -1


def overlap_grad(
    x: Arr,
    target: Arr | None,
    labels: Arr | None,
    activation: int,
    squared: bool,
    coef_i: Arr,
    coef_p: Arr,
    num_threads: int,
    out: Arr | None = None,
) -> Arr:
    """dL/dx (B, C, S) of x's dtype for any L of the sums with dL/dI = coef_i, dL/dP = coef_p ((B, C)),
    into ``out`` when given (x's dtype and shape), else a new array.

    dL/dp = coef_i g + coef_p (2 p if squared else 1); then dL/dx = dL/dp (none), dL/dp p (1 - p)
    (sigmoid) or p (dL/dp - sum_k dL/dp_k p_k) (softmax over C). Labels are assumed valid.
    """
    act = _check_activation(activation)
    if (target is None) == (labels is None):
        raise ValueError("overlap_grad: exactly one of target and labels must be given")
    b, c, s = x.shape
    ci = np.asarray(coef_i, dtype=np.float64).reshape(b, c)
    cp = np.asarray(coef_p, dtype=np.float64).reshape(b, c)
    if labels is not None:
        labels = np.asarray(labels)
    if out is not None and (out.dtype != x.dtype or out.shape != x.shape):
        raise TypeError("overlap_grad: out must have x's dtype and shape")
    grad = np.empty(x.shape, dtype=x.dtype) if out is None else out
    with np.errstate(all="ignore"):
        for blk in _blocks(b, c, s):
            b0, b1, s0, s1 = blk
            p, q = _activate(x[b0:b1, :, s0:s1].astype(np.float64), act)
            g = _target_block(target, labels, c, blk)
            kp = cp[b0:b1, :, None]
            d = ci[b0:b1, :, None] * g + (2.0 * kp * p if squared else kp)
            if act == 1:
                d *= p * q
            elif act == 2:
                d = p * (d - np.sum(d * p, axis=1, keepdims=True))
            grad[b0:b1, :, s0:s1] = d
    return grad
