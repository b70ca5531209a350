"""Benchmark cases: each loss on synthetic data, with the idiomatic NumPy expression and the peers.

Shared by ``fastloss bench`` and the pytest-benchmark suite in ``bench/``. A case makes its inputs once
and returns callables that take no arguments, so timing measures only the computation.

``build(name, n, dtype)`` maps the size ``n`` to the case's shapes, every one sensible (clamped) from
n = 1000 to 10^7:

- elementwise losses, activations, penalties and most of the toolbox: about n elements per input;
- class-wise losses: (n // C, C) scores (a segmentation map for ``cross_entropy_seg``);
- N x N cases (a tile over every pair: pairwise distances, the pairwise contrastive and batch-hard
  losses, InfoNCE, NT-Xent, MNRL, ArcFace, GE2E): n is about the number of pairs, N = sqrt(n) rounded to
  a multiple of 64 (at least 64) rows of d = 128 (N = 1024 at n = 10^6, 3136 at 10^7); see
  :func:`pair_rows`;
- ``kmeans_inertia``: n // d points (at least 2) against min(256, points // 4) centers taken from them;
- paired-row losses (triplet margin, contrastive, cosine embedding): n // d rows of each input.

The cases of the first loss families are built here; the others in :mod:`fastloss._benchcases_more`.
``NAMES`` is the default list, ``EXTRA`` holds cases run only when named, and ``COVERS`` maps every case
to the public fastloss functions it exercises.
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
# Data builders, shared by the cases of both modules


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


def build(name: str, n: int, dtype: Any) -> Case:
    """The benchmark case `name` on n elements of `dtype`."""
    dtype = np.dtype(dtype)
    torch, sk = _torch(), _sk_loss()
    F = torch.nn.functional if torch is not None else None

    def tt(*arrs):
        return tensors(torch, *arrs)

    def tcase(fn):
        return torch_factory(torch, fn)

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
    if name in CLASSWISE or name == "cross_entropy_seg":
        return _cross_entropy_case(name, n, dtype, torch, sk, tcase)
    if name in PAIRWISE:
        return _pairwise_case(name, n, dtype, torch, tcase)
    if name in ("dice", "dice_3d"):
        return _dice_case(name, n, dtype, torch, tcase)
    if name in _benchcases_more.BUILDERS:
        return _benchcases_more.BUILDERS[name](name, n, dtype)
    raise ValueError(f"unknown benchmark case {name!r}; known: {', '.join(NAMES + EXTRA)}")


# --------------------------------------------------------------------------------------------------
# Class-wise cases: n is the number of scores; the shape is (n // C, C), or a segmentation map.
CLASSWISE = {"cross_entropy_c10": 10, "cross_entropy": 100, "cross_entropy_c1000": 1000}


def _cross_entropy_case(name, n, dtype, torch, sk, tcase) -> Case:
    if name == "cross_entropy_seg":  # (8, 21, 256, 256) at n = 8 * 21 * 256 * 256 = 11,010,048
        side = max(1, int(round((n / (8 * 21)) ** 0.5)))
        C = 21
        x, y = class_data((8, C, side, side), C, dtype)
    else:
        C = CLASSWISE[name]
        x, y = class_rows(n, C, dtype)

    def np_ce():
        logp = np_log_softmax(x, axis=1)
        return -np.mean(np.take_along_axis(logp, np.expand_dims(y, 1), axis=1))

    tx, ty = tensors(torch, x, y)
    tfn = tcase(lambda: torch.nn.functional.cross_entropy(tx, ty))
    skfn = None
    if sk is not None and x.ndim == 2:
        yf = y.astype(dtype)

        def skfn(nt):
            return lambda: sk.HalfMultinomialLoss(n_classes=C).loss(yf, x, n_threads=nt).mean()

    return Case(name, (x, y), lambda: fastloss.cross_entropy(x, y), np_ce, tfn, skfn)


# --------------------------------------------------------------------------------------------------
# Pairwise cases. The N x N ones (a tile over every pair) take N = pair_rows(n) rows of d = 128: n is
# about the number of pairs (N = 1024 at n = 10^6, 3136 at 10^7), so the default size stays cheap for
# the NumPy and PyTorch peers, which build N x N matrices. kmeans_inertia takes n // d points (at least
# 2) and min(256, points // 4) centers taken from them (a quarter at most, so that not every point is a
# center at small n); triplet_margin (memory-bound, one row of each input per loss) n // d rows.
PAIRWISE = (
    "pairwise_dist",
    "pairwise_contrastive",
    "batch_hard_triplet",
    "kmeans_inertia",
    "info_nce",
    "triplet_margin",
)
PAIR_MARGIN = 16.0  # about the typical distance of two rows, so both branches of a hinge occur


def _np_sqdist(x, y):
    """The idiomatic NumPy squared distances: the BLAS expansion (what scikit-learn does too)."""
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T), 0.0)


def kmeans_shape(n: int) -> tuple[int, int]:
    """(points, centers) of the kmeans_inertia case."""
    rows = max(2, n // PAIR_D)
    return rows, min(256, max(1, rows // 4))


def _pairwise_case(name, n, dtype, torch, tcase) -> Case:
    d = PAIR_D
    if name == "triplet_margin":
        rows = max(1, n // d)
        a, p, q = gaussian_rows(rows, 3, dtype)

        def np_trip():
            dp = np.linalg.norm(a - p + 1e-6, axis=1)
            dn = np.linalg.norm(a - q + 1e-6, axis=1)
            return np.mean(np.maximum(dp - dn + 1.0, 0.0))

        ta, tp, tq = tensors(torch, a, p, q)
        tfn = tcase(lambda: torch.nn.functional.triplet_margin_loss(ta, tp, tq))
        return Case(name, (a, p, q), lambda: fastloss.triplet_margin_loss(a, p, q), np_trip, tfn)
    if name == "kmeans_inertia":
        rows, k = kmeans_shape(n)
        (x,) = gaussian_rows(rows, 1, dtype)
        centers = x[:: rows // k][:k].copy()
        tx, tc = tensors(torch, x, centers)

        def np_km():
            d2 = _np_sqdist(x, centers)
            return d2.min(1).sum(), d2.argmin(1)

        def t_km():
            d2 = torch.cdist(tx, tc) ** 2
            v, i = d2.min(1)
            return v.sum(), i

        return Case(
            name,
            (x, centers),
            lambda: fastloss.kmeans_inertia(x, centers),
            np_km,
            tcase(t_km),
            peers={"torch": "cdist + min"},
            flops=2.0 * rows * k * d,
        )
    N = pair_rows(n)
    x, p = gaussian_rows(N, 2, dtype)
    labels = row_labels(N, max(2, N // 32))
    tx, tp, tl = tensors(torch, x, p, labels)
    margin = PAIR_MARGIN
    if name == "pairwise_dist":
        return Case(
            name,
            (x,),
            lambda: fastloss.pairwise_distances(x),
            lambda: np.sqrt(_np_sqdist(x, x)),
            tcase(lambda: torch.cdist(tx, tx)),
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
            tcase(t_pc),
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
            tcase(t_bh),
            peers={"torch": "cdist + composed"},
            flops=2.0 * N * N * d,
        )

    # info_nce: N queries against N positives
    def np_nce():
        logits = np_normalize(x) @ np_normalize(p).T / 0.1
        return np.mean(np_logsumexp(logits) - np.diagonal(logits))

    def t_nce():
        F = torch.nn.functional
        logits = F.normalize(tx, dim=1) @ F.normalize(tp, dim=1).T / 0.1
        return F.cross_entropy(logits, torch.arange(N))

    return Case(
        name,
        (x, p),
        lambda: fastloss.info_nce(x, p),
        np_nce,
        tcase(t_nce),
        peers={"torch": "normalize + matmul + cross_entropy"},
        flops=2.0 * N * N * d,
    )


# --------------------------------------------------------------------------------------------------
# Overlap (segmentation) cases


def np_dice(p, g, axes) -> Any:
    """MONAI's Dice loss of dense predictions and targets, the sums over `axes`."""
    inter = (p * g).sum(axis=axes)
    return np.mean(1.0 - (2.0 * inter + 1e-5) / (p.sum(axis=axes) + g.sum(axis=axes) + 1e-5))


