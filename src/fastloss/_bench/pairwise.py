"""Metric-learning cases: pairwise (N x N, N = pair_rows(n) rows of d = 128), paired rows (n // d rows of
each input) and similarity matrices."""

from __future__ import annotations

import math

import numpy as np

import fastloss
from fastloss._bench.common import (
    COMPOSED,
    PAIR_D,
    PAIR_MARGIN,
    Case,
    _np_sqdist,
    _Peers,
    _torch,
    gaussian_rows,
    kmeans_shape,
    np_cross_entropy,
    np_logsumexp,
    np_normalize,
    pair_rows,
    row_labels,
    tensors,
    torch_factory,
)

# The N x N cases (a tile over every pair) take N = pair_rows(n) rows of d = 128: n is
# about the number of pairs (N = 1024 at n = 10^6, 3136 at 10^7), so the default size stays cheap for
# the NumPy and PyTorch peers, which build N x N matrices. kmeans_inertia takes n // d points (at least
# 2) and min(256, points // 4) centers taken from them (a quarter at most, so that not every point is a
# center at small n); triplet_margin (memory-bound, one row of each input per loss) n // d rows.
PAIRWISE = (
    "pairwise_distances",
    "pairwise_contrastive_loss",
    "batch_hard_triplet_loss",
    "kmeans_inertia",
    "info_nce",
    "triplet_margin_loss",
)


def _pairwise(name: str, n: int, dtype: np.dtype) -> Case:
    dtype = np.dtype(dtype)
    torch = _torch()

    def tcase(fn):
        return torch_factory(torch, fn)

    d = PAIR_D
    if name == "triplet_margin_loss":
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
    if name == "pairwise_distances":
        return Case(
            name,
            (x,),
            lambda: fastloss.pairwise_distances(x),
            lambda: np.sqrt(_np_sqdist(x, x)),
            tcase(lambda: torch.cdist(tx, tx)),
            flops=2.0 * N * N * d,
        )
    if name == "pairwise_contrastive_loss":

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
    if name == "batch_hard_triplet_loss":
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


def _paired_rows(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    torch, F = P.torch, P.F
    rows = max(1, n // PAIR_D)
    x1, x2 = gaussian_rows(rows, 2, dtype)
    rng = np.random.default_rng(1)
    if name == "contrastive_loss":
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
    if name == "multiple_negatives_ranking_loss":
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
    if name == "arcface_loss":
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


BUILDERS = {
    **dict.fromkeys(PAIRWISE, _pairwise),
    **dict.fromkeys(("contrastive_loss", "cosine_embedding_loss"), _paired_rows),
    **dict.fromkeys(("nt_xent", "multiple_negatives_ranking_loss", "ge2e_loss", "arcface_loss"), _similarity),
}
