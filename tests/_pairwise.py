"""Helpers of the metric-learning tests: direct full-matrix NumPy formulations in float64 written from the
definitions (never fastloss._numpy), the distance of an input to its loss's kinks, random valid problems,
the case table (CASES: every metric-learning loss and its reference) and the PyTorch formulations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
from conftest import (
    REDUCTIONS,
    f64,
    scale_of,
)

import fastloss

METRICS = ["euclidean", "sqeuclidean", "cosine", "manhattan"]


EPS_NORM = 1e-12  # torch.nn.functional.normalize's eps


# --------------------------------------------------------------------------------------------------
# Independent NumPy formulations (float64, full matrices; small inputs only)


def ref_cdist(x, y, metric):
    x, y = f64(x), f64(y)
    diff = x[:, None, :] - y[None, :, :]
    if metric == "sqeuclidean":
        return np.sum(diff * diff, axis=-1)
    if metric == "euclidean":
        return np.sqrt(np.sum(diff * diff, axis=-1))
    if metric == "manhattan":
        return np.sum(np.abs(diff), axis=-1)
    if metric == "cosine":
        nx = np.sum(x * x, axis=1)
        ny = np.sum(y * y, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.einsum("ik,jk->ij", x, y) / np.sqrt(np.outer(nx, ny))
        return 1.0 - np.clip(c, -1.0, 1.0)
    raise KeyError(metric)


def l2_normalize(x):
    """torch.nn.functional.normalize(x, dim=1): x / max(||x||, 1e-12)."""
    r = np.sqrt(np.sum(x * x, axis=1, keepdims=True))
    return x / np.maximum(r, EPS_NORM)


def l2_normalize_backward(x, g):
    """d/dx of sum(g * normalize(x)) (rows)."""
    r = np.sqrt(np.sum(x * x, axis=1, keepdims=True))
    big = r > EPS_NORM
    rs = np.where(big, r, 1.0)
    u = x / rs
    proj = (g - u * np.sum(u * g, axis=1, keepdims=True)) / rs
    return np.where(big, proj, g / EPS_NORM)


def ce_rows(logits, target):
    """Cross-entropy per row and d loss / d logits (softmax - one_hot); -inf logits are excluded."""
    m = np.max(logits, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True))
    ar = np.arange(logits.shape[0])
    loss = lse[:, 0] - logits[ar, target]
    p = np.exp(logits - lse)
    p[ar, target] -= 1.0
    return loss, p


def expit(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


class Ref(NamedTuple):
    items: np.ndarray  # per-row / per-anchor / per-pair losses (float64)
    grads: tuple  # gradients of sum(items), one per float input (None where not derived here)
    denom: float  # divisor of "mean"
    labels: np.ndarray | None = None  # kmeans only


def ref_contrastive(args, kw):
    x1, x2, t = f64(args[0]), f64(args[1]), f64(args[2])
    m = kw.get("margin", 1.0)
    diff = x1 - x2
    d = np.sqrt(np.sum(diff * diff, axis=1))
    h = np.maximum(0.0, m - d)
    loss = 0.5 * (t * d * d + (1.0 - t) * h * h)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = t - (1.0 - t) * np.where(d > 0, h / np.where(d > 0, d, 1.0), 0.0)
    g1 = c[:, None] * diff
    return Ref(loss, (g1, -g1), len(t))


def ref_pairwise_contrastive(args, kw):
    x, lab = f64(args[0]), np.asarray(args[1])
    m = kw.get("margin", 1.0)
    n = len(x)
    diff = x[:, None, :] - x[None, :, :]
    D = np.sqrt(np.sum(diff * diff, axis=-1))
    same = lab[:, None] == lab[None, :]
    H = np.maximum(0.0, m - D)
    L = np.where(same, 0.5 * D * D, 0.5 * H * H)
    iu = np.triu_indices(n, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.where(same, 1.0, np.where((D > 0) & (D < m), -H / np.where(D > 0, D, 1.0), 0.0))
    np.fill_diagonal(C, 0.0)
    g = np.einsum("ij,ijk->ik", C, diff)
    return Ref(L[iu], (g,), n * (n - 1) / 2)


def _pnorm_dist(u, v, p, eps):
    """torch.pairwise_distance: ||u - v + eps||_p per row, and its derivative w.r.t. u."""
    w = u - v + eps
    a = np.abs(w)
    nrm = np.sum(a**p, axis=1) ** (1.0 / p)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.sign(w) * a ** (p - 1.0) / np.where(nrm > 0, nrm, 1.0)[:, None] ** (p - 1.0)
    g = np.where((nrm > 0)[:, None], g, 0.0)
    return nrm, g


def ref_triplet(args, kw):
    a, p, n = (f64(z) for z in args[:3])
    m, pn, eps, swap = kw.get("margin", 1.0), kw.get("p", 2.0), kw.get("eps", 1e-6), kw.get("swap", False)
    d_ap, g_ap = _pnorm_dist(a, p, pn, eps)
    d_an, g_an = _pnorm_dist(a, n, pn, eps)
    s = np.zeros(len(a))
    g_pn = np.zeros_like(a)
    if swap:
        d_pn, g_pn = _pnorm_dist(p, n, pn, eps)
        s = (d_pn < d_an).astype(np.float64)
        d_an = np.where(s > 0, d_pn, d_an)
    v = d_ap - d_an + m
    act = (v > 0).astype(np.float64)[:, None]
    s = s[:, None]
    ga = act * (g_ap - (1.0 - s) * g_an)
    gp = act * (-g_ap - s * g_pn)
    gn = act * ((1.0 - s) * g_an + s * g_pn)
    return Ref(np.maximum(v, 0.0), (ga, gp, gn), len(a))


def batch_hard_indices(x, lab):
    """(D, valid, i_pos, i_neg) for every anchor (first index at ties; -1 where invalid)."""
    x = f64(x)
    diff = x[:, None, :] - x[None, :, :]
    D = np.sqrt(np.sum(diff * diff, axis=-1))
    same = lab[:, None] == lab[None, :]
    pos = same & ~np.eye(len(x), dtype=bool)
    neg = ~same
    valid = pos.any(axis=1) & neg.any(axis=1)
    ip = np.where(valid, np.argmax(np.where(pos, D, -np.inf), axis=1), -1)
    ineg = np.where(valid, np.argmin(np.where(neg, D, np.inf), axis=1), -1)
    return D, valid, ip, ineg


def ref_batch_hard(args, kw):
    x, lab = f64(args[0]), np.asarray(args[1])
    m = kw.get("margin", 1.0)
    n = len(x)
    D, valid, ip, ineg = batch_hard_indices(x, lab)
    loss = np.zeros(n)
    g = np.zeros_like(x)
    for i in range(n):
        if not valid[i]:
            continue
        jp, jn = ip[i], ineg[i]
        v = D[i, jp] - D[i, jn] + m
        if v <= 0:
            continue
        loss[i] = v
        up = (x[i] - x[jp]) / D[i, jp] if D[i, jp] > 0 else 0.0 * x[i]
        un = (x[i] - x[jn]) / D[i, jn] if D[i, jn] > 0 else 0.0 * x[i]
        g[i] += up - un
        g[jp] -= up
        g[jn] += un
    return Ref(loss, (g,), float(np.sum(valid)))


def ref_cosine_embedding(args, kw):
    """torch's cosine_embedding_loss: cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12))."""
    x1, x2, t = f64(args[0]), f64(args[1]), f64(args[2])
    m = kw.get("margin", 0.0)
    dot = np.sum(x1 * x2, axis=1)
    m1 = np.sum(x1 * x1, axis=1) + 1e-12
    m2 = np.sum(x2 * x2, axis=1) + 1e-12
    den = np.sqrt(m1 * m2)
    cos = dot / den
    loss = np.where(t == 1, 1.0 - cos, np.maximum(0.0, cos - m))
    coef = np.where(t == 1, -1.0, np.where(cos - m > 0, 1.0, 0.0))[:, None]
    g1 = coef * (x2 / den[:, None] - (cos / m1)[:, None] * x1)
    g2 = coef * (x1 / den[:, None] - (cos / m2)[:, None] * x2)
    return Ref(loss, (g1, g2), len(t))


