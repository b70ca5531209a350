"""The composite and toolbox cases."""

from __future__ import annotations

import math

import numpy as np

import fastloss
from fastloss._bench.common import (
    CLASSES,
    COMPOSED,
    Case,
    _Peers,
    class_rows,
    leaf,
    make_data,
    np_cross_entropy,
    np_log_softmax,
)

# --------------------------------------------------------------------------------------------------
# Composite: cross-entropy of (n / 2 / C, C) logits plus 1e-4 times the L2 penalty of a weight matrix
# of about n / 2 elements; "composite_grad" asks for the gradients of the total too


def _composite(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    F = P.F
    x, y = class_rows(max(1, n // 2), CLASSES, dtype)
    W = np.random.default_rng(2).standard_normal((max(1, n // 512), 256)).astype(dtype)
    lam = 1e-4
    rows = x.shape[0]
    r = np.arange(rows)
    loss = fastloss.Composite().add(fastloss.cross_entropy, x, y, name="ce")
    loss = loss.add(fastloss.l2_penalty, W, weight=lam, name="l2")
    tx, ty, tW = P.t(x, y, W)
    if name == "composite":
        return Case(
            name,
            (x, y, W),
            lambda: loss.evaluate().total,
            lambda: np_cross_entropy(x, y) + lam * np.sum(W * W),
            P.case(lambda: F.cross_entropy(tx, ty) + lam * tW.square().sum()),
            peers=COMPOSED,
        )

    def fl_grad():
        res = loss.evaluate(return_grad=True)
        return res.total, res.grad(x), res.grad(W)

    def np_grad():
        logp = np_log_softmax(x)
        gx = np.exp(logp)
        gx[r, y] -= 1.0
        gx /= rows
        return -np.mean(logp[r, y]) + lam * np.sum(W * W), gx, (2.0 * lam) * W

    def t_grad():
        xl, wl = leaf(tx), leaf(tW)
        total = F.cross_entropy(xl, ty) + lam * wl.square().sum()
        total.backward()
        return total, xl.grad, wl.grad

    return Case(name, (x, y, W), fl_grad, np_grad, P.case(t_grad), peers={"torch": "composed, autograd"})


# --------------------------------------------------------------------------------------------------
# The toolbox


FEATURES = (4, 64)  # (B, C) of the feature maps: (4, 64, H, H) with 4 * 64 * H^2 about n


def feature_maps(n: int, dtype: np.dtype, count: int = 2) -> list[np.ndarray]:
    B, C = FEATURES
    side = max(1, round(math.sqrt(n / (B * C))))
    rng = np.random.default_rng(0)
    return [rng.standard_normal((B, C, side, side)).astype(dtype) for _ in range(count)]


def _np_gram(f: np.ndarray) -> np.ndarray:
    B, C = f.shape[:2]
    f = f.reshape(B, C, -1)
    return f @ f.transpose(0, 2, 1) / (C * f.shape[2])


def _t_gram(torch, f):
    B, C = f.shape[:2]
    f = f.reshape(B, C, -1)
    return torch.bmm(f, f.transpose(1, 2)) / (C * f.shape[2])


def _toolbox(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    torch, F = P.torch, P.F
    if name in ("gram_matrix", "style_loss", "perceptual_loss"):
        fa, fb = feature_maps(n, dtype)
        ta, tb = P.t(fa, fb)
        B, C, H, W = fa.shape
        gram_flops = 2.0 * B * C * C * H * W
        if name == "gram_matrix":
            return Case(
                name,
                (fa,),
                lambda: fastloss.gram_matrix(fa),
                lambda: _np_gram(fa),
                P.case(lambda: _t_gram(torch, ta)),
                peers={"torch": "bmm"},
                flops=gram_flops,
            )
        if name == "style_loss":
            return Case(
                name,
                (fa, fb),
                lambda: fastloss.style_loss(fa, fb),
                lambda: np.mean((_np_gram(fa) - _np_gram(fb)) ** 2),
                P.case(lambda: F.mse_loss(_t_gram(torch, ta), _t_gram(torch, tb))),
                peers={"torch": "bmm + mse_loss"},
                flops=2.0 * gram_flops,
            )
        return Case(
            name,
            (fa, fb),
            lambda: fastloss.perceptual_loss(fa, fb),
            lambda: np.mean((fa - fb) ** 2),
            P.case(lambda: F.mse_loss(ta, tb)),
        )
    rng = np.random.default_rng(0)
    if name == "temporal_consistency_loss":  # 8 frames of (3, H, H)
        side = max(1, round(math.sqrt(n / 24)))
        frames = rng.standard_normal((8, 3, side, side)).astype(dtype)
        (tf,) = P.t(frames)
        return Case(
            name,
            (frames,),
            lambda: fastloss.temporal_consistency_loss(frames),
            lambda: np.mean(np.abs(np.diff(frames, axis=0))),
            P.case(lambda: F.l1_loss(tf[1:], tf[:-1])),
            peers={"torch": "l1_loss of the frame slices"},
        )
    if (
        name == "graph_matching_loss"
    ):  # two (m, m) weighted adjacency matrices, m^2 about n, and a permutation
        m = max(2, math.isqrt(n))
        a2 = rng.standard_normal((m, m)).astype(dtype)
        pi = rng.permutation(m)
        a1 = (a2[np.ix_(pi, pi)] + 0.1 * rng.standard_normal((m, m))).astype(dtype)
        t1, t2, tpi = P.t(a1, a2, pi)
        return Case(
            name,
            (a1, a2, pi),
            lambda: fastloss.graph_matching_loss(a1, a2, pi),
            lambda: np.sum((a1 - a2[np.ix_(pi, pi)]) ** 2),
            P.case(lambda: ((t1 - t2[tpi][:, tpi]) ** 2).sum()),
            peers=COMPOSED,
        )
    if name == "flow_matching_loss":  # (B, 4, 32, 32) latents, B = n // 4096 (one (1, n) sample below)
        shape = (n // 4096, 4, 32, 32) if n >= 4096 else (1, n)
        v, x0, x1 = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
        tv, t0, t1 = P.t(v, x0, x1)
        B = shape[0]
        return Case(
            name,
            (v, x0, x1),
            lambda: fastloss.flow_matching_loss(v, x0, x1),
            lambda: np.mean(np.sum(((v - (x1 - x0)) ** 2).reshape(B, -1), axis=1)),
            P.case(lambda: ((tv - (t1 - t0)) ** 2).reshape(B, -1).sum(1).mean()),
            peers=COMPOSED,
        )
    # prior_preservation: instance and prior pairs of n / 2 elements each
    p, t = make_data("regression", max(1, n // 2), dtype)
    pp, pt = make_data("regression", max(1, n // 2), dtype, seed=1)
    tp, tt, tpp, tpt = P.t(p, t, pp, pt)
    return Case(
        name,
        (p, t, pp, pt),
        lambda: fastloss.prior_preservation_loss(p, t, pp, pt, prior_weight=0.5),
        lambda: np.mean((p - t) ** 2) + 0.5 * np.mean((pp - pt) ** 2),
        P.case(lambda: F.mse_loss(tp, tt) + 0.5 * F.mse_loss(tpp, tpt)),
        peers={"torch": "two mse_loss"},
    )


BUILDERS = {
    **dict.fromkeys(("composite", "composite_grad"), _composite),
    **dict.fromkeys(
        (
            "gram_matrix",
            "style_loss",
            "perceptual_loss",
            "temporal_consistency_loss",
            "graph_matching_loss",
            "flow_matching_loss",
            "prior_preservation_loss",
        ),
        _toolbox,
    ),
}