def torch_dice(torch, p, g, dims) -> Any:
    inter = (p * g).sum(dim=dims)
    return torch.mean(1.0 - (2.0 * inter + 1e-5) / (p.sum(dim=dims) + g.sum(dim=dims) + 1e-5))


def _dice_case(name, n, dtype, torch, tcase) -> Case:
    """dice: (64, 1, 256, 256), fewer rows of 256 x 256 below n = 64 * 256 * 256; dice_3d: (8, 4, 128,
    128, 128) (named only: 0.5 GB of inputs, NumPy needs seconds)."""
    shape = (8, 4, 128, 128, 128) if name == "dice_3d" else seg_shape(n, 1)
    p, g = seg_data(shape, dtype)
    axes = tuple(range(2, len(shape)))
    tp, tg = tensors(torch, p, g)
    return Case(
        name,
        (p, g),
        lambda: fastloss.dice_loss(p, g),
        lambda: np_dice(p, g, axes),
        tcase(lambda: torch_dice(torch, tp, tg, axes)),
        peers={"torch": "composed"},
    )


# --------------------------------------------------------------------------------------------------
# The case lists. The later families build on the helpers above, so their module is imported here, at
# the end, not at the top: it imports those helpers from this module.

from fastloss import _benchcases_more  # noqa: E402