def ref_info_nce(args, kw):
    q, p = f64(args[0]), f64(args[1])
    neg = None if len(args) < 3 or args[2] is None else f64(args[2])
    T = kw.get("temperature", 0.1)
    qh, ph = l2_normalize(q), l2_normalize(p)
    n = len(q)
    if neg is None:
        L = qh @ ph.T / T
        loss, dL = ce_rows(L, np.arange(n))
        dqh, dph = dL @ ph / T, dL.T @ qh / T
        return Ref(loss, (l2_normalize_backward(q, dqh), l2_normalize_backward(p, dph)), n)
    nh = l2_normalize(neg)
    L = np.concatenate([np.sum(qh * ph, axis=1, keepdims=True), qh @ nh.T], axis=1) / T
    loss, dL = ce_rows(L, np.zeros(n, dtype=np.int64))
    dqh = (dL[:, :1] * ph + dL[:, 1:] @ nh) / T
    dph = dL[:, :1] * qh / T
    dnh = dL[:, 1:].T @ qh / T
    grads = (l2_normalize_backward(q, dqh), l2_normalize_backward(p, dph), l2_normalize_backward(neg, dnh))
    return Ref(loss, grads, n)


def ref_nt_xent(args, kw):
    z1, z2 = f64(args[0]), f64(args[1])
    T = kw.get("temperature", 0.5)
    n = len(z1)
    zc = np.concatenate([z1, z2], axis=0)
    z = l2_normalize(zc)
    S = z @ z.T / T
    np.fill_diagonal(S, -np.inf)
    tgt = (np.arange(2 * n) + n) % (2 * n)
    loss, dS = ce_rows(S, tgt)
    dz = (dS + dS.T) @ z / T
    g = l2_normalize_backward(zc, dz)
    return Ref(loss, (g[:n], g[n:]), 2 * n)


