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
    if name in PAIRWISE:
        return _pairwise_case(name, n, dtype, torch, tcase)
    if name in ("dice", "dice_3d"):
        return _dice_case(name, n, dtype, torch, tcase)
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


# Pairwise cases: N = min(4096, n // 128) rows of d = 128 (N = 4096 at the default n = 10^7); k-means has
# N // 16 centers, triplet (memory-bound, one row of each input per loss) n // 128 rows.
PAIRWISE = (
    "pairwise_dist",
    "pairwise_contrastive",
    "batch_hard_triplet",
    "kmeans_inertia",
    "info_nce",
    "triplet_margin",
)
PAIR_D = 128


def _np_sqdist(x, y):
    """The idiomatic NumPy squared distances: the BLAS expansion (what scikit-learn does too)."""
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T), 0.0)


def _pairwise_case(name, n, dtype, torch, tcase) -> Case:
    rng = np.random.default_rng(0)
    d = PAIR_D
    if name == "triplet_margin":
        rows = max(1, n // d)
        a, p, q = (rng.standard_normal((rows, d)).astype(dtype) for _ in range(3))

        def np_trip():
            dp = np.linalg.norm(a - p + 1e-6, axis=1)
            dn = np.linalg.norm(a - q + 1e-6, axis=1)
            return np.mean(np.maximum(dp - dn + 1.0, 0.0))

        tfn = None
        if torch is not None:
            ta, tp, tq = (torch.from_numpy(v) for v in (a, p, q))
            tfn = tcase(lambda: torch.nn.functional.triplet_margin_loss(ta, tp, tq))
        return Case(name, (a, p, q), lambda: fastloss.triplet_margin_loss(a, p, q), np_trip, tfn)
    N = max(2, min(4096, n // d))
    x = rng.standard_normal((N, d)).astype(dtype)
    labels = rng.integers(0, max(2, N // 32), N)
    tx = torch.from_numpy(x) if torch is not None else None
    tl = torch.from_numpy(labels) if torch is not None else None
    margin = 16.0  # about the typical distance of these rows, so both branches of the hinge occur
    if name == "pairwise_dist":

        def t_dist():
            return torch.cdist(tx, tx)

        return Case(
            name,
            (x,),
            lambda: fastloss.pairwise_distances(x),
            lambda: np.sqrt(_np_sqdist(x, x)),
            tcase(t_dist) if torch is not None else None,
            flops=2.0 * N * N * d,
        )
    if name == "pairwise_contrastive":

        def np_pc():
            dist = np.sqrt(_np_sqdist(x, x))
            same = labels[:, None] == labels[None, :]
            loss = np.where(same, 0.5 * dist**2, 0.5 * np.maximum(margin - dist, 0.0) ** 2)
            return np.triu(loss, 1).sum() / (N * (N - 1) / 2)

        def t_pc():
            dist = torch.cdist(tx, tx)
            same = tl[:, None] == tl[None, :]
            loss = torch.where(same, 0.5 * dist**2, 0.5 * torch.clamp(margin - dist, min=0.0) ** 2)
            return torch.triu(loss, 1).sum() / (N * (N - 1) / 2)

        return Case(
            name,
            (x,),
            lambda: fastloss.pairwise_contrastive_loss(x, labels, margin=margin),
            np_pc,
            tcase(t_pc) if torch is not None else None,
            peers={"torch": "cdist + composed"},
            flops=1.0 * N * (N - 1) * d,
        )
    if name == "batch_hard_triplet":
        eye = np.eye(N, dtype=bool)

        def np_bh():
            dist = np.sqrt(_np_sqdist(x, x))
            same = labels[:, None] == labels[None, :]
            dp = np.where(same & ~eye, dist, -np.inf).max(1)
            dn = np.where(~same, dist, np.inf).min(1)
            return np.mean(np.maximum(dp - dn + 1.0, 0.0))

        def t_bh():
            dist = torch.cdist(tx, tx)
            same = tl[:, None] == tl[None, :]
            teye = torch.eye(N, dtype=torch.bool)
            dp = torch.where(same & ~teye, dist, -torch.inf).amax(1)
            dn = torch.where(~same, dist, torch.inf).amin(1)
            return torch.clamp(dp - dn + 1.0, min=0.0).mean()

        return Case(
            name,
            (x,),
            lambda: fastloss.batch_hard_triplet_loss(x, labels),
            np_bh,
            tcase(t_bh) if torch is not None else None,
            peers={"torch": "cdist + composed"},
            flops=2.0 * N * N * d,
        )
    if name == "kmeans_inertia":
        centers = x[::16].copy()
        k = centers.shape[0]

        def np_km():
            d2 = _np_sqdist(x, centers)
            return d2.min(1).sum(), d2.argmin(1)

        def t_km():
            d2 = torch.cdist(tx, tc) ** 2
            v, i = d2.min(1)
            return v.sum(), i

        tc = torch.from_numpy(centers) if torch is not None else None
        return Case(
            name,
            (x, centers),
            lambda: fastloss.kmeans_inertia(x, centers),
            np_km,
            tcase(t_km) if torch is not None else None,
            peers={"torch": "cdist + min"},
            flops=2.0 * N * k * d,
        )
    # info_nce: N queries against N positives
    p = rng.standard_normal((N, d)).astype(dtype)

    def np_nce():
        qh = x / np.linalg.norm(x, axis=1, keepdims=True)
        ph = p / np.linalg.norm(p, axis=1, keepdims=True)
        logits = qh @ ph.T / 0.1
        m = logits.max(1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(1))
        return np.mean(lse - np.diagonal(logits))

    def t_nce():
        F = torch.nn.functional
        logits = F.normalize(tx, dim=1) @ F.normalize(tp, dim=1).T / 0.1
        return F.cross_entropy(logits, torch.arange(N))

    tp = torch.from_numpy(p) if torch is not None else None
    return Case(
        name,
        (x, p),
        lambda: fastloss.info_nce(x, p),
        np_nce,
        tcase(t_nce) if torch is not None else None,
        peers={"torch": "normalize + matmul + cross_entropy"},
        flops=2.0 * N * N * d,
    )


def _dice_case(name, n, dtype, torch, tcase) -> Case:
    """dice: (64, 1, 256, 256), fewer rows of 256 x 256 below n = 64 * 256 * 256; dice_3d: (8, 4, 128,
    128, 128) (named only: 0.5 GB of inputs, NumPy needs seconds)."""
    rng = np.random.default_rng(0)
    if name == "dice_3d":
        shape = (8, 4, 128, 128, 128)
    else:
        shape = (max(1, min(64, n // (256 * 256))), 1, 256, 256) if n >= 256 * 256 else (1, 1, n, 1)
    p = rng.random(shape, dtype=np.float32).astype(dtype, copy=False)
    g = (rng.random(shape, dtype=np.float32) < 0.3).astype(dtype)
    axes = tuple(range(2, len(shape)))

    def np_dice():
        inter = (p * g).sum(axis=axes)
        return np.mean(1.0 - (2.0 * inter + 1e-5) / (p.sum(axis=axes) + g.sum(axis=axes) + 1e-5))

    tfn = None
    if torch is not None:
        tp, tg = torch.from_numpy(p), torch.from_numpy(g)

        def t_dice():
            inter = (tp * tg).sum(dim=axes)
            return torch.mean(1.0 - (2.0 * inter + 1e-5) / (tp.sum(dim=axes) + tg.sum(dim=axes) + 1e-5))

        tfn = tcase(t_dice)
    return Case(name, (p, g), lambda: fastloss.dice_loss(p, g), np_dice, tfn, peers={"torch": "composed"})


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
    *PAIRWISE,
    "dice",
)
# Cases run only when named (large inputs).
EXTRA = ("dice_3d",)
# The memory-bound losses whose speed is judged against the read bandwidth.
MEMORY_BOUND = ("mse", "mae", "huber", "smooth_l1", "pinball", "hinge", "margin_ranking")
