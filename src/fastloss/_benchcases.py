"""Benchmark cases: each loss on synthetic data, with the idiomatic NumPy expression and the peers.

Shared by ``fastloss bench`` and the pytest-benchmark suite in ``bench/``. A case makes its inputs once
and returns callables that take no arguments, so timing measures only the computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import fastloss

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


def _np_focal(x, t, alpha=0.25, gamma=2.0):
    p = 1.0 / (1.0 + np.exp(-x))
    ce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    p_t = p * t + (1 - p) * (1 - t)
    a_t = alpha * t + (1 - alpha) * (1 - t)
    return np.mean(a_t * ce * (1 - p_t) ** gamma)


def build(name: str, n: int, dtype: Any) -> Case:
    """The benchmark case `name` on n elements of `dtype`."""
    dtype = np.dtype(dtype)
    torch, sk = _torch(), _sk_loss()
    F = torch.nn.functional if torch is not None else None

    def tt(*arrs):
        return tuple(torch.from_numpy(a) for a in arrs)

    def tcase(fn):
        return None if torch is None else (lambda nt: _with_threads(torch, nt, fn))

    def skcase(make):
        if sk is None:
            return None
        return make

    if name in ("mse", "mae", "huber", "smooth_l1", "log_cosh", "pseudo_huber", "pinball"):
        p, t = make_data("regression", n, dtype)
        tp, tq = tt(p, t) if torch is not None else (None, None)
        if name == "mse":
            return Case(
                name,
                (p, t),
                lambda: fastloss.mse(p, t),
                lambda: np.mean((p - t) ** 2),
                tcase(lambda: F.mse_loss(tp, tq)),
                skcase(lambda nt: lambda: sk.HalfSquaredError().loss(t, p, n_threads=nt).mean()),
                {"sklearn": "HalfSquaredError"},
            )
        if name == "mae":
            return Case(
                name,
                (p, t),
                lambda: fastloss.mae(p, t),
                lambda: np.mean(np.abs(p - t)),
                tcase(lambda: F.l1_loss(tp, tq)),
                skcase(lambda nt: lambda: sk.AbsoluteError().loss(t, p, n_threads=nt).mean()),
            )
        if name == "huber":

            def np_huber():
                d = p - t
                ad = np.abs(d)
                return np.mean(np.where(ad < 1.0, 0.5 * d**2, ad - 0.5))

            return Case(
                name,
                (p, t),
                lambda: fastloss.huber(p, t),
                np_huber,
                tcase(lambda: F.huber_loss(tp, tq)),
                skcase(lambda nt: lambda: sk.HuberLoss(delta=1.0).loss(t, p, n_threads=nt).mean()),
            )
        if name == "smooth_l1":

            def np_sl1():
                d = p - t
                ad = np.abs(d)
                return np.mean(np.where(ad < 0.5, 0.5 * d**2 / 0.5, ad - 0.25))

            return Case(
                name,
                (p, t),
                lambda: fastloss.smooth_l1(p, t, beta=0.5),
                np_sl1,
                tcase(lambda: F.smooth_l1_loss(tp, tq, beta=0.5)),
            )
        if name == "log_cosh":

            def np_lc():
                ad = np.abs(p - t)
                return np.mean(ad + np.log1p(np.exp(-2.0 * ad)) - LN2)

            def t_lc():
                d = tp - tq
                return (d + F.softplus(-2.0 * d) - LN2).mean()

            return Case(
                name, (p, t), lambda: fastloss.log_cosh(p, t), np_lc, tcase(t_lc), peers={"torch": "composed"}
            )
        if name == "pseudo_huber":

            def np_ph():
                d = p - t
                return np.mean(np.sqrt(1.0 + d * d) - 1.0)

            def t_ph():
                d = tp - tq
                return (torch.sqrt(1.0 + d * d) - 1.0).mean()

            return Case(
                name,
                (p, t),
                lambda: fastloss.pseudo_huber(p, t),
                np_ph,
                tcase(t_ph),
                peers={"torch": "composed"},
            )

        def np_pin():
            d = t - p
            return np.mean(np.maximum(0.9 * d, -0.1 * d))

        def t_pin():
            d = tq - tp
            return torch.maximum(0.9 * d, -0.1 * d).mean()

        return Case(
            name,
            (p, t),
            lambda: fastloss.pinball(p, t, quantile=0.9),
            np_pin,
            tcase(t_pin),
            skcase(lambda nt: lambda: sk.PinballLoss(quantile=0.9).loss(t, p, n_threads=nt).mean()),
            {"torch": "composed"},
        )
    if name == "hinge":
        s, y = make_data("pm1", n, dtype)
        ts_, ty = tt(s, y) if torch is not None else (None, None)
        return Case(
            name,
            (s, y),
            lambda: fastloss.hinge(s, y),
            lambda: np.mean(np.maximum(0.0, 1.0 - y * s)),
            tcase(lambda: torch.clamp(1.0 - ty * ts_, min=0.0).mean()),
            peers={"torch": "composed"},
        )
    if name == "binary_cross_entropy":
        p, t = make_data("probs", n, dtype)
        tp, tq = tt(p, t) if torch is not None else (None, None)
        return Case(
            name,
            (p, t),
            lambda: fastloss.binary_cross_entropy(p, t),
            lambda: -np.mean(t * np.maximum(np.log(p), -100.0) + (1 - t) * np.maximum(np.log1p(-p), -100.0)),
            tcase(lambda: F.binary_cross_entropy(tp, tq)),
        )
    if name in ("bce_with_logits", "sigmoid_focal"):
        x, t = make_data("logits", n, dtype)
        tx, tq = tt(x, t) if torch is not None else (None, None)
        if name == "bce_with_logits":
            return Case(
                name,
                (x, t),
                lambda: fastloss.binary_cross_entropy_with_logits(x, t),
                lambda: np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))),
                tcase(lambda: F.binary_cross_entropy_with_logits(tx, tq)),
                skcase(lambda nt: lambda: sk.HalfBinomialLoss().loss(t, x, n_threads=nt).mean()),
            )

        def t_focal():
            p = torch.sigmoid(tx)
            ce = F.binary_cross_entropy_with_logits(tx, tq, reduction="none")
            p_t = p * tq + (1 - p) * (1 - tq)
            a_t = 0.25 * tq + 0.75 * (1 - tq)
            return (a_t * ce * (1 - p_t) ** 2).mean()

        return Case(
            name,
            (x, t),
            lambda: fastloss.sigmoid_focal_loss(x, t),
            lambda: _np_focal(x, t),
            tcase(t_focal),
            peers={"torch": "torchvision formula"},
        )
    if name == "margin_ranking":
        a, b, y = make_data("ranking", n, dtype)
        ta, tb, ty = tt(a, b, y) if torch is not None else (None, None, None)
        return Case(
            name,
            (a, b, y),
            lambda: fastloss.margin_ranking_loss(a, b, y, margin=0.1),
            lambda: np.mean(np.maximum(0.0, -y * (a - b) + 0.1)),
            tcase(lambda: F.margin_ranking_loss(ta, tb, ty, margin=0.1)),
        )
    if name.startswith("cross_entropy"):
        return _cross_entropy_case(name, n, dtype, torch, sk, tcase)
    raise ValueError(f"unknown benchmark case {name!r}; known: {', '.join(NAMES)}")


# Class-wise cases: n is the number of scores; the shape is (n // C, C), or a segmentation map.
CLASSWISE = {"cross_entropy_c10": 10, "cross_entropy": 100, "cross_entropy_c1000": 1000}


def _cross_entropy_case(name, n, dtype, torch, sk, tcase) -> Case:
    rng = np.random.default_rng(0)
    if name == "cross_entropy_seg":  # (8, 21, 256, 256) at n = 8 * 21 * 256 * 256 = 11,010,048
        side = max(1, int(round((n / (8 * 21)) ** 0.5)))
        shape, C = (8, 21, side, side), 21
        tshape = (8, side, side)
    else:
        C = CLASSWISE[name]
        shape, tshape = (max(1, n // C), C), (max(1, n // C),)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.integers(0, C, tshape)

    def np_ce():
        m = x.max(axis=1, keepdims=True)
        logp = x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))
        return -np.mean(np.take_along_axis(logp, np.expand_dims(y, 1), axis=1))

    tfn = None
    if torch is not None:
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        tfn = tcase(lambda: torch.nn.functional.cross_entropy(tx, ty))
    skfn = None
    if sk is not None and len(shape) == 2:
        yf = y.astype(dtype)

        def skfn(nt):
            return lambda: sk.HalfMultinomialLoss(n_classes=C).loss(yf, x, n_threads=nt).mean()

    return Case(name, (x, y), lambda: fastloss.cross_entropy(x, y), np_ce, tfn, skfn)


NAMES = (
    "mse",
    "mae",
    "huber",
    "smooth_l1",
    "pinball",
    "hinge",
    "log_cosh",
    "pseudo_huber",
    "binary_cross_entropy",
    "bce_with_logits",
    "sigmoid_focal",
    "margin_ranking",
    "cross_entropy_c10",
    "cross_entropy",
    "cross_entropy_c1000",
    "cross_entropy_seg",
)
# The memory-bound losses whose speed is judged against the read bandwidth.
MEMORY_BOUND = ("mse", "mae", "huber", "smooth_l1", "pinball", "hinge", "margin_ranking")