def ref_mnrl(args, kw):
    a, p = f64(args[0]), f64(args[1])
    s = kw.get("scale", 20.0)
    ah, ph = l2_normalize(a), l2_normalize(p)
    L = s * ah @ ph.T
    loss, dL = ce_rows(L, np.arange(len(a)))
    return Ref(loss, (l2_normalize_backward(a, s * dL @ ph), l2_normalize_backward(p, s * dL.T @ ah)), len(a))


def _cos_eps(u, v):
    return float(u @ v) / (max(np.linalg.norm(u), 1e-12) * max(np.linalg.norm(v), 1e-12))


def ge2e_sim(E, w, b):
    """S_ji,k (S, U, S) by loops: the own-speaker centroid is the mean of the other utterances."""
    S, U, _ = E.shape
    C = E.mean(axis=1)
    sim = np.empty((S, U, S))
    for j in range(S):
        for i in range(U):
            e = E[j, i]
            others = np.mean(np.delete(E[j], i, axis=0), axis=0)
            for k in range(S):
                sim[j, i, k] = w * _cos_eps(e, others if k == j else C[k]) + b
    return sim


def ref_ge2e(args, kw):
    E = f64(args[0])
    w, b, method = kw.get("w", 10.0), kw.get("b", -5.0), kw.get("method", "softmax")
    S, U, _ = E.shape
    sim = ge2e_sim(E, w, b)
    loss = np.empty((S, U))
    for j in range(S):
        for i in range(U):
            row = sim[j, i]
            if method == "softmax":
                mx = np.max(row)
                loss[j, i] = -row[j] + mx + np.log(np.sum(np.exp(row - mx)))
            else:
                sg = expit(row)
                loss[j, i] = 1.0 - sg[j] + np.max(np.delete(sg, j))
    return Ref(loss, (None,), S * U)


def ref_arcface(args, kw):
    e, W, y = f64(args[0]), f64(args[1]), np.asarray(args[2], dtype=np.int64)
    s, m = kw.get("scale", 64.0), kw.get("margin", 0.5)
    eh, Wh = l2_normalize(e), l2_normalize(W)
    raw = eh @ Wh.T
    cosv = np.clip(raw, -1.0, 1.0)
    ar = np.arange(len(e))
    cy = cosv[ar, y]
    th, mm = np.cos(np.pi - m), np.sin(np.pi - m) * m
    sy = np.sqrt(np.maximum(0.0, 1.0 - cy * cy))
    branch = cy > th
    phi = np.where(branch, cy * np.cos(m) - sy * np.sin(m), cy - mm)
    logits = s * cosv
    logits[ar, y] = s * phi
    loss, dl = ce_rows(logits, y)
    dcos = s * dl
    with np.errstate(invalid="ignore", divide="ignore"):
        dphi = np.where(branch, np.cos(m) + np.sin(m) * cy / np.where(sy > 0, sy, 1.0), 1.0)
    dcos[ar, y] = s * dl[ar, y] * dphi
    dcos = dcos * (np.abs(raw) < 1.0)
    ge = l2_normalize_backward(e, dcos @ Wh)
    gW = l2_normalize_backward(W, dcos.T @ eh)
    return Ref(loss, (ge, gW), len(e))


def ref_kmeans(args, kw):
    x, c = f64(args[0]), f64(args[1])
    w = kw.get("sample_weight")
    w = np.ones(len(x)) if w is None else f64(w)
    diff = x[:, None, :] - c[None, :, :]
    D = np.sum(diff * diff, axis=-1)
    lab = np.argmin(D, axis=1)
    md = D[np.arange(len(x)), lab]
    gx = 2.0 * w[:, None] * (x - c[lab])
    gc = np.zeros_like(c)
    np.add.at(gc, lab, -gx)
    return Ref(w * md, (gx, gc), 1.0, lab)


# --------------------------------------------------------------------------------------------------
# Distances of an input to the nearest kink of the loss's derivative (finite differences and float32
# rounding must not cross one)


def kink_contrastive(args, kw):
    return float(np.min(np.linalg.norm(f64(args[0]) - f64(args[1]), axis=1), initial=np.inf))


def kink_pairwise_contrastive(args, kw):
    x = f64(args[0])
    D = ref_cdist(x, x, "euclidean") + np.diag(np.full(len(x), np.inf))
    return float(np.min(D, initial=np.inf))


