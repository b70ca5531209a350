"""The benchmark cases of the later loss families; :func:`fastloss._benchcases.build` dispatches here.

Conventions, data builders and the map from ``n`` to shapes are those of :mod:`fastloss._benchcases`
(its docstring). Each builder takes ``(name, n, dtype)`` and returns a :class:`Case`; ``BUILDERS`` maps
every case name of this module to its builder. The NumPy references are written the way a user would
(stable forms, independent of fastloss's own NumPy backend); the PyTorch peers are ``torch.nn.functional``
where it has the loss, else a short composition (marked ``composed`` in ``peers``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

import fastloss
from fastloss._benchcases import (
    PAIR_D,
    PAIR_MARGIN,
    Case,
    _np_sqdist,
    _sk_loss,
    _torch,
    class_data,
    class_rows,
    gaussian_rows,
    leaf,
    make_data,
    np_cross_entropy,
    np_dice,
    np_log_softmax,
    np_logsumexp,
    np_normalize,
    np_sigmoid,
    pair_rows,
    row_labels,
    seg_data,
    seg_shape,
    tensors,
    torch_dice,
    torch_factory,
)

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


# --------------------------------------------------------------------------------------------------
# Regression, the activations and the penalties (elementwise: about n elements per input)


def _elementwise(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    torch, F = P.torch, P.F
    if name == "rmse":
        p, t = make_data("regression", n, dtype)
        tp, tq = P.t(p, t)
        return Case(
            name,
            (p, t),
            lambda: fastloss.rmse(p, t),
            lambda: np.sqrt(np.mean((p - t) ** 2)),
            P.case(lambda: torch.sqrt(F.mse_loss(tp, tq))),
            peers=COMPOSED,
        )
    if name == "sigmoid":
        (x, _) = make_data("logits", n, dtype)
        (tx,) = P.t(x)
        return Case(
            name, (x,), lambda: fastloss.sigmoid(x), lambda: np_sigmoid(x), P.case(lambda: torch.sigmoid(tx))
        )
    if name in ("l1_penalty", "l2_penalty"):
        # two parameter arrays of n / 2 elements each
        w1, w2 = make_data("regression", max(1, n // 2), dtype)
        t1, t2 = P.t(w1, w2)
        if name == "l1_penalty":
            return Case(
                name,
                (w1, w2),
                lambda: fastloss.l1_penalty(w1, w2),
                lambda: np.abs(w1).sum() + np.abs(w2).sum(),
                P.case(lambda: t1.abs().sum() + t2.abs().sum()),
                peers=COMPOSED,
            )
        return Case(
            name,
            (w1, w2),
            lambda: fastloss.l2_penalty(w1, w2),
            lambda: np.sum(w1 * w1) + np.sum(w2 * w2),
            P.case(lambda: t1.square().sum() + t2.square().sum()),
            peers=COMPOSED,
        )
    # softmax, log_softmax, logsumexp over the last axis of (n // C, C) scores
    x, _ = class_rows(n, CLASSES, dtype)
    (tx,) = P.t(x)
    if name == "softmax":

        def np_softmax():
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)

        return Case(
            name, (x,), lambda: fastloss.softmax(x), np_softmax, P.case(lambda: torch.softmax(tx, -1))
        )
    if name == "log_softmax":
        return Case(
            name,
            (x,),
            lambda: fastloss.log_softmax(x),
            lambda: np_log_softmax(x, axis=-1),
            P.case(lambda: torch.log_softmax(tx, -1)),
        )
    return Case(
        name,
        (x,),
        lambda: fastloss.logsumexp(x),
        lambda: np_logsumexp(x, axis=-1),
        P.case(lambda: torch.logsumexp(tx, -1)),
    )


# --------------------------------------------------------------------------------------------------
# Class-wise losses: (n // C, C) scores, C = 100


def _classwise(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    torch, F = P.torch, P.F
    x, y = class_rows(n, CLASSES, dtype)
    rows, C = x.shape
    r = np.arange(rows)
    tx, ty = P.t(x, y)
    if name == "kl_div":
        # log Q from one set of logits, P the probabilities of another; "batchmean" divides by the rows
        logq = np_log_softmax(x)
        p = np.exp(np_log_softmax(class_rows(n, C, dtype, seed=1)[0]))
        tq, tp = P.t(logq, p)
        return Case(
            name,
            (logq, p),
            lambda: fastloss.kl_div(logq, p),
            lambda: np.sum(p * (np.log(p) - logq)) / rows,
            P.case(lambda: F.kl_div(tq, tp, reduction="batchmean")),
        )
    if name == "nll":
        logp = np_log_softmax(x)
        (tlp,) = P.t(logp)
        return Case(
            name,
            (logp, y),
            lambda: fastloss.nll_loss(logp, y),
            lambda: -np.mean(logp[r, y]),
            P.case(lambda: F.nll_loss(tlp, ty)),
        )
    if name == "softmax_focal":

        def np_focal():
            lp = np_log_softmax(x)[r, y]
            return np.mean(-((1.0 - np.exp(lp)) ** 2) * lp)

        def t_focal():
            ce = F.cross_entropy(tx, ty, reduction="none")
            return ((1.0 - torch.exp(-ce)) ** 2 * ce).mean()

        return Case(
            name,
            (x, y),
            lambda: fastloss.softmax_focal_loss(x, y, gamma=2.0),
            np_focal,
            P.case(t_focal),
            peers={"torch": "cross_entropy + composed"},
        )
    if name == "poly1_cross_entropy":

        def np_poly1():
            lp = np_log_softmax(x)[r, y]
            return np.mean(-lp + 1.0 * (1.0 - np.exp(lp)))

        def t_poly1():
            ce = F.cross_entropy(tx, ty, reduction="none")
            return (ce + 1.0 * (1.0 - torch.exp(-ce))).mean()

        return Case(
            name,
            (x, y),
            lambda: fastloss.poly1_cross_entropy(x, y, epsilon=1.0),
            np_poly1,
            P.case(t_poly1),
            peers={"torch": "cross_entropy + composed"},
        )
    if name == "multiclass_hinge":  # Weston-Watkins, PyTorch's multi_margin_loss

        def np_ww():
            viol = np.maximum(0.0, 1.0 - x[r, y][:, None] + x)
            viol[r, y] = 0.0
            return np.mean(viol.sum(axis=1) / C)

        return Case(
            name,
            (x, y),
            lambda: fastloss.multiclass_hinge(x, y),
            np_ww,
            P.case(lambda: F.multi_margin_loss(tx, ty)),
        )

    # multiclass_hinge_cs: Crammer-Singer, max(0, 1 + max_{j != y} s_j - s_y)
    def np_cs():
        others = np.where(np.arange(C) == y[:, None], -np.inf, x).max(axis=1)
        return np.mean(np.maximum(0.0, 1.0 + others - x[r, y]))

    def t_cs():
        sy = tx.gather(1, ty[:, None])[:, 0]
        others = tx.scatter(1, ty[:, None], -torch.inf).amax(1)
        return torch.clamp(1.0 + others - sy, min=0.0).mean()

    return Case(
        name,
        (x, y),
        lambda: fastloss.multiclass_hinge(x, y, method="crammer_singer"),
        np_cs,
        P.case(t_cs),
        peers=COMPOSED,
    )


# --------------------------------------------------------------------------------------------------
# Metric learning: paired rows (n // d rows of each input) and similarity matrices (N x N, N = pair_rows)


def _paired_rows(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    torch, F = P.torch, P.F
    rows = max(1, n // PAIR_D)
    x1, x2 = gaussian_rows(rows, 2, dtype)
    rng = np.random.default_rng(1)
    if name == "contrastive":
        t = (rng.random(rows) < 0.5).astype(dtype)  # 1: similar pair, 0: dissimilar
        m = PAIR_MARGIN
        t1, t2, tt = P.t(x1, x2, t)

        def np_contrastive():
            dist = np.linalg.norm(x1 - x2, axis=1)
            return np.mean(0.5 * (t * dist**2 + (1.0 - t) * np.maximum(m - dist, 0.0) ** 2))

        def t_contrastive():
            dist = torch.linalg.vector_norm(t1 - t2, dim=1)
            return (0.5 * (tt * dist**2 + (1.0 - tt) * torch.clamp(m - dist, min=0.0) ** 2)).mean()

        return Case(
            name,
            (x1, x2, t),
            lambda: fastloss.contrastive_loss(x1, x2, t, margin=m),
            np_contrastive,
            P.case(t_contrastive),
            peers=COMPOSED,
        )
    # cosine_embedding, margin 0
    t = np.where(rng.random(rows) < 0.5, -1.0, 1.0).astype(dtype)
    t1, t2, tt = P.t(x1, x2, t)

    def np_cosine():
        cos = (x1 * x2).sum(1) / np.sqrt(((x1 * x1).sum(1) + 1e-12) * ((x2 * x2).sum(1) + 1e-12))
        return np.mean(np.where(t == 1, 1.0 - cos, np.maximum(0.0, cos)))

    return Case(
        name,
        (x1, x2, t),
        lambda: fastloss.cosine_embedding_loss(x1, x2, t),
        np_cosine,
        P.case(lambda: F.cosine_embedding_loss(t1, t2, tt)),
    )


GE2E_UTTERANCES = 8  # utterances per speaker: N = pair_rows(n) utterances of N / 8 speakers


def _similarity(name: str, n: int, dtype: np.dtype) -> Case:
    """NT-Xent (N views: two of N / 2 examples), MNRL (N anchors, N positives), ArcFace (N embeddings,
    N classes), GE2E (N utterances against N / 8 centroids)."""
    P = _Peers()
    torch, F = P.torch, P.F
    N, d = pair_rows(n), PAIR_D
    r = np.arange(N)
    tr = torch.from_numpy(r) if torch is not None else None
    if name == "nt_xent":
        z1, z2 = gaussian_rows(N // 2, 2, dtype)
        target = (r + N // 2) % N  # the other view of the same example
        t1, t2, tt = P.t(z1, z2, target)

        def np_nt_xent():
            z = np_normalize(np.concatenate([z1, z2]))
            s = z @ z.T / 0.5
            np.fill_diagonal(s, -np.inf)
            return np.mean(np_logsumexp(s) - s[r, target])

        def t_nt_xent():
            z = F.normalize(torch.cat([t1, t2]), dim=1)
            s = z @ z.T / 0.5
            s.fill_diagonal_(-torch.inf)
            return F.cross_entropy(s, tt)

        return Case(
            name,
            (z1, z2),
            lambda: fastloss.nt_xent(z1, z2, temperature=0.5),
            np_nt_xent,
            P.case(t_nt_xent),
            peers={"torch": "normalize + matmul + cross_entropy"},
            flops=2.0 * N * N * d,
        )
    if name == "mnrl":
        a, p = gaussian_rows(N, 2, dtype)
        ta, tp = P.t(a, p)
        return Case(
            name,
            (a, p),
            lambda: fastloss.multiple_negatives_ranking_loss(a, p, scale=20.0),
            lambda: np_cross_entropy(20.0 * (np_normalize(a) @ np_normalize(p).T), r),
            P.case(lambda: F.cross_entropy(20.0 * (F.normalize(ta, dim=1) @ F.normalize(tp, dim=1).T), tr)),
            peers={"torch": "normalize + matmul + cross_entropy"},
            flops=2.0 * N * N * d,
        )
    if name == "arcface":
        e, w = gaussian_rows(N, 2, dtype)
        y = row_labels(N, N)
        te, tw, ty = P.t(e, w, y)
        s, m = 64.0, 0.5
        cm, sm, th, mm = math.cos(m), math.sin(m), math.cos(math.pi - m), math.sin(math.pi - m) * m

        def np_arcface():
            cos = np_normalize(e) @ np_normalize(w).T
            cy = cos[r, y]
            sy = np.sqrt(np.clip(1.0 - cy * cy, 0.0, 1.0))
            logits = s * cos
            logits[r, y] = s * np.where(cy > th, cy * cm - sy * sm, cy - mm)
            return np_cross_entropy(logits, y)

        def t_arcface():
            cos = F.normalize(te, dim=1) @ F.normalize(tw, dim=1).T
            cy = cos[tr, ty]
            sy = torch.sqrt(torch.clamp(1.0 - cy * cy, 0.0, 1.0))
            logits = s * cos
            logits[tr, ty] = s * torch.where(cy > th, cy * cm - sy * sm, cy - mm)
            return F.cross_entropy(logits, ty)

        return Case(
            name,
            (e, w, y),
            lambda: fastloss.arcface_loss(e, w, y, scale=s, margin=m),
            np_arcface,
            P.case(t_arcface),
            peers={"torch": "InsightFace formula, composed"},
            flops=2.0 * N * N * d,
        )
    # ge2e (softmax method, w = 10, b = -5): N = S U utterances
    U = GE2E_UTTERANCES
    S = N // U
    (flat,) = gaussian_rows(S * U, 1, dtype)
    e = flat.reshape(S, U, d)
    spk = np.repeat(np.arange(S), U)
    te, tspk = P.t(e, spk)

    def np_ge2e():
        own = (e.sum(axis=1, keepdims=True) - e) / (U - 1)  # each speaker's centroid without the utterance
        eh = np_normalize(e).reshape(N, d)
        cos = eh @ np_normalize(e.mean(axis=1)).T
        cos[r, spk] = np.sum(eh * np_normalize(own).reshape(N, d), axis=1)
        logits = 10.0 * cos - 5.0
        return np.mean(np_logsumexp(logits) - logits[r, spk])

    def t_ge2e():
        own = (te.sum(1, keepdim=True) - te) / (U - 1)
        eh = F.normalize(te, dim=-1).reshape(N, d)
        cos = eh @ F.normalize(te.mean(1), dim=-1).T
        cos[tr, tspk] = (eh * F.normalize(own, dim=-1).reshape(N, d)).sum(1)
        return F.cross_entropy(10.0 * cos - 5.0, tspk)

    return Case(
        name,
        (e,),
        lambda: fastloss.ge2e_loss(e, w=10.0, b=-5.0),
        np_ge2e,
        P.case(t_ge2e),
        peers={"torch": "normalize + matmul + cross_entropy"},
        flops=2.0 * N * S * d,
    )


# --------------------------------------------------------------------------------------------------
# Segmentation overlaps: the shapes of the "dice" case (seg_shape)


def _overlap(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    torch, F = P.torch, P.F
    axes = (2, 3)
    if name == "dice_multiclass":
        # 4-class logits (B, 4, 256, 256) and integer labels: softmax and one-hot fused into the pass
        C = 4
        x, y = class_data(seg_shape(n, C), C, dtype)
        tx, ty = P.t(x, y)

        def np_dice_mc():
            ex = np.exp(x - x.max(axis=1, keepdims=True))
            onehot = np.moveaxis(np.eye(C, dtype=dtype)[y], -1, 1)
            return np_dice(ex / ex.sum(axis=1, keepdims=True), onehot, axes)

        def t_dice_mc():
            onehot = F.one_hot(ty, C).movedim(-1, 1).to(tx.dtype)
            return torch_dice(torch, torch.softmax(tx, dim=1), onehot, axes)

        return Case(
            name,
            (x, y),
            lambda: fastloss.dice_loss(x, y, activation="softmax"),
            np_dice_mc,
            P.case(t_dice_mc),
            peers={"torch": "softmax + one_hot + composed"},
        )
    p, g = seg_data(seg_shape(n, 1), dtype)
    tp, tg = P.t(p, g)
    if name == "jaccard":

        def np_jaccard():
            inter = (p * g).sum(axis=axes)
            union2 = 2.0 * (p.sum(axis=axes) + g.sum(axis=axes) - inter)
            return np.mean(1.0 - (2.0 * inter + 1e-5) / (union2 + 1e-5))

        def t_jaccard():
            inter = (tp * tg).sum(dim=axes)
            union2 = 2.0 * (tp.sum(dim=axes) + tg.sum(dim=axes) - inter)
            return torch.mean(1.0 - (2.0 * inter + 1e-5) / (union2 + 1e-5))

        return Case(
            name, (p, g), lambda: fastloss.jaccard_loss(p, g), np_jaccard, P.case(t_jaccard), peers=COMPOSED
        )

    # tversky, alpha = 0.7 (false positives), beta = 0.3 (false negatives)
    def np_tversky():
        tp_ = (p * g).sum(axis=axes)
        fp = (p * (1.0 - g)).sum(axis=axes)
        fn = ((1.0 - p) * g).sum(axis=axes)
        return np.mean(1.0 - (tp_ + 1e-5) / (tp_ + 0.7 * fp + 0.3 * fn + 1e-5))

    def t_tversky():
        tp_ = (tp * tg).sum(dim=axes)
        fp = (tp * (1.0 - tg)).sum(dim=axes)
        fn = ((1.0 - tp) * tg).sum(dim=axes)
        return torch.mean(1.0 - (tp_ + 1e-5) / (tp_ + 0.7 * fp + 0.3 * fn + 1e-5))

    return Case(
        name,
        (p, g),
        lambda: fastloss.tversky_loss(p, g, alpha=0.7, beta=0.3),
        np_tversky,
        P.case(t_tversky),
        peers=COMPOSED,
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
    if name in ("gram_matrix", "style", "perceptual"):
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
        if name == "style":
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
    if name == "temporal_consistency":  # 8 frames of (3, H, H)
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
    if name == "graph_matching":  # two (m, m) weighted adjacency matrices, m^2 about n, and a permutation
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
    if name == "flow_matching":  # (B, 4, 32, 32) latents, B = n // 4096 (one (1, n) sample below)
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


# --------------------------------------------------------------------------------------------------
# Value and gradient: fastloss with return_grad=True, NumPy by hand, PyTorch by autograd (a fresh leaf
# each call), scikit-learn's loss_gradient rescaled to the gradient of the mean where it has the loss


def _grad(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    torch, F, sk = P.torch, P.F, P.sk
    if name == "mse_grad":
        p, t = make_data("regression", n, dtype)
        tp, tq = P.t(p, t)

        def np_mse():
            d = p - t
            return np.mean(d * d), (2.0 / d.size) * d

        def t_mse():
            pl = leaf(tp)
            v = F.mse_loss(pl, tq)
            v.backward()
            return v, pl.grad

        def sk_mse(nt):
            def run():
                loss, g = sk.HalfSquaredError().loss_gradient(t, p, n_threads=nt)
                g *= 2.0 / g.size
                return 2.0 * loss.mean(), g

            return run

        return Case(
            name,
            (p, t),
            lambda: fastloss.mse(p, t, return_grad=True),
            np_mse,
            P.case(t_mse),
            sk_mse if sk is not None else None,
            {"torch": "autograd", "sklearn": "HalfSquaredError.loss_gradient, rescaled to the MSE"},
        )
    if name == "bce_with_logits_grad":
        x, t = make_data("logits", n, dtype)
        tx, tq = P.t(x, t)

        def np_bce():
            e = np.exp(-np.abs(x))
            value = np.mean(np.maximum(x, 0) - x * t + np.log1p(e))
            return value, (np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)) - t) / x.size

        def t_bce():
            xl = leaf(tx)
            v = F.binary_cross_entropy_with_logits(xl, tq)
            v.backward()
            return v, xl.grad

        def sk_bce(nt):
            def run():
                loss, g = sk.HalfBinomialLoss().loss_gradient(t, x, n_threads=nt)
                g /= g.size
                return loss.mean(), g

            return run

        return Case(
            name,
            (x, t),
            lambda: fastloss.binary_cross_entropy_with_logits(x, t, return_grad=True),
            np_bce,
            P.case(t_bce),
            sk_bce if sk is not None else None,
            {"torch": "autograd", "sklearn": "HalfBinomialLoss.loss_gradient / n"},
        )
    if name == "cross_entropy_grad":
        x, y = class_rows(n, CLASSES, dtype)
        rows, C = x.shape
        r = np.arange(rows)
        tx, ty = P.t(x, y)
        yf = y.astype(dtype)

        def np_ce():
            logp = np_log_softmax(x)
            g = np.exp(logp)
            g[r, y] -= 1.0
            g /= rows
            return -np.mean(logp[r, y]), g

        def t_ce():
            xl = leaf(tx)
            v = F.cross_entropy(xl, ty)
            v.backward()
            return v, xl.grad

        def sk_ce(nt):
            def run():
                loss, g = sk.HalfMultinomialLoss(n_classes=C).loss_gradient(yf, x, n_threads=nt)
                g /= rows
                return loss.mean(), g

            return run

        return Case(
            name,
            (x, y),
            lambda: fastloss.cross_entropy(x, y, return_grad=True),
            np_ce,
            P.case(t_ce),
            sk_ce if sk is not None else None,
            {"torch": "autograd", "sklearn": "HalfMultinomialLoss.loss_gradient / rows"},
        )
    # pairwise_contrastive_grad: the pairwise_contrastive case with its gradient
    N, d = pair_rows(n), PAIR_D
    (x,) = gaussian_rows(N, 1, dtype)
    labels = row_labels(N, max(2, N // 32))
    tx, tl = P.t(x, labels)
    m, pairs = PAIR_MARGIN, N * (N - 1) / 2

    def np_pc():
        dist = np.sqrt(_np_sqdist(x, x))
        same = labels[:, None] == labels[None, :]
        hinge = np.maximum(m - dist, 0.0)
        value = np.triu(np.where(same, 0.5 * dist**2, 0.5 * hinge**2), 1).sum() / pairs
        # d l_ij / d x_i = c_ij (x_i - x_j): c = 1 for a similar pair, -hinge / dist for a dissimilar one
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(same, 1.0, -hinge / dist)
        np.fill_diagonal(c, 0.0)
        return value, (c.sum(axis=1)[:, None] * x - c @ x) / pairs

    def t_pc():
        xl = leaf(tx)
        dist = torch.cdist(xl, xl)
        same = tl[:, None] == tl[None, :]
        loss = torch.where(same, 0.5 * dist**2, 0.5 * torch.clamp(m - dist, min=0.0) ** 2)
        v = torch.triu(loss, 1).sum() / pairs
        v.backward()
        return v, xl.grad

    return Case(
        name,
        (x,),
        lambda: fastloss.pairwise_contrastive_loss(x, labels, margin=m, return_grad=True),
        np_pc,
        P.case(t_pc),
        peers={"torch": "cdist + composed, autograd"},
        # the distances (N (N - 1) / 2 pairs of d multiply-adds) and the gradient (2 d for each pair)
        flops=3.0 * N * (N - 1) * d,
    )


def _builders() -> dict[str, Callable[[str, int, np.dtype], Case]]:
    families = {
        _elementwise: ("rmse", "sigmoid", "l1_penalty", "l2_penalty", "softmax", "log_softmax", "logsumexp"),
        _classwise: (
            "kl_div",
            "nll",
            "softmax_focal",
            "poly1_cross_entropy",
            "multiclass_hinge",
            "multiclass_hinge_cs",
        ),
        _paired_rows: ("contrastive", "cosine_embedding"),
        _similarity: ("nt_xent", "mnrl", "ge2e", "arcface"),
        _overlap: ("jaccard", "tversky", "dice_multiclass"),
        _composite: ("composite",),
        _toolbox: (
            "gram_matrix",
            "style",
            "perceptual",
            "temporal_consistency",
            "graph_matching",
            "flow_matching",
            "prior_preservation",
        ),
        _grad: ("mse_grad", "bce_with_logits_grad", "cross_entropy_grad", "pairwise_contrastive_grad"),
    }
    # composite's builder makes composite_grad too, listed last with the other gradients
    out = {name: fn for fn, names in families.items() for name in names}
    out["composite_grad"] = _composite
    return out


BUILDERS = _builders()