NAMES = (
    # regression and binary classification (elementwise, n elements per input)
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
    # class-wise
    "cross_entropy_c10",
    "cross_entropy",
    "cross_entropy_c1000",
    "cross_entropy_seg",
    # pairwise and paired rows
    *PAIRWISE,
    # segmentation
    "dice",
    # the families of _benchcases_more, in its order (gradients last)
    *_benchcases_more.BUILDERS,
)
# Cases run only when named (large inputs).
EXTRA = ("dice_3d",)
# The memory-bound losses whose speed is judged against the read bandwidth.
MEMORY_BOUND = (
    "mse",
    "mae",
    "huber",
    "smooth_l1",
    "pinball",
    "hinge",
    "margin_ranking",
    "rmse",
    "l1_penalty",
    "l2_penalty",
    "perceptual",
)

# The public fastloss functions each case exercises.
COVERS: dict[str, tuple[str, ...]] = {
    "mse": ("mse",),
    "mae": ("mae",),
    "huber": ("huber",),
    "smooth_l1": ("smooth_l1",),
    "pinball": ("pinball",),
    "hinge": ("hinge",),
    "log_cosh": ("log_cosh",),
    "pseudo_huber": ("pseudo_huber",),
    "binary_cross_entropy": ("binary_cross_entropy",),
    "bce_with_logits": ("binary_cross_entropy_with_logits",),
    "sigmoid_focal": ("sigmoid_focal_loss",),
    "margin_ranking": ("margin_ranking_loss",),
    "cross_entropy_c10": ("cross_entropy",),
    "cross_entropy": ("cross_entropy",),
    "cross_entropy_c1000": ("cross_entropy",),
    "cross_entropy_seg": ("cross_entropy",),
    "pairwise_dist": ("pairwise_distances",),
    "pairwise_contrastive": ("pairwise_contrastive_loss",),
    "batch_hard_triplet": ("batch_hard_triplet_loss",),
    "kmeans_inertia": ("kmeans_inertia",),
    "info_nce": ("info_nce",),
    "triplet_margin": ("triplet_margin_loss",),
    "dice": ("dice_loss",),
    "dice_3d": ("dice_loss",),
    "rmse": ("rmse",),
    "kl_div": ("kl_div",),
    "nll": ("nll_loss",),
    "softmax_focal": ("softmax_focal_loss",),
    "poly1_cross_entropy": ("poly1_cross_entropy",),
    "multiclass_hinge": ("multiclass_hinge",),
    "multiclass_hinge_cs": ("multiclass_hinge",),
    "contrastive": ("contrastive_loss",),
    "cosine_embedding": ("cosine_embedding_loss",),
    "nt_xent": ("nt_xent",),
    "mnrl": ("multiple_negatives_ranking_loss",),
    "ge2e": ("ge2e_loss",),
    "arcface": ("arcface_loss",),
    "jaccard": ("jaccard_loss",),
    "tversky": ("tversky_loss",),
    "dice_multiclass": ("dice_loss",),
    "l1_penalty": ("l1_penalty",),
    "l2_penalty": ("l2_penalty",),
    "composite": ("Composite", "cross_entropy", "l2_penalty"),
    "gram_matrix": ("gram_matrix",),
    "style": ("style_loss",),
    "perceptual": ("perceptual_loss",),
    "temporal_consistency": ("temporal_consistency_loss",),
    "graph_matching": ("graph_matching_loss",),
    "flow_matching": ("flow_matching_loss",),
    "prior_preservation": ("prior_preservation_loss",),
    "softmax": ("softmax",),
    "log_softmax": ("log_softmax",),
    "logsumexp": ("logsumexp",),
    "sigmoid": ("sigmoid",),
    "mse_grad": ("mse",),
    "bce_with_logits_grad": ("binary_cross_entropy_with_logits",),
    "cross_entropy_grad": ("cross_entropy",),
    "pairwise_contrastive_grad": ("pairwise_contrastive_loss",),
    "composite_grad": ("Composite", "cross_entropy", "l2_penalty"),
}