def kink_triplet(args, kw):
    a, p, n = (f64(z) for z in args[:3])
    m, pn, eps = kw.get("margin", 1.0), kw.get("p", 2.0), kw.get("eps", 1e-6)
    d_ap, _ = _pnorm_dist(a, p, pn, eps)
    d_an, _ = _pnorm_dist(a, n, pn, eps)
    out = [np.inf]
    if kw.get("swap", False):
        d_pn, _ = _pnorm_dist(p, n, pn, eps)
        out.append(np.min(np.abs(d_pn - d_an), initial=np.inf))
        d_an = np.minimum(d_an, d_pn)
    out.append(np.min(np.abs(d_ap - d_an + m), initial=np.inf))
    if pn <= 1.0:  # the sign of each difference component (a kink at 0; 1e-4 is far for FD and float32)
        for u, v in ((a, p), (a, n), (p, n)):
            out.append(0.0 if np.min(np.abs(u - v + eps), initial=np.inf) < 1e-4 else np.inf)
    return float(min(out))


def kink_batch_hard(args, kw):
    x, lab = f64(args[0]), np.asarray(args[1])
    m = kw.get("margin", 1.0)
    D, valid, ip, ineg = batch_hard_indices(x, lab)
    out = [np.inf]
    n = len(x)
    same = lab[:, None] == lab[None, :]
    for i in np.flatnonzero(valid):
        dp = np.sort(D[i, same[i] & (np.arange(n) != i)])[::-1]
        dn = np.sort(D[i, ~same[i]])
        if len(dp) > 1:
            out.append(dp[0] - dp[1])
        if len(dn) > 1:
            out.append(dn[1] - dn[0])
        out += [abs(dp[0] - dn[0] + m), dp[0], dn[0]]
    return float(min(out))


def kink_cosine_embedding(args, kw):
    x1, x2, t = f64(args[0]), f64(args[1]), f64(args[2])
    cos = np.sum(x1 * x2, axis=1) / np.sqrt((np.sum(x1 * x1, 1) + 1e-12) * (np.sum(x2 * x2, 1) + 1e-12))
    return float(np.min(np.abs(cos - kw.get("margin", 0.0))[t == -1], initial=np.inf))


def kink_ge2e(args, kw):
    E = f64(args[0])
    if kw.get("method", "softmax") != "contrast" or E.shape[0] < 3:
        return np.inf
    sim = ge2e_sim(E, kw.get("w", 10.0), kw.get("b", -5.0))
    out = []
    for j in range(E.shape[0]):
        other = np.sort(np.delete(sim[j], j, axis=1), axis=1)
        out.append(np.min(other[:, -1] - other[:, -2]))
    return float(min(out))


def kink_arcface(args, kw):
    e, W, y = f64(args[0]), f64(args[1]), np.asarray(args[2])
    m = kw.get("margin", 0.5)
    cos = l2_normalize(e) @ l2_normalize(W).T
    cy = cos[np.arange(len(e)), y]
    return float(
        min(np.min(np.abs(cy - np.cos(np.pi - m)), initial=np.inf), np.min(1.0 - np.abs(cos), initial=np.inf))
    )


def kink_kmeans(args, kw):
    x, c = f64(args[0]), f64(args[1])
    if len(c) < 2:
        return np.inf
    D = np.sort(ref_cdist(x, c, "sqeuclidean"), axis=1)
    return float(np.min(D[:, 1] - D[:, 0], initial=np.inf))


def kink_none(args, kw):
    return np.inf


# --------------------------------------------------------------------------------------------------
# Random valid problems (float64; labels int64). `n` is the batch size (ge2e: utterances scale with n).


def unit_scale(rng, n, d):
    """Per-row scales so that distances are O(1) whatever d is."""
    return rng.uniform(0.3, 1.7, (n, 1)) / np.sqrt(max(d, 1))


def mk_contrastive(rng, n, d):
    x1 = rng.normal(0.0, 1.0, (n, d))
    x2 = x1 + rng.normal(0.0, 1.0, (n, d)) * unit_scale(rng, n, d)
    t = rng.integers(0, 2, n).astype(np.float64)
    t = np.where(rng.random(n) < 0.3, rng.random(n), t)
    return (x1, x2, t), {}


def mk_pairwise(rng, n, d):
    x = rng.normal(0.0, 0.8 / np.sqrt(d), (n, d))
    return (x, rng.integers(0, 3, n)), {}


def mk_triplet(rng, n, d):
    a = rng.normal(0.0, 1.0, (n, d))
    p = a + rng.normal(0.0, 1.0, (n, d)) * unit_scale(rng, n, d)
    neg = a + rng.normal(0.0, 1.3, (n, d)) * unit_scale(rng, n, d)
    return (a, p, neg), {}


def mk_batch_hard(rng, n, d):
    k = 1 if n < 4 else 2 + n // 12
    lab = np.arange(n) % k
    if n >= 7:
        lab[-1] = 99  # a singleton: no positive, still a negative of every other anchor
    lab = rng.permutation(lab)
    centers = rng.normal(0.0, 0.6 / np.sqrt(d), (100, d))
    x = centers[lab] + rng.normal(0.0, 0.6 / np.sqrt(d), (n, d))
    return (x, lab), {}


def mk_cosine(rng, n, d):
    x1 = rng.normal(0.0, 1.0, (n, d))
    x2 = 0.6 * x1 + rng.normal(0.0, 1.0, (n, d))
    return (x1, x2, rng.choice([-1.0, 1.0], n)), {}


def mk_info_nce(rng, n, d):
    q = rng.normal(0.0, 1.0, (n, d))
    return (q, q + rng.normal(0.0, 0.8, (n, d))), {}


def mk_info_nce_neg(rng, n, d):
    (q, p), _ = mk_info_nce(rng, n, d)
    return (q, p, rng.normal(0.0, 1.0, (n + 2, d))), {}


def mk_nt_xent(rng, n, d):
    z1 = rng.normal(0.0, 1.0, (n, d))
    return (z1, z1 + rng.normal(0.0, 0.7, (n, d))), {}


def mk_mnrl(rng, n, d):
    a = rng.normal(0.0, 1.0, (n, d))
    p = np.concatenate([a + rng.normal(0.0, 0.9, (n, d)), rng.normal(0.0, 1.0, (3, d))])
    return (a, p), {}


def mk_ge2e(rng, n, d):
    S, U = 2 + n % 3, max(2, n // 3)
    spk = rng.normal(0.0, 1.0, (S, 1, d))
    return (spk + rng.normal(0.0, 0.8, (S, U, d)),), {}


def mk_arcface(rng, n, d, C=5):
    W = rng.normal(0.0, 1.0, (C, d))
    y = rng.integers(0, C, n)
    e = 0.8 * W[y] + rng.normal(0.0, 0.7, (n, d))
    if n >= 2:  # one row on InsightFace's fallback branch (cos_y <= cos(pi - m))
        e[0] = -W[y[0]] + rng.normal(0.0, 0.05, d)
    return (e, W, y), {}


def mk_kmeans(rng, n, d, K=4):
    c = rng.normal(0.0, 2.0, (K, d))
    x = c[rng.integers(0, K, n)] + rng.normal(0.0, 1.0, (n, d))
    return (x, c), {}


def mk_kmeans_w(rng, n, d):
    (x, c), _ = mk_kmeans(rng, n, d)
    w = rng.uniform(0.2, 2.0, n)
    w[::5] = 0.0  # zero weights are allowed
    return (x, c), {"sample_weight": w}


@dataclass(frozen=True)
class PCase:
    id: str
    fn: str  # public name in fastloss
    make: Callable
    ref: Callable
    kink: Callable = kink_none
    kwargs: dict = field(default_factory=dict)
    float_args: tuple = (0, 1)  # positional float (embedding) arguments, in order: one gradient each
    reductions: tuple = tuple(REDUCTIONS)
    single_grad: bool = False  # the gradient is one array, not a tuple
    torch: bool = False  # torch_value_grad knows it

    def call(self, args, reduction="mean", return_grad=False, kw=None, **over):
        fn = getattr(fastloss, self.fn)
        kwargs = dict(self.kwargs, **(kw or {}), **over)
        if self.fn == "kmeans_inertia":
            return fn(*args, return_grad=return_grad, **kwargs)
        return fn(*args, reduction=reduction, return_grad=return_grad, **kwargs)

    def run(self, args, reduction="mean", kw=None, **over):
        """(value, grads tuple, labels or None) with return_grad=True."""
        out = self.call(args, reduction, True, kw, **over)
        assert isinstance(out, tuple), f"{self.fn}: return_grad=True must return a tuple"
        if self.fn == "kmeans_inertia":
            assert len(out) == 3, "kmeans_inertia(return_grad=True) -> (inertia, labels, (g_x, g_centers))"
            v, lab, g = out
        else:
            assert len(out) == 2
            (v, g), lab = out, None
        if self.single_grad:
            assert isinstance(g, np.ndarray), f"{self.fn}: a single embedding input gets a single array"
            g = (g,)
        else:
            assert isinstance(g, tuple), f"{self.fn}: the gradients must be a tuple, got {type(g).__name__}"
        assert len(g) == len(self.float_args), f"{self.fn}: {len(g)} gradients"
        return v, g, lab

    def value(self, args, reduction="mean", kw=None, **over):
        out = self.call(args, reduction, False, kw, **over)
        return out[0] if self.fn == "kmeans_inertia" else out

    def reference(self, args, kw=None):
        return self.ref(args, dict(self.kwargs, **(kw or {})))

    def kink_distance(self, args, kw=None):
        return self.kink(args, dict(self.kwargs, **(kw or {})))


CASES = [
    PCase("contrastive", "contrastive_loss", mk_contrastive, ref_contrastive, kink_contrastive),
    PCase(
        "contrastive_m2",
        "contrastive_loss",
        mk_contrastive,
        ref_contrastive,
        kink_contrastive,
        {"margin": 2.0},
    ),
    PCase(
        "contrastive_m0",
        "contrastive_loss",
        mk_contrastive,
        ref_contrastive,
        kink_contrastive,
        {"margin": 0.0},
    ),
    PCase(
        "pairwise_contrastive",
        "pairwise_contrastive_loss",
        mk_pairwise,
        ref_pairwise_contrastive,
        kink_pairwise_contrastive,
        float_args=(0,),
        reductions=("mean", "sum"),
        single_grad=True,
    ),
    PCase(
        "pairwise_contrastive_m0.7",
        "pairwise_contrastive_loss",
        mk_pairwise,
        ref_pairwise_contrastive,
        kink_pairwise_contrastive,
        {"margin": 0.7},
        float_args=(0,),
        reductions=("mean", "sum"),
        single_grad=True,
    ),
    PCase(
        "triplet",
        "triplet_margin_loss",
        mk_triplet,
        ref_triplet,
        kink_triplet,
        float_args=(0, 1, 2),
        torch=True,
    ),
    PCase(
        "triplet_p1_swap",
        "triplet_margin_loss",
        mk_triplet,
        ref_triplet,
        kink_triplet,
        {"p": 1.0, "swap": True, "margin": 0.5},
        float_args=(0, 1, 2),
        torch=True,
    ),
    PCase(
        "triplet_p3_eps0_swap",
        "triplet_margin_loss",
        mk_triplet,
        ref_triplet,
        kink_triplet,
        {"p": 3.0, "eps": 0.0, "swap": True, "margin": 0.3},
        float_args=(0, 1, 2),
        torch=True,
    ),
    PCase(
        "triplet_p1.5_m2",
        "triplet_margin_loss",
        mk_triplet,
        ref_triplet,
        kink_triplet,
        {"p": 1.5, "margin": 2.0, "eps": 1e-3},
        float_args=(0, 1, 2),
        torch=True,
    ),
    PCase(
        "batch_hard",
        "batch_hard_triplet_loss",
        mk_batch_hard,
        ref_batch_hard,
        kink_batch_hard,
        float_args=(0,),
        single_grad=True,
        torch=True,
    ),
    PCase(
        "batch_hard_m0.2",
        "batch_hard_triplet_loss",
        mk_batch_hard,
        ref_batch_hard,
        kink_batch_hard,
        {"margin": 0.2},
        float_args=(0,),
        single_grad=True,
        torch=True,
    ),
    PCase(
        "cosine_embedding",
        "cosine_embedding_loss",
        mk_cosine,
        ref_cosine_embedding,
        kink_cosine_embedding,
        torch=True,
    ),
    PCase(
        "cosine_embedding_m0.3",
        "cosine_embedding_loss",
        mk_cosine,
        ref_cosine_embedding,
        kink_cosine_embedding,
        {"margin": 0.3},
        torch=True,
    ),
    PCase(
        "cosine_embedding_m-0.4",
        "cosine_embedding_loss",
        mk_cosine,
        ref_cosine_embedding,
        kink_cosine_embedding,
        {"margin": -0.4},
        torch=True,
    ),
    PCase("info_nce", "info_nce", mk_info_nce, ref_info_nce, torch=True),
    PCase("info_nce_T1", "info_nce", mk_info_nce, ref_info_nce, kwargs={"temperature": 1.0}, torch=True),
    PCase(
        "info_nce_neg",
        "info_nce",
        mk_info_nce_neg,
        ref_info_nce,
        kwargs={"temperature": 0.5},
        float_args=(0, 1, 2),
        torch=True,
    ),
    PCase(
        "info_nce_neg_T0.07",
        "info_nce",
        mk_info_nce_neg,
        ref_info_nce,
        kwargs={"temperature": 0.07},
        float_args=(0, 1, 2),
        torch=True,
    ),
    PCase("nt_xent", "nt_xent", mk_nt_xent, ref_nt_xent, torch=True),
    PCase("nt_xent_T0.1", "nt_xent", mk_nt_xent, ref_nt_xent, kwargs={"temperature": 0.1}, torch=True),
    PCase("mnrl", "multiple_negatives_ranking_loss", mk_mnrl, ref_mnrl, torch=True),
    PCase("mnrl_s5", "multiple_negatives_ranking_loss", mk_mnrl, ref_mnrl, kwargs={"scale": 5.0}, torch=True),
    PCase("ge2e", "ge2e_loss", mk_ge2e, ref_ge2e, kink_ge2e, float_args=(0,), single_grad=True, torch=True),
    PCase(
        "ge2e_contrast",
        "ge2e_loss",
        mk_ge2e,
        ref_ge2e,
        kink_ge2e,
        {"method": "contrast", "w": 3.0, "b": 0.5},
        float_args=(0,),
        single_grad=True,
        torch=True,
    ),
    PCase("arcface", "arcface_loss", mk_arcface, ref_arcface, kink_arcface, torch=True),
    PCase(
        "arcface_s8_m0.2",
        "arcface_loss",
        mk_arcface,
        ref_arcface,
        kink_arcface,
        {"scale": 8.0, "margin": 0.2},
        torch=True,
    ),
    PCase(
        "arcface_m0",
        "arcface_loss",
        mk_arcface,
        ref_arcface,
        kink_arcface,
        {"scale": 16.0, "margin": 0.0},
        torch=True,
    ),
    PCase("kmeans", "kmeans_inertia", mk_kmeans, ref_kmeans, kink_kmeans, reductions=(None,)),
    PCase("kmeans_w", "kmeans_inertia", mk_kmeans_w, ref_kmeans, kink_kmeans, reductions=(None,)),
]


CASE_BY_ID = {c.id: c for c in CASES}


# one case per public function, for the generic layout / empty / nan / threads tests
ONE_PER_FN = [
    CASE_BY_ID[i]
    for i in (
        "contrastive",
        "pairwise_contrastive",
        "triplet_p1_swap",
        "batch_hard",
        "cosine_embedding",
        "info_nce",
        "info_nce_neg",
        "nt_xent",
        "mnrl",
        "ge2e",
        "ge2e_contrast",
        "arcface",
        "kmeans_w",
    )
]


ONE_IDS = [c.id for c in ONE_PER_FN]


def make_problem(case: PCase, n, d, seed, kink_min=2e-3):
    """A problem of `case` whose inputs stay at least `kink_min` away from any kink (by redrawing)."""
    rng = np.random.default_rng(seed)
    for _ in range(400):
        args, kw = case.make(rng, n, d)
        if kink_min <= 0 or case.kink_distance(args, kw) > kink_min:
            return args, kw
    raise AssertionError(f"{case.id}: no draw away from the kinks")  # pragma: no cover


def cast_args(case: PCase, args, kw, dtype):
    """Every float array (embeddings, float targets, sample_weight) cast to `dtype`; integer labels untouched.

    (Targets get the embeddings' dtype so that the compute dtype is unambiguous.)
    """

    def cast(v):
        return np.asarray(v, dtype=dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kw.items()}


def reduce_ref(ref: Ref, reduction):
    """(value, grads) the public function must return for `reduction` (None: kmeans' inertia)."""
    total = np.sum(ref.items)
    if reduction in (None, "sum"):
        return total, ref.grads
    if reduction == "none":
        return ref.items, ref.grads
    d = np.float64(ref.denom)
    if d == 0:  # nothing counted: the mean is nan; its gradient is not specified (shapes only)
        return np.float64(np.nan), tuple(None for _ in ref.grads)
    return total / d, tuple(None if g is None else g / d for g in ref.grads)


def value_atol(ref: Ref, reduction, rel):
    """Absolute slack: `rel` of the largest per-item loss (times the count for a sum)."""
    s = max(scale_of(ref.items), 1.0)  # losses are differences of O(1 / temperature) terms
    if reduction in (None, "sum"):
        s *= max(1, np.size(ref.items))
    return rel * s


# --------------------------------------------------------------------------------------------------
# PyTorch formulations (values and autograd gradients)


def torch_value_grad(torch, case: PCase, args, kw, reduction):
    """torch's (value, grads) for the problem, float64; grads of the sum of the outputs for 'none'."""
    F = torch.nn.functional
    kw = dict(case.kwargs, **kw)
    ts = [torch.tensor(f64(args[k]), requires_grad=True) for k in case.float_args]
    red = reduction

    def ce(logits, target):
        return F.cross_entropy(logits, torch.as_tensor(target, dtype=torch.int64), reduction=red)

    if case.fn == "triplet_margin_loss":
        out = F.triplet_margin_loss(
            *ts,
            margin=kw.get("margin", 1.0),
            p=kw.get("p", 2.0),
            eps=kw.get("eps", 1e-6),
            swap=kw.get("swap", False),
            reduction=red,
        )
    elif case.fn == "cosine_embedding_loss":
        out = F.cosine_embedding_loss(
            *ts, torch.tensor(f64(args[2])), margin=kw.get("margin", 0.0), reduction=red
        )
    elif case.fn == "info_nce":
        T = kw.get("temperature", 0.1)
        q, p = F.normalize(ts[0], dim=1), F.normalize(ts[1], dim=1)
        if len(ts) == 2:
            out = ce(q @ p.T / T, np.arange(len(q)))
        else:
            nn_ = F.normalize(ts[2], dim=1)
            logits = torch.cat([torch.sum(q * p, dim=1, keepdim=True), q @ nn_.T], dim=1) / T
            out = ce(logits, np.zeros(len(q), dtype=np.int64))
    elif case.fn == "nt_xent":
        T = kw.get("temperature", 0.5)
        n = ts[0].shape[0]
        z = F.normalize(torch.cat(ts, dim=0), dim=1)
        sim = (z @ z.T / T).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
        out = ce(sim, (np.arange(2 * n) + n) % (2 * n))
    elif case.fn == "multiple_negatives_ranking_loss":
        s = kw.get("scale", 20.0)
        out = ce(s * F.normalize(ts[0], dim=1) @ F.normalize(ts[1], dim=1).T, np.arange(ts[0].shape[0]))
    elif case.fn == "arcface_loss":
        s, m = kw.get("scale", 64.0), kw.get("margin", 0.5)
        y = torch.as_tensor(np.asarray(args[2]), dtype=torch.int64)
        cos = torch.clamp(F.normalize(ts[0], dim=1) @ F.normalize(ts[1], dim=1).T, -1.0, 1.0)
        cy = cos.gather(1, y[:, None])[:, 0]
        sy = torch.sqrt(torch.clamp(1.0 - cy * cy, min=0.0))
        phi = torch.where(cy > np.cos(np.pi - m), cy * np.cos(m) - sy * np.sin(m), cy - np.sin(np.pi - m) * m)
        onehot = F.one_hot(y, cos.shape[1]).to(torch.bool)
        logits = s * torch.where(onehot, phi[:, None], cos)
        out = ce(logits, np.asarray(args[2]))
    elif case.fn == "ge2e_loss":
        w, b, method = kw.get("w", 10.0), kw.get("b", -5.0), kw.get("method", "softmax")
        E = ts[0]
        S, U, _ = E.shape
        C = E.mean(dim=1)  # (S, d)
        own = (E.sum(dim=1, keepdim=True) - E) / (U - 1)  # (S, U, d)
        en = torch.clamp(E.norm(dim=2), min=1e-12)  # (S, U)
        cos_all = torch.einsum("jid,kd->jik", E, C) / (en[:, :, None] * torch.clamp(C.norm(dim=1), min=1e-12))
        cos_own = torch.sum(E * own, dim=2) / (en * torch.clamp(own.norm(dim=2), min=1e-12))
        mask = torch.eye(S, dtype=torch.bool)[:, None, :].expand(S, U, S)
        sim = w * torch.where(mask, cos_own[:, :, None], cos_all) + b
        if method == "softmax":
            loss = -torch.sum(torch.where(mask, sim, torch.zeros_like(sim)), dim=2) + torch.logsumexp(
                sim, dim=2
            )
        else:
            sg = torch.sigmoid(sim)
            own_s = torch.sum(torch.where(mask, sg, torch.zeros_like(sg)), dim=2)
            loss = 1.0 - own_s + torch.max(sg.masked_fill(mask, float("-inf")), dim=2).values
        out = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[red]
    elif case.fn == "batch_hard_triplet_loss":
        x = ts[0]
        lab = np.asarray(args[1])
        _, valid, ip, ineg = batch_hard_indices(args[0], lab)
        iv = torch.as_tensor(np.flatnonzero(valid))
        dp = (x[iv] - x[torch.as_tensor(ip[valid])]).norm(dim=1)
        dn = (x[iv] - x[torch.as_tensor(ineg[valid])]).norm(dim=1)
        lv = torch.relu(dp - dn + kw.get("margin", 1.0))
        full = torch.zeros(x.shape[0], dtype=x.dtype).index_put((iv,), lv)
        out = {"none": full, "sum": lv.sum(), "mean": lv.sum() / float(valid.sum())}[red]
    else:  # pragma: no cover
        raise KeyError(case.fn)
    (out.sum() if red == "none" else out).backward()
    return out.detach().numpy(), tuple(t.grad.numpy() for t in ts)


def pd_tols(dtype, want, metric):
    if np.dtype(dtype) == np.float32:
        return 1e-5, (2e-6 if metric == "cosine" else 1e-6 * max(scale_of(want), 1e-30))
    return 1e-12, (1e-14 if metric == "cosine" else 1e-14 * max(scale_of(want), 1e-300))


def _all_outputs(case, args, kw):
    out = []
    for reduction in case.reductions:
        v, g, lab = case.run(args, reduction, kw)
        out += [np.asarray(v), *g]
        if lab is not None:
            out.append(lab)
    return out
