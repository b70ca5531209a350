"""Pairwise / metric-learning family: pairwise_distances, contrastive_loss, pairwise_contrastive_loss,
triplet_margin_loss, batch_hard_triplet_loss, cosine_embedding_loss, info_nce, nt_xent,
multiple_negatives_ranking_loss, ge2e_loss, arcface_loss, kmeans_inertia.

References: direct full-matrix NumPy formulations in float64 written here from the definitions (never
fastloss._numpy), SciPy's cdist, PyTorch (torch.cdist, torch.nn.functional losses, and autograd through
logits built here, then F.cross_entropy), scikit-learn's KMeans, central finite differences for the
gradients, and hypothesis properties. The optional libraries skip cleanly when missing.

Conventions checked (spec, DESIGN.md): reduction mean/sum/none with 'none' returning the gradient of
the sum of its outputs; empty batches (mean nan, sum 0); float32 computed within ~1e-5 relative of the
float64 result on the same inputs; any memory layout gives the same result as a contiguous copy;
inputs are never modified; NaN propagates; bitwise determinism across thread counts (cpp).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import pytest
from conftest import (
    DTYPE_IDS,
    DTYPES,
    LAYOUTS,
    REDUCTIONS,
    assert_close,
    f64,
    fd_grad,
    hypothesis_settings,
    needs_core,
    optional_module,
    relayout,
    run_concurrently,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

import fastloss

METRICS = ["euclidean", "sqeuclidean", "cosine", "manhattan"]
SCIPY_METRIC = {
    "euclidean": "euclidean",
    "sqeuclidean": "sqeuclidean",
    "cosine": "cosine",
    "manhattan": "cityblock",
}
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
CASE_IDS = [c.id for c in CASES]
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


def expected_none_shape(case: PCase, args):
    if case.fn == "nt_xent":
        return (2 * len(args[0]),)
    if case.fn == "ge2e_loss":
        return np.shape(args[0])[:2]
    return (len(args[0]),)


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


# ==================================================================================================
# 1. pairwise_distances


# (3, 70, 40000): rows so wide that the column panels (64 d values each, however few rows) would take
# more than 16 MiB, so each k-chunk is packed on the fly (pairwise.hpp, kMaxPackBytes): 3 rows, 70 rows.
PD_SHAPES = [(1, 1, 1), (5, 7, 3), (17, 4, 7), (40, 33, 5), (3, 0, 4), (0, 6, 2), (3, 70, 40000)]


def _pd_problem(shape, seed, dtype=np.float64):
    N, M, d = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, (N, d)).astype(dtype)
    y = rng.normal(0.0, 2.0, (M, d)).astype(dtype)
    return x, y


def pd_tols(dtype, want, metric):
    if np.dtype(dtype) == np.float32:
        return 1e-5, (2e-6 if metric == "cosine" else 1e-6 * max(scale_of(want), 1e-30))
    return 1e-12, (1e-14 if metric == "cosine" else 1e-14 * max(scale_of(want), 1e-300))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", PD_SHAPES, ids=str)
def test_pairwise_distances_matches_reference(backend, shape, metric, dtype):
    x, y = _pd_problem(shape, _seed("pd", shape), dtype)
    got = fastloss.pairwise_distances(x, y, metric=metric)
    want = ref_cdist(x, y, metric)
    assert got.dtype == dtype and got.shape == (shape[0], shape[1])
    rtol, atol = pd_tols(dtype, want, metric)
    assert_close(got, want, rtol, atol, what=metric)
    # y=None means y = x
    got_xx = fastloss.pairwise_distances(x, metric=metric)
    rtol, atol = pd_tols(dtype, ref_cdist(x, x, metric), metric)
    assert_close(got_xx, ref_cdist(x, x, metric), rtol, atol, what=f"{metric} y=None")
    np.testing.assert_array_equal(got_xx, fastloss.pairwise_distances(x, x, metric=metric))
    if metric != "cosine":  # exact differences: the diagonal of D(x, x) is exactly 0
        np.testing.assert_array_equal(np.diagonal(got_xx), np.zeros(shape[0], dtype))
    if metric == "euclidean":  # the default metric
        np.testing.assert_array_equal(fastloss.pairwise_distances(x, y), got)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (6, 9, 4), (40, 27, 7)], ids=str)
def test_pairwise_distances_matches_scipy(backend, shape, metric, dtype):
    sd = pytest.importorskip("scipy.spatial.distance")
    x, y = _pd_problem(shape, _seed("pd-scipy", shape), dtype)
    got = fastloss.pairwise_distances(x, y, metric=metric)
    want = sd.cdist(f64(x), f64(y), SCIPY_METRIC[metric])
    rtol, atol = pd_tols(dtype, want, metric)
    assert_close(got, want, rtol, atol, what=metric)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "manhattan"])
def test_pairwise_distances_matches_torch_cdist(backend, torch, metric):
    x, y = _pd_problem((23, 11, 6), _seed("pd-torch", metric))
    p = 1.0 if metric == "manhattan" else 2.0
    want = torch.cdist(
        torch.tensor(x), torch.tensor(y), p=p, compute_mode="donot_use_mm_for_euclid_dist"
    ).numpy()
    if metric == "sqeuclidean":
        want = want**2
    assert_close(fastloss.pairwise_distances(x, y, metric=metric), want, 1e-12, 1e-13 * scale_of(want))


@pytest.mark.parametrize("offset", [0.0, 1e3, -3e3])
def test_pairwise_distances_near_duplicates_float64(backend, offset):
    """No cancellation: x and x + 1e-6 noise far from the origin keep the tiny distance to ~1e-6 relative
    (the |x|^2 + |y|^2 - 2 x.y expansion would lose it entirely)."""
    rng = np.random.default_rng(_seed("near-dup", offset))
    x = offset + rng.normal(0.0, 1.0, (9, 5))
    y = x + 1e-6 * rng.normal(0.0, 1.0, x.shape)
    diff = x - y  # exact-ish small differences: the reference
    tiny = np.sqrt(np.sum(diff * diff, axis=1))
    for metric, want_diag in (
        ("euclidean", tiny),
        ("sqeuclidean", tiny**2),
        ("manhattan", np.sum(np.abs(diff), axis=1)),
    ):
        got = fastloss.pairwise_distances(x, y, metric=metric)
        assert_close(np.diagonal(got), want_diag, rtol=1e-6, what=f"{metric} diagonal")
        assert_close(got, ref_cdist(x, y, metric), rtol=1e-6, atol=0.0, what=metric)
        assert_close(
            fastloss.pairwise_distances(y, x, metric=metric), got.T, rtol=1e-6, what=f"{metric} transposed"
        )
    sd = optional_module("scipy.spatial.distance")
    if sd is not None:
        assert_close(np.diagonal(fastloss.pairwise_distances(x, y)), np.diagonal(sd.cdist(x, y)), rtol=1e-6)


def test_pairwise_distances_near_duplicates_float32(backend):
    """float32 rows a few ulp apart, far from the origin: differences are exact in float32, so the
    distances must be within 1e-5 of the float64 values (an expansion in float32 would return noise)."""
    rng = np.random.default_rng(11)
    x = (1e3 + rng.normal(0.0, 1.0, (12, 6))).astype(np.float32)
    steps = rng.integers(1, 4, x.shape) * rng.choice([-1, 1], x.shape)
    y = (x + steps * np.spacing(x)).astype(np.float32)
    for metric in ("euclidean", "sqeuclidean", "manhattan"):
        got = fastloss.pairwise_distances(x, y, metric=metric)
        want = ref_cdist(x, y, metric)
        assert got.dtype == np.float32
        assert_close(np.diagonal(got), np.diagonal(want), rtol=1e-5, what=f"{metric} diagonal")
        assert_close(got, want, rtol=1e-5, what=metric)


@pytest.mark.parametrize("magnitude", [1e20, 1e-22], ids=["huge", "tiny"])
def test_pairwise_distances_float32_extreme_magnitudes(backend, magnitude):
    """float32 inputs whose squares leave the float32 range (but whose distances do not): the result is
    the float64 result on the same values, rounded to float32 (the NumPy backend computes in float64)."""
    rng = np.random.default_rng(_seed("extreme", magnitude))
    x = (magnitude * rng.normal(size=(5, 4))).astype(np.float32)
    y = (magnitude * rng.normal(size=(3, 4))).astype(np.float32)
    for metric in METRICS:
        with np.errstate(over="ignore", under="ignore"):
            want = ref_cdist(x, y, metric).astype(np.float32)
            got = fastloss.pairwise_distances(x, y, metric=metric)
            got_xx = fastloss.pairwise_distances(x, metric=metric)
            want_xx = ref_cdist(x, x, metric).astype(np.float32)
        assert_close(got, want, rtol=1e-5, atol=2e-6 if metric == "cosine" else 0.0, what=metric)
        assert_close(
            got_xx, want_xx, rtol=1e-5, atol=2e-6 if metric == "cosine" else 0.0, what=f"{metric} x, x"
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pairwise_distances_zero_vectors(backend, dtype):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(4, 3)).astype(dtype)
    y = rng.normal(size=(5, 3)).astype(dtype)
    x[1] = 0.0
    y[3] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = fastloss.pairwise_distances(x, y, metric="cosine")
    nan = np.zeros((4, 5), dtype=bool)
    nan[1, :] = True
    nan[:, 3] = True
    np.testing.assert_array_equal(np.isnan(cos), nan, err_msg="cosine distance of a zero vector is 0/0 = nan")
    assert_close(cos[~nan], ref_cdist(x, y, "cosine")[~nan], 1e-5 if dtype == np.float32 else 1e-12, 2e-6)
    for metric in ("euclidean", "sqeuclidean", "manhattan"):
        got = fastloss.pairwise_distances(x, y, metric=metric)
        assert np.isfinite(got).all()
        rtol, atol = pd_tols(dtype, got, metric)
        assert_close(got, ref_cdist(x, y, metric), rtol, atol, what=metric)
    # a vector with itself, and parallel / antiparallel vectors
    u = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [-1.0, -2.0, -3.0]], dtype=dtype)
    got = fastloss.pairwise_distances(u, metric="cosine")
    assert_close(got, [[0, 0, 2], [0, 0, 2], [2, 2, 0]], rtol=0, atol=1e-6 if dtype == np.float32 else 1e-14)
    assert (got >= 0).all() and (got <= 2).all()  # clipped


def test_pairwise_distances_dtypes(backend):
    rng = np.random.default_rng(13)
    x = rng.normal(size=(5, 3))
    y = rng.normal(size=(4, 3))
    d32 = fastloss.pairwise_distances(x.astype(np.float32), y.astype(np.float32))
    assert d32.dtype == np.float32
    d16 = fastloss.pairwise_distances(x.astype(np.float16), y.astype(np.float16))
    assert d16.dtype == np.float32
    np.testing.assert_array_equal(
        d16,
        fastloss.pairwise_distances(
            x.astype(np.float16).astype(np.float32), y.astype(np.float16).astype(np.float32)
        ),
    )
    xi = rng.integers(-5, 5, (5, 3))
    di = fastloss.pairwise_distances(xi, metric="manhattan")
    assert di.dtype == np.float64
    np.testing.assert_array_equal(di, ref_cdist(xi, xi, "manhattan"))
    mixed = fastloss.pairwise_distances(x.astype(np.float32), y)
    assert mixed.dtype == np.float64  # np.result_type(float32, float64)
    assert_close(mixed, ref_cdist(x.astype(np.float32), y, "euclidean"), 1e-12)
    lists = fastloss.pairwise_distances([[0.0, 0.0], [3.0, 4.0]], [[0.0, 0.0]])
    np.testing.assert_array_equal(lists, [[0.0], [5.0]])
    b = fastloss.pairwise_distances(np.array([[True, False], [False, False]]), metric="sqeuclidean")
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, [[0.0, 1.0], [1.0, 0.0]])


def test_pairwise_distances_nan_propagates(backend):
    rng = np.random.default_rng(14)
    x = rng.normal(size=(4, 3))
    y = rng.normal(size=(5, 3))
    x[2, 1] = np.nan
    y[0, 0] = np.inf
    for metric in METRICS:
        with np.errstate(invalid="ignore"):
            got = fastloss.pairwise_distances(x, y, metric=metric)
        assert np.isnan(got[2]).all(), metric
        assert not np.isnan(got[np.ix_([0, 1, 3], [1, 2, 3, 4])]).any(), metric
        if metric != "cosine":
            assert np.isinf(got[[0, 1, 3], 0]).all(), metric


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pairwise_distances_layouts(backend, dtype, kind):
    x, y = _pd_problem((9, 6, 5), _seed("pd-layout"), dtype)
    x[3] = 0.0
    for metric in METRICS:
        with np.errstate(invalid="ignore"):
            want = fastloss.pairwise_distances(x, y, metric=metric)
            got = fastloss.pairwise_distances(relayout(x, kind), relayout(y, kind), metric=metric)
            got_xx = fastloss.pairwise_distances(relayout(x, kind), metric=metric)
            want_xx = fastloss.pairwise_distances(x, metric=metric)
        np.testing.assert_array_equal(got, want, err_msg=metric)
        np.testing.assert_array_equal(got_xx, want_xx, err_msg=metric)
    # a transposed view is an (N, d) Fortran array of other values
    xt = np.ascontiguousarray(x.T).T
    np.testing.assert_array_equal(fastloss.pairwise_distances(xt, y), fastloss.pairwise_distances(x, y))


def test_pairwise_distances_does_not_modify_inputs(backend):
    x, y = _pd_problem((7, 5, 3), 15)
    x0, y0 = x.copy(), y.copy()
    for metric in METRICS:
        fastloss.pairwise_distances(x, y, metric=metric)
        fastloss.pairwise_distances(x, metric=metric)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    out = fastloss.pairwise_distances(x, y)
    assert not np.shares_memory(out, x) and not np.shares_memory(out, y)


@pytest.mark.parametrize(
    ("call", "exc", "pattern"),
    [
        (lambda: fastloss.pairwise_distances(np.ones(3)), ValueError, r"(?i)2-?d|ndim|dimension"),
        (lambda: fastloss.pairwise_distances(np.ones((2, 3, 4))), ValueError, r"(?i)2-?d|ndim|dimension"),
        (
            lambda: fastloss.pairwise_distances(np.ones((2, 3)), np.ones(3)),
            ValueError,
            r"(?i)2-?d|ndim|dimension",
        ),
        (
            lambda: fastloss.pairwise_distances(np.ones((2, 3)), np.ones((2, 4))),
            ValueError,
            r"\(2, 3\)[\s\S]*\(2, 4\)|\(2, 4\)[\s\S]*\(2, 3\)",
        ),
        (
            lambda: fastloss.pairwise_distances(np.ones((2, 3)), metric="chebyshev"),
            ValueError,
            "chebyshev|metric",
        ),
        (lambda: fastloss.pairwise_distances(np.ones((2, 3)), metric=2), (TypeError, ValueError), "metric"),
        (lambda: fastloss.pairwise_distances(np.ones((2, 3)) * 1j), TypeError, "complex|real"),
        (lambda: fastloss.pairwise_distances(np.array([["a", "b"]])), TypeError, "real|dtype"),
    ],
    ids=["1d", "3d", "y1d", "d_mismatch", "unknown_metric", "metric_type", "complex", "str"],
)
def test_pairwise_distances_errors(backend, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_pairwise_distances_unknown_metric_lists_valid_ones(backend):
    with pytest.raises(ValueError) as e:
        fastloss.pairwise_distances(np.ones((2, 3)), metric="hamming")
    for name in METRICS:
        assert name in str(e.value), f"the message should list {name!r}: {e.value}"


# ==================================================================================================
# 2. The losses: values against the references, gradients, reductions


VALUE_SIZES = [(1, 3), (2, 2), (6, 4), (37, 7)]


@pytest.mark.parametrize("nd", VALUE_SIZES, ids=lambda s: f"n{s[0]}d{s[1]}")
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_values_and_gradients_match_numpy_reference(backend, case, nd):
    n, d = nd
    args, kw = make_problem(case, n, d, _seed("val", case.id, nd))
    ref = case.reference(args, kw)
    for reduction in case.reductions:
        v, grads, lab = case.run(args, reduction, kw)
        want, want_g = reduce_ref(ref, reduction)
        what = f"{case.id} reduction={reduction}"
        if reduction == "none":
            assert isinstance(v, np.ndarray) and v.shape == expected_none_shape(case, args), what
            assert v.dtype == np.float64
        else:
            assert isinstance(v, np.float64), (
                f"{what}: a reduced value is a NumPy float64 scalar, got {type(v)}"
            )
        assert_close(v, want, rtol=1e-10, atol=value_atol(ref, reduction, 1e-12), what=what)
        for k, (g, wg) in enumerate(zip(grads, want_g)):
            a = np.asarray(args[case.float_args[k]])
            assert g.shape == a.shape and g.dtype == np.float64, f"{what}: gradient {k}"
            if wg is not None:
                assert_close(g, wg, rtol=1e-9, atol=1e-11 * max(scale_of(wg), 1.0), what=f"{what} grad {k}")
        if lab is not None:
            np.testing.assert_array_equal(lab, ref.labels)
        # the value does not depend on whether the gradient is asked for
        np.testing.assert_array_equal(case.value(args, reduction, kw), v, err_msg=what)


# Rows so wide that the column panels would take more than 16 MiB and are packed a k-chunk at a time
# (pairwise.hpp, kMaxPackBytes), and the gradient rows run on fewer threads: 3 rows, 70 rows.
@pytest.mark.parametrize("nd", [(3, 40000), (70, 40000)], ids=lambda s: f"n{s[0]}d{s[1]}")
@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_wide_rows_match_numpy_reference(backend, case, nd):
    n, d = nd
    args, kw = make_problem(case, n, d, _seed("wide", case.id, nd), kink_min=0)
    ref = case.reference(args, kw)
    v, grads, lab = case.run(args, "mean", kw)
    want, want_g = reduce_ref(ref, "mean")
    assert_close(v, want, rtol=1e-10, atol=value_atol(ref, "mean", 1e-12), what=case.id)
    for k, (g, wg) in enumerate(zip(grads, want_g)):
        if wg is not None:
            assert_close(g, wg, rtol=1e-9, atol=1e-11 * max(scale_of(wg), 1.0), what=f"{case.id} grad {k}")
    if lab is not None:
        np.testing.assert_array_equal(lab, ref.labels)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradients_finite_differences(backend, case):
    """Central differences of the public function itself, every reduction ('none': of the sum)."""
    n, d = (4, 3) if case.fn == "ge2e_loss" else (5, 3)
    args, kw = make_problem(case, n, d, _seed("fd", case.id), kink_min=1e-3)
    for reduction in case.reductions:
        _, grads, _ = case.run(args, reduction, kw)
        for k, g in zip(case.float_args, grads):

            def f(z, k=k, reduction=reduction):
                a = list(args)
                a[k] = z
                return float(np.sum(case.value(tuple(a), reduction, kw)))

            want = fd_grad(f, f64(args[k]))
            assert_close(
                g,
                want,
                rtol=1e-5,
                atol=1e-7 * max(1.0, scale_of(want)),
                what=f"{case.id} {reduction} input {k}",
            )


@pytest.mark.parametrize("nd", [(1, 3), (7, 4), (29, 6)], ids=lambda s: f"n{s[0]}d{s[1]}")
@pytest.mark.parametrize("case", [c for c in CASES if c.torch], ids=[c.id for c in CASES if c.torch])
def test_values_and_gradients_match_torch(backend, torch, case, nd):
    n, d = nd
    args, kw = make_problem(case, n, d, _seed("torch", case.id, nd))
    for reduction in case.reductions:
        if case.fn == "batch_hard_triplet_loss" and reduction == "mean" and n == 1:
            continue  # no valid anchor: covered by test_batch_hard_no_valid_anchor
        v, grads, _ = case.run(args, reduction, kw)
        want, want_g = torch_value_grad(torch, case, args, kw, reduction)
        what = f"{case.id} reduction={reduction}"
        assert_close(v, want, rtol=1e-10, atol=1e-12 * max(1.0, scale_of(want)) * max(1, n), what=what)
        for k, (g, wg) in enumerate(zip(grads, want_g)):
            assert_close(g, wg, rtol=1e-9, atol=1e-11 * max(scale_of(wg), 1.0), what=f"{what} grad {k}")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_float32_close_to_float64(backend, case):
    """float32 inputs: float32 results within ~1e-5 relative of the float64 reference on the same values."""
    args, kw = make_problem(case, 23, 5, _seed("f32", case.id), kink_min=1e-2)
    a32, kw32 = cast_args(case, args, kw, np.float32)
    ref = case.reference(a32, kw32)  # f64() of the float32 values
    for reduction in case.reductions:
        v, grads, lab = case.run(a32, reduction, kw32)
        want, want_g = reduce_ref(ref, reduction)
        what = f"{case.id} reduction={reduction}"
        if reduction == "none":
            assert v.dtype == np.float32, what
        else:
            assert isinstance(v, np.float32), (
                f"{what}: a reduced value is a NumPy float32 scalar, got {type(v)}"
            )
        assert_close(v, want, rtol=1e-5, atol=value_atol(ref, reduction, 1e-5), what=what)
        for k, (g, wg) in enumerate(zip(grads, want_g)):
            assert g.dtype == np.float32, f"{what} grad {k}"
            if wg is None:  # ge2e: the float64 gradient on the same values (checked against torch and FD)
                wg = case.run(
                    tuple(f64(a) if i in case.float_args else a for i, a in enumerate(a32)), reduction, kw
                )[1][k]
                if wg is None:
                    continue
            assert_close(g, wg, rtol=1e-5, atol=1e-5 * scale_of(wg), what=f"{what} grad {k}")
        if lab is not None:
            np.testing.assert_array_equal(lab, ref.labels)


@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_float16_integer_and_list_inputs(backend, case):
    args, kw = make_problem(case, 6, 3, _seed("f16", case.id))
    a16, kw16 = cast_args(case, args, kw, np.float16)
    a32, kw32 = cast_args(
        case,
        tuple(f64(a) if a.dtype == np.float16 else a for a in a16),
        {k: (f64(v) if isinstance(v, np.ndarray) and v.dtype == np.float16 else v) for k, v in kw16.items()},
        np.float32,
    )
    for reduction in case.reductions:
        v16, g16, _ = case.run(a16, reduction, kw16)
        v32, g32, _ = case.run(a32, reduction, kw32)
        assert np.asarray(v16).dtype == np.float32
        np.testing.assert_array_equal(v16, v32)
        for a, b in zip(g16, g32):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a, b)
    # integer embeddings compute in float64; nested lists work like arrays
    ai = tuple(np.round(4 * a).astype(np.int64) if i in case.float_args else a for i, a in enumerate(args))
    af = tuple(f64(a) if i in case.float_args else a for i, a in enumerate(ai))
    red = case.reductions[0]
    vi = case.value(ai, red, kw)
    assert np.asarray(vi).dtype == np.float64
    np.testing.assert_array_equal(vi, case.value(af, red, kw))
    al = tuple(a.tolist() for a in af)
    kwl = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    np.testing.assert_array_equal(case.value(al, red, kwl), case.value(af, red, kw))


@pytest.mark.parametrize(
    "case", [c for c in CASES if "none" in c.reductions], ids=[c.id for c in CASES if "none" in c.reductions]
)
def test_reductions_consistent(backend, case):
    """sum == sum(none); mean == sum / count; gradients likewise (the count of the spec for each loss)."""
    args, kw = make_problem(case, 11, 4, _seed("red", case.id))
    vn, gn, _ = case.run(args, "none", kw)
    vs, gs, _ = case.run(args, "sum", kw)
    vm, gm, _ = case.run(args, "mean", kw)
    denom = case.reference(args, kw).denom
    assert_close(vs, np.sum(vn), rtol=1e-12, atol=1e-14 * np.sum(np.abs(vn)))
    assert_close(vm, np.sum(vn) / denom, rtol=1e-12, atol=1e-14 * np.sum(np.abs(vn)))
    for a, b, c in zip(gn, gs, gm):
        assert_close(a, b, rtol=1e-12, atol=1e-14 * scale_of(b))
        assert_close(c, b / denom, rtol=1e-12, atol=1e-14 * scale_of(b))


# ==================================================================================================
# 3. Per-function behaviour: edge cases the generic tests do not reach


def empty_problem(case: PCase, d=3):
    """Inputs of `case` with an empty batch (N = 0)."""
    z = np.zeros((0, d))
    fn = case.fn
    if fn in ("contrastive_loss", "cosine_embedding_loss"):
        return (z, z, np.zeros(0)), {}
    if fn in ("pairwise_contrastive_loss", "batch_hard_triplet_loss"):
        return (z, np.zeros(0, dtype=np.int64)), {}
    if fn == "triplet_margin_loss":
        return (z, z, z), {}
    if fn == "info_nce":
        return ((z, z) if len(case.float_args) == 2 else (z, z, np.ones((4, d)))), {}
    if fn == "nt_xent":
        return (z, z), {}
    if fn == "multiple_negatives_ranking_loss":
        return (z, np.ones((2, d))), {}  # M = 2 >= N = 0
    if fn == "arcface_loss":
        return (z, np.ones((4, d)), np.zeros(0, dtype=np.int64)), {}
    if fn == "kmeans_inertia":
        return (z, np.ones((3, d))), ({"sample_weight": np.zeros(0)} if case.id == "kmeans_w" else {})
    raise KeyError(fn)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "case",
    [c for c in ONE_PER_FN if c.fn != "ge2e_loss"],
    ids=[c.id for c in ONE_PER_FN if c.fn != "ge2e_loss"],
)
def test_empty_batch(backend, case, dtype):
    args, kw = empty_problem(case)
    args, kw = cast_args(case, args, kw, dtype)
    for reduction in case.reductions:
        v, grads, lab = case.run(args, reduction, kw)
        for k, g in zip(case.float_args, grads):
            assert g.shape == np.shape(args[k]) and g.dtype == dtype
            if reduction != "mean":
                np.testing.assert_array_equal(g, np.zeros_like(g))
        if reduction == "mean":
            assert np.isnan(v) and isinstance(v, np.dtype(dtype).type), f"{case.id}: empty mean is nan"
        elif reduction in ("sum", None):
            assert v == 0 and isinstance(v, np.dtype(dtype).type), f"{case.id}: empty sum is 0"
        else:
            assert isinstance(v, np.ndarray) and v.shape == (0,), case.id
        if lab is not None:
            assert lab.shape == (0,) and lab.dtype.kind in "iu"


def test_empty_similarity_batches(backend):
    """Empty batches of the similarity losses with no column at all (M = 0), and negatives with no row."""
    z = np.zeros((0, 3))
    for call in (
        lambda red: fastloss.multiple_negatives_ranking_loss(z, z, reduction=red, return_grad=True),
        lambda red: fastloss.info_nce(z, z, z, reduction=red, return_grad=True),
        lambda red: fastloss.info_nce(z, z, reduction=red, return_grad=True),
        lambda red: fastloss.nt_xent(z, z, reduction=red, return_grad=True),
    ):
        v, grads = call("sum")
        assert v == 0.0 and all(g.shape == (0, 3) for g in grads)
        assert np.isnan(call("mean")[0])
        assert call("none")[0].shape == (0,)
    # negatives with no row: every query's only logit is its positive -> loss 0, gradient 0
    rng = np.random.default_rng(27)
    q, p = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    v, (gq, gp, gn) = fastloss.info_nce(q, p, z, reduction="none", return_grad=True)
    np.testing.assert_array_equal(v, np.zeros(4))
    np.testing.assert_array_equal(gq, np.zeros_like(q))
    np.testing.assert_array_equal(gp, np.zeros_like(p))
    assert gn.shape == (0, 3)


def test_pairwise_contrastive_small_batches(backend):
    x = np.array([[1.0, 2.0]])
    for lab in ([0], [3]):
        v, g = fastloss.pairwise_contrastive_loss(x, lab, return_grad=True)
        assert np.isnan(v), "N = 1: no pair, mean nan"
        np.testing.assert_array_equal(g.shape, (1, 2))
        v, g = fastloss.pairwise_contrastive_loss(x, lab, reduction="sum", return_grad=True)
        assert v == 0.0
        np.testing.assert_array_equal(g, [[0.0, 0.0]])
    # N = 2 by hand: similar pair 0.5 d^2, dissimilar 0.5 max(0, m - d)^2
    x = np.array([[0.0, 0.0], [0.3, 0.4]])  # d = 0.5
    assert_close(fastloss.pairwise_contrastive_loss(x, [1, 1]), 0.125, rtol=1e-14)
    assert_close(fastloss.pairwise_contrastive_loss(x, [1, 2]), 0.125, rtol=1e-14)
    assert_close(fastloss.pairwise_contrastive_loss(x, [1, 2], margin=2.0), 0.5 * 1.5**2, rtol=1e-14)
    assert fastloss.pairwise_contrastive_loss(x, [1, 2], margin=0.5) == 0.0
    v, g = fastloss.pairwise_contrastive_loss(x, [1, 1], return_grad=True)
    assert_close(g, [[-0.3, -0.4], [0.3, 0.4]], rtol=1e-14)


@pytest.mark.parametrize("labels", ["all_equal", "all_distinct"])
def test_pairwise_contrastive_one_kind_of_pair(backend, labels):
    rng = np.random.default_rng(_seed("pc-one", labels))
    x = rng.normal(0.0, 0.3, (9, 4))
    lab = np.zeros(9, dtype=np.int64) if labels == "all_equal" else np.arange(9) * 7 - 20
    D = ref_cdist(x, x, "euclidean")[np.triu_indices(9, 1)]
    want = np.sum(0.5 * D**2) if labels == "all_equal" else np.sum(0.5 * np.maximum(0.0, 1.0 - D) ** 2)
    ref = ref_pairwise_contrastive((x, lab), {})
    assert_close(want, np.sum(ref.items), rtol=1e-14)
    for reduction, w in (("sum", want), ("mean", want / 36)):
        v, g = fastloss.pairwise_contrastive_loss(x, lab, reduction=reduction, return_grad=True)
        assert_close(v, w, rtol=1e-12)
        assert_close(g, ref.grads[0] / (36 if reduction == "mean" else 1), rtol=1e-10, atol=1e-14)


def test_pairwise_contrastive_near_duplicates(backend):
    """Tiny clusters far from the origin: the similar-pair terms 0.5 d^2 with d ~ 1e-4 keep ~1e-6 relative
    accuracy (exact differences), as do the gradients."""
    rng = np.random.default_rng(16)
    x = 1e3 + 1e-4 * rng.normal(size=(8, 5))
    lab = np.zeros(8, dtype=np.int64)
    ref = ref_pairwise_contrastive((x, lab), {})
    v, g = fastloss.pairwise_contrastive_loss(x, lab, reduction="sum", return_grad=True)
    assert_close(v, np.sum(ref.items), rtol=1e-6)
    assert_close(g, ref.grads[0], rtol=1e-6, atol=1e-6 * scale_of(ref.grads[0]))


def test_pairwise_contrastive_zero_distance_subgradient(backend):
    """A dissimilar pair at distance 0 (duplicate rows) has gradient 0 there; value 0.5 m^2."""
    x = np.array([[1.0, 2.0], [1.0, 2.0], [4.0, 6.0]])
    v, g = fastloss.pairwise_contrastive_loss(x, [0, 1, 0], reduction="sum", margin=1.0, return_grad=True)
    # pairs: (0,1) dissimilar d=0 -> 0.5; (0,2) similar d=5 -> 12.5; (1,2) dissimilar d=5 -> 0
    assert_close(v, 13.0, rtol=1e-14)
    assert_close(g, [[-3.0, -4.0], [0.0, 0.0], [3.0, 4.0]], rtol=1e-14)
    assert np.isfinite(g).all()


def test_contrastive_by_hand(backend):
    x1 = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    x2 = np.array([[0.3, 0.4], [0.3, 0.4], [3.0, 4.0], [1.0, 1.0]])
    t = np.array([1.0, 0.0, 0.0, 0.0])
    v = fastloss.contrastive_loss(x1, x2, t, reduction="none")
    # d = 0.5, 0.5, 5, 0 ; margin 1
    assert_close(v, [0.125, 0.125, 0.0, 0.5], rtol=1e-14)
    _, (g1, g2) = fastloss.contrastive_loss(x1, x2, t, reduction="none", return_grad=True)
    # row 1: -(m - d)/d (x1 - x2) = -(0.5/0.5) * (-0.3, -0.4); row 3: d = 0 -> subgradient 0
    assert_close(g1, [[-0.3, -0.4], [0.3, 0.4], [0.0, 0.0], [0.0, 0.0]], rtol=1e-14, atol=1e-16)
    assert_close(g2, -g1, rtol=0)
    # soft targets interpolate linearly
    vs = fastloss.contrastive_loss(x1[:2], x2[:2], [0.25, 0.25], margin=2.0, reduction="none")
    assert_close(vs, 0.5 * (0.25 * 0.25 + 0.75 * 1.5**2) * np.ones(2), rtol=1e-14)


def test_triplet_by_hand(backend):
    a = np.array([[0.0, 0.0]])
    p = np.array([[3.0, 4.0]])
    n = np.array([[1.0, 0.0]])
    # eps = 0: d_ap = 5, d_an = 1 -> 5 - 1 + 1 = 5 ; with swap d_pn = sqrt(4 + 16) > 1: unchanged
    assert_close(fastloss.triplet_margin_loss(a, p, n, eps=0.0), 5.0, rtol=1e-14)
    assert_close(fastloss.triplet_margin_loss(a, p, n, eps=0.0, swap=True), 5.0, rtol=1e-14)
    assert_close(fastloss.triplet_margin_loss(a, p, n, eps=0.0, p=1.0), 7.0 - 1.0 + 1.0, rtol=1e-14)
    assert fastloss.triplet_margin_loss(a, n, p, eps=0.0) == 0.0  # inactive hinge
    _, g = fastloss.triplet_margin_loss(a, n, p, eps=0.0, return_grad=True)
    for gi in g:
        np.testing.assert_array_equal(gi, np.zeros((1, 2)))
    # swap picks d(p, n) when it is smaller
    p2, n2 = np.array([[3.0, 0.0]]), np.array([[3.5, 0.0]])
    assert_close(fastloss.triplet_margin_loss(a, p2, n2, eps=0.0, swap=True), 3.0 - 0.5 + 1.0, rtol=1e-14)
    assert_close(fastloss.triplet_margin_loss(a, p2, n2, eps=0.0), 3.0 - 3.5 + 1.0, rtol=1e-14)
    # the eps is added to the difference (torch.pairwise_distance), not to the norm
    z = np.zeros((1, 4))
    assert_close(
        fastloss.triplet_margin_loss(z, z, z + 10.0, eps=1e-6, margin=20.0, reduction="sum"),
        np.sqrt(4) * 1e-6 - np.linalg.norm(-10.0 + 1e-6 * np.ones(4)) + 20.0,
        rtol=1e-13,
    )


def test_batch_hard_by_hand(backend):
    x = np.array([[0.0], [1.0], [3.0], [10.0], [4.5]])
    lab = np.array([0, 0, 0, 1, 2])
    v = fastloss.batch_hard_triplet_loss(x, lab, margin=1.0, reduction="none")
    # anchor 0: pos max 3, neg min 4.5 -> 0 ; anchor 1: pos 2, neg 3.5 -> 0 ;
    # anchor 2: pos 3 (row 0), neg 1.5 (row 4) -> 2.5 ; anchors 3, 4: no positive -> 0 (not counted)
    assert_close(v, [0.0, 0.0, 2.5, 0.0, 0.0], rtol=1e-14)
    assert_close(fastloss.batch_hard_triplet_loss(x, lab, margin=1.0), 2.5 / 3, rtol=1e-14)  # 3 valid anchors
    assert_close(fastloss.batch_hard_triplet_loss(x, lab, margin=1.0, reduction="sum"), 2.5, rtol=1e-14)
    _, g = fastloss.batch_hard_triplet_loss(x, lab, margin=1.0, reduction="sum", return_grad=True)
    # l_2 = |x2 - x0| - |x2 - x4| + 1 -> d/dx2 = 1 - (-1) = 2, d/dx0 = -1, d/dx4 = -1
    assert_close(g, [[-1.0], [0.0], [2.0], [0.0], [-1.0]], rtol=1e-14)
    # ties: first index wins for both (distance 2 to rows 1 and 2 / 3 and 4)
    xt = np.array([[0.0], [2.0], [-2.0], [3.0], [-3.0]])
    _, g = fastloss.batch_hard_triplet_loss(
        xt, [0, 0, 0, 1, 1], margin=5.0, reduction="sum", return_grad=True
    )
    # anchor 0: hardest positive row 1 (first of the tie with row 2), hardest negative row 3 (first of
    # the tie with row 4); the other anchors have no ties
    want = np.zeros((5, 1))
    for i, jp, jn in ((0, 1, 3), (1, 2, 3), (2, 1, 4), (3, 4, 1), (4, 3, 2)):
        up, un = np.sign(xt[i] - xt[jp]), np.sign(xt[i] - xt[jn])
        want[i] += up - un
        want[jp] -= up
        want[jn] += un
    assert_close(g, want, rtol=1e-14)
    ref = ref_batch_hard((xt, np.array([0, 0, 0, 1, 1])), {"margin": 5.0})
    assert_close(g, ref.grads[0], rtol=1e-14)


@pytest.mark.parametrize("labels", ["all_equal", "all_distinct", "single"])
def test_batch_hard_no_valid_anchor(backend, labels):
    rng = np.random.default_rng(17)
    n = 1 if labels == "single" else 6
    x = rng.normal(size=(n, 3))
    lab = np.zeros(n, dtype=np.int64) if labels != "all_distinct" else np.arange(n)
    v, g = fastloss.batch_hard_triplet_loss(x, lab, return_grad=True)
    assert np.isnan(v), "no valid anchor: the mean is nan"
    assert g.shape == x.shape
    v, g = fastloss.batch_hard_triplet_loss(x, lab, reduction="sum", return_grad=True)
    assert v == 0.0
    np.testing.assert_array_equal(g, np.zeros_like(x))
    v = fastloss.batch_hard_triplet_loss(x, lab, reduction="none")
    np.testing.assert_array_equal(v, np.zeros(n))


def test_batch_hard_mean_counts_valid_anchors_only(backend):
    rng = np.random.default_rng(18)
    x = rng.normal(0.0, 0.4, (7, 3))
    lab = np.array([0, 0, 1, 1, 1, 5, 9])  # anchors 5 and 6 have no positive
    none = fastloss.batch_hard_triplet_loss(x, lab, margin=2.0, reduction="none")
    assert none[5] == 0.0 and none[6] == 0.0
    assert (none[:5] > 0).all()
    assert_close(fastloss.batch_hard_triplet_loss(x, lab, margin=2.0), np.sum(none) / 5, rtol=1e-13)


def test_cosine_embedding_zero_vectors(backend):
    """Zero rows: cos = 0 thanks to the 1e-12 in the denominator; finite values and gradients."""
    x1 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    x2 = np.array([[1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    t = np.array([1.0, -1.0, 1.0, -1.0])
    v, (g1, g2) = fastloss.cosine_embedding_loss(x1, x2, t, reduction="none", return_grad=True)
    assert_close(v, [1.0, 0.0, 1.0, 0.0], rtol=0, atol=1e-12)
    assert np.isfinite(g1).all() and np.isfinite(g2).all()
    ref = ref_cosine_embedding((x1, x2, t), {})
    assert_close(g1, ref.grads[0], rtol=1e-9)
    assert_close(g2, ref.grads[1], rtol=1e-9)
    vm = fastloss.cosine_embedding_loss(x1, x2, t, margin=-0.5, reduction="none")
    assert_close(vm, [1.0, 0.5, 1.0, 0.5], rtol=0, atol=1e-12)


def test_cosine_embedding_zero_vectors_match_torch(backend, torch):
    x1 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    x2 = np.array([[1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    t = np.array([1.0, -1.0, 1.0])
    case = CASE_BY_ID["cosine_embedding_m-0.4"]
    v, g, _ = case.run((x1, x2, t), "sum")
    want, want_g = torch_value_grad(torch, case, (x1, x2, t), {}, "sum")
    assert_close(v, want, rtol=1e-12)
    for a, b in zip(g, want_g):
        assert_close(a, b, rtol=1e-9, atol=1e-9 * scale_of(b))


def test_info_nce_family_zero_vectors(backend):
    """Zero rows normalise to 0 (x / max(||x||, 1e-12)): finite losses, as the references say."""
    rng = np.random.default_rng(19)
    q = rng.normal(size=(5, 3))
    p = rng.normal(size=(5, 3))
    neg = rng.normal(size=(4, 3))
    q[1] = 0.0
    p[3] = 0.0
    neg[2] = 0.0
    for args, kw, fn, ref in (
        ((q, p), {"temperature": 0.2}, fastloss.info_nce, ref_info_nce),
        ((q, p, neg), {"temperature": 0.2}, fastloss.info_nce, ref_info_nce),
        ((q, p), {"temperature": 0.3}, fastloss.nt_xent, ref_nt_xent),
        ((q, np.concatenate([p, neg])), {"scale": 7.0}, fastloss.multiple_negatives_ranking_loss, ref_mnrl),
    ):
        v, grads = fn(*args, reduction="none", return_grad=True, **kw)
        r = ref(args, kw)
        assert np.isfinite(v).all()
        assert_close(v, r.items, rtol=1e-10, atol=1e-12)
        for g in grads:
            assert np.isfinite(g).all()
    # query 1 is zero: all its logits are 0, so its loss is log(number of logits)
    v = fastloss.info_nce(q, p, reduction="none")
    assert_close(v[1], np.log(5.0), rtol=1e-12)
    v = fastloss.info_nce(q, p, neg, reduction="none")
    assert_close(v[1], np.log(5.0), rtol=1e-12)


def test_info_nce_single_row_and_temperature(backend):
    q = np.array([[1.0, 2.0]])
    p = np.array([[-3.0, 0.5]])
    # one query, in-batch: the only logit is the positive -> loss 0
    assert fastloss.info_nce(q, p) == 0.0
    v, (gq, gp) = fastloss.info_nce(q, p, return_grad=True)
    np.testing.assert_array_equal(gq, np.zeros_like(q))
    np.testing.assert_array_equal(gp, np.zeros_like(p))
    # nt_xent with N = 1: rows 0 and 1 see only each other -> 0
    assert fastloss.nt_xent(q, p) == 0.0
    assert fastloss.nt_xent(q, p, reduction="none").shape == (2,)
    # scale invariance of the rows
    rng = np.random.default_rng(20)
    q, p, n = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    base = fastloss.info_nce(q, p, n, temperature=0.3)
    assert_close(fastloss.info_nce(7.0 * q, 0.01 * p, 3.0 * n, temperature=0.3), base, rtol=1e-12)
    # temperature divides the cosine logits
    qh, ph, nh = l2_normalize(q), l2_normalize(p), l2_normalize(n)
    L = np.concatenate([np.sum(qh * ph, 1, keepdims=True), qh @ nh.T], axis=1) / 0.3
    want = np.mean(np.log(np.sum(np.exp(L), axis=1)) - L[:, 0])
    assert_close(base, want, rtol=1e-12)


def test_mnrl_hard_negatives_and_square(backend):
    rng = np.random.default_rng(21)
    a, p = rng.normal(size=(4, 3)), rng.normal(size=(7, 3))
    v, (ga, gp) = fastloss.multiple_negatives_ranking_loss(a, p, return_grad=True)
    assert gp.shape == (7, 3) and ga.shape == (4, 3)
    assert np.any(gp[4:] != 0), "hard negatives receive gradient"
    assert_close(v, np.mean(ref_mnrl((a, p), {}).items), rtol=1e-12)
    # with M == N it is info_nce with temperature 1 / scale
    assert_close(
        fastloss.multiple_negatives_ranking_loss(a, p[:4], scale=20.0),
        fastloss.info_nce(a, p[:4], temperature=1 / 20.0),
        rtol=1e-12,
    )


def test_ge2e_shapes_and_methods(backend):
    rng = np.random.default_rng(22)
    E = rng.normal(size=(3, 4, 5))
    v = fastloss.ge2e_loss(E, reduction="none")
    assert v.shape == (3, 4)
    assert_close(fastloss.ge2e_loss(E), np.mean(v), rtol=1e-12)
    assert_close(fastloss.ge2e_loss(E, reduction="sum"), np.sum(v), rtol=1e-12)
    for method in ("softmax", "contrast"):
        _, g = fastloss.ge2e_loss(E, method=method, return_grad=True)
        assert isinstance(g, np.ndarray) and g.shape == E.shape
    # the minimum shape S = U = 2
    E2 = rng.normal(size=(2, 2, 3))
    for method in ("softmax", "contrast"):
        r = ref_ge2e((E2,), {"method": method, "w": 2.0, "b": 0.3})
        assert_close(
            fastloss.ge2e_loss(E2, w=2.0, b=0.3, method=method, reduction="none"),
            r.items,
            rtol=1e-9,
            atol=1e-12,
        )
    # a zero utterance has cosine 0 with everything: S = b, finite
    E[1, 2] = 0.0
    for method in ("softmax", "contrast"):
        r = ref_ge2e((E,), {"method": method})
        v, g = fastloss.ge2e_loss(E, method=method, reduction="none", return_grad=True)
        assert np.isfinite(v).all() and np.isfinite(g).all()
        assert_close(v, r.items, rtol=1e-9, atol=1e-12)


def test_sim_ce_row_scale_is_scaled_rows(backend):
    """The sim_ce primitive with row scales (what ge2e_loss uses instead of a normalised copy): the same as
    the scaled rows passed in, the gradient being that of the scaled rows; refused when a is b."""
    from fastloss import _backend

    k = _backend.kernels()
    rng = np.random.default_rng(24)
    a, b = rng.normal(size=(70, 9)), rng.normal(size=(66, 9))
    s = rng.uniform(0.2, 3.0, 70)
    tgt = rng.integers(-1, 66, 70)
    exc = np.where(tgt >= 0, (tgt + 1) % 66, -1)
    extra = rng.normal(size=70)
    s0, a0 = s.copy(), a.copy()
    got = k.sim_ce(a, b, 2.5, tgt, exc, extra, True, 0.1, 0, s)
    want = k.sim_ce(a * s[:, None], b, 2.5, tgt, exc, extra, True, 0.1, 0)
    for x, y in zip(got, want):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="row_scale"):
        k.sim_ce(a, a, 1.0, None, None, extra, False, 1.0, 0, s)
    with pytest.raises(ValueError, match="row_scale"):
        k.sim_ce(a, b, 1.0, None, None, extra, False, 1.0, 0, s[:-1])
    assert np.array_equal(s, s0) and np.array_equal(a, a0)  # the caller's arrays are untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ge2e_speaker_chunks_same_as_whole(backend, dtype, monkeypatch):
    """Wide embeddings go through ge2e's row-local work a chunk of whole speakers at a time (bounded
    memory): the same values and gradients as in one chunk, for both methods and every reduction."""
    from fastloss import _pairwise

    E = np.random.default_rng(23).normal(size=(5, 3, 7)).astype(dtype)
    E[2, 1] = 0.0  # a zero utterance inside a chunk
    calls = [(m, r) for m in ("softmax", "contrast") for r in ("none", "mean", "sum")]
    whole = {c: fastloss.ge2e_loss(E, method=c[0], reduction=c[1], return_grad=True) for c in calls}
    monkeypatch.setattr(_pairwise, "_CHUNK_BYTES", 8 * 7 * 3 * 2)  # two speakers per chunk, three chunks
    tol = {"rtol": 2e-6, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    for c in calls:
        v, g = fastloss.ge2e_loss(E, method=c[0], reduction=c[1], return_grad=True)
        assert g.dtype == dtype and np.shape(v) == np.shape(whole[c][0])
        np.testing.assert_allclose(v, whole[c][0], **tol, err_msg=str(c))
        np.testing.assert_allclose(g, whole[c][1], **tol, err_msg=str(c))


def test_arcface_branches(backend):
    """The margin branch and InsightFace's fallback (cos_y <= cos(pi - m)) by hand, C = 2."""
    W = np.array([[1.0, 0.0], [0.0, 1.0]])
    m, s = 0.5, 4.0
    for theta in (0.3, 1.2, 2.0, 2.9, np.pi):  # angle between the embedding and class 0
        e = np.array([[np.cos(theta), np.sin(theta)]]) * 3.0
        cy = np.cos(theta)
        c1 = np.clip(np.sin(theta), -1, 1)
        phi = np.cos(theta + m) if cy > np.cos(np.pi - m) else cy - np.sin(np.pi - m) * m
        want = np.logaddexp(s * phi, s * c1) - s * phi
        got = fastloss.arcface_loss(e, W, [0], scale=s, margin=m)
        assert_close(got, want, rtol=1e-12, atol=1e-14, what=f"theta={theta}")
    # margin 0: plain normalised softmax cross-entropy
    rng = np.random.default_rng(23)
    e, W, y = rng.normal(size=(6, 4)), rng.normal(size=(5, 4)), rng.integers(0, 5, 6)
    L = 10.0 * l2_normalize(e) @ l2_normalize(W).T
    want = np.mean(ce_rows(L, y)[0])
    assert_close(fastloss.arcface_loss(e, W, y, scale=10.0, margin=0.0), want, rtol=1e-12)
    # zero embedding: all cosines 0
    e[2] = 0.0
    v = fastloss.arcface_loss(e, W, y, reduction="none")
    assert np.isfinite(v).all()
    assert_close(v, ref_arcface((e, W, y), {}).items, rtol=1e-10, atol=1e-12)


def test_arcface_label_dtypes(backend):
    rng = np.random.default_rng(24)
    e, W, y = rng.normal(size=(6, 4)), rng.normal(size=(5, 4)), rng.integers(0, 5, 6)
    want = fastloss.arcface_loss(e, W, y, return_grad=True)
    for dt in (np.int8, np.int32, np.uint8, np.uint64):
        got = fastloss.arcface_loss(e, W, y.astype(dt), return_grad=True)
        np.testing.assert_array_equal(got[0], want[0])
        for a, b in zip(got[1], want[1]):
            np.testing.assert_array_equal(a, b)
    assert_close(fastloss.arcface_loss(e, W, list(y)), want[0], rtol=0)


def test_kmeans_by_hand_and_ties(backend):
    c = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0]])  # center 2 duplicates center 0
    x = np.array([[1.0, 0.0], [1.0, 5.0], [0.1, 0.0], [2.5, 0.0], [-1.0, 0.0]])
    inertia, lab = fastloss.kmeans_inertia(x, c)
    # rows 0 and 1 are equidistant to centers 0 and 1: lowest index wins; row 2 ties 0 and 2
    np.testing.assert_array_equal(lab, [0, 0, 0, 1, 0])
    assert lab.dtype.kind in "iu" and lab.shape == (5,)
    assert isinstance(inertia, np.float64)
    assert_close(inertia, 1.0 + 26.0 + 0.01 + 0.25 + 1.0, rtol=1e-14)
    w = np.array([1.0, 0.0, 2.0, 0.5, 3.0])
    inertia, lab, (gx, gc) = fastloss.kmeans_inertia(x, c, sample_weight=w, return_grad=True)
    assert_close(inertia, 1.0 + 0.02 + 0.125 + 3.0, rtol=1e-14)
    r = ref_kmeans((x, c), {"sample_weight": w})
    assert_close(gx, r.grads[0], rtol=1e-14)
    assert_close(gc, r.grads[1], rtol=1e-14)
    np.testing.assert_array_equal(gc[2], [0.0, 0.0])  # never the argmin
    # sample_weight=None is all ones
    assert fastloss.kmeans_inertia(x, c)[0] == fastloss.kmeans_inertia(x, c, sample_weight=np.ones(5))[0]
    # one center
    inertia, lab = fastloss.kmeans_inertia(x, c[:1])
    np.testing.assert_array_equal(lab, np.zeros(5))
    assert_close(inertia, np.sum(x * x), rtol=1e-14)


def test_kmeans_near_duplicates(backend):
    """Points within 1e-6 of centers far from the origin: exact differences keep the tiny inertia."""
    rng = np.random.default_rng(25)
    c = 1e3 + rng.normal(size=(4, 6))
    lab = rng.integers(0, 4, 30)
    x = c[lab] + 1e-6 * rng.normal(size=(30, 6))
    inertia, got_lab = fastloss.kmeans_inertia(x, c)
    np.testing.assert_array_equal(got_lab, lab)
    assert_close(inertia, np.sum((x - c[lab]) ** 2), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_kmeans_matches_sklearn(backend, dtype, weighted):
    cluster = pytest.importorskip("sklearn.cluster")
    case = CASE_BY_ID["kmeans_w" if weighted else "kmeans"]
    args, kw = make_problem(case, 40, 5, _seed("sk", weighted), kink_min=1e-2)
    x, c = (np.asarray(a, dtype) for a in args)
    w = kw.get("sample_weight")
    w = None if w is None else w.astype(dtype)
    km = cluster.KMeans(n_clusters=len(c), init=c, n_init=1, max_iter=1).fit(x, sample_weight=w)
    km.cluster_centers_ = c.copy()
    inertia, lab = fastloss.kmeans_inertia(x, c, sample_weight=w)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    assert_close(inertia, -km.score(x, sample_weight=w), rtol=rtol)
    np.testing.assert_array_equal(lab, km.predict(x))


# ==================================================================================================
# 4. Inputs: layouts, read-only, never modified, NaN


def _relayout_all(args, kw, kind):
    return tuple(relayout(a, kind) for a in args), {k: relayout(v, kind) for k, v in kw.items()}


def _all_outputs(case, args, kw):
    out = []
    for reduction in case.reductions:
        v, g, lab = case.run(args, reduction, kw)
        out += [np.asarray(v), *g]
        if lab is not None:
            out.append(lab)
    return out


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_layouts_same_as_contiguous(backend, case, kind):
    for dtype in DTYPES:
        args, kw = make_problem(case, 9, 4, _seed("layout", case.id))
        args, kw = cast_args(case, args, kw, dtype)
        want = _all_outputs(case, args, kw)
        la, lkw = _relayout_all(args, kw, kind)
        got = _all_outputs(case, la, lkw)
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(a, b, err_msg=f"{case.id} {np.dtype(dtype).name} output {i}")
            assert a.dtype == b.dtype


@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_inputs_never_modified(backend, case):
    args, kw = make_problem(case, 8, 3, _seed("nomod", case.id))
    for dtype in DTYPES:
        a, k = cast_args(case, args, kw, dtype)
        a0 = [np.array(x, copy=True) for x in a]
        k0 = {key: np.array(v, copy=True) for key, v in k.items() if isinstance(v, np.ndarray)}
        outs = _all_outputs(case, a, k)
        for x, x0 in zip(a, a0):
            np.testing.assert_array_equal(x, x0)
            assert x.dtype == x0.dtype
        for key, v0 in k0.items():
            np.testing.assert_array_equal(k[key], v0)
        for o in outs:  # results never alias the inputs
            for x in a:
                assert not np.shares_memory(o, x)


@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_nan_propagates(backend, case):
    """A NaN in one embedding entry makes every reduced result NaN: it is never silently dropped."""
    args, kw = make_problem(case, 8, 3, _seed("nan", case.id))
    a = [np.array(x, copy=True) for x in args]
    first = a[case.float_args[0]]
    first[(1,) + (0,) * (first.ndim - 1)] = np.nan  # row 1 (row 0 of kmeans_w has weight 0)
    a = tuple(a)
    with np.errstate(invalid="ignore"):
        for reduction in case.reductions:
            if reduction == "none":
                v = np.asarray(case.value(a, "none", kw))
                assert np.isnan(v).any(), f"{case.id}: no NaN in the per-row losses"
                if case.fn not in ("batch_hard_triplet_loss", "ge2e_loss"):
                    assert np.isnan(v[1]), f"{case.id}: the NaN row's loss"
            else:
                v = case.value(a, reduction, kw)
                assert np.isnan(v), f"{case.id} reduction={reduction}: got {v} from a NaN input"


def test_inf_propagates(backend):
    x1 = np.array([[np.inf, 0.0], [1.0, 2.0]])
    x2 = np.zeros((2, 2))
    v = fastloss.contrastive_loss(x1, x2, [1.0, 1.0], reduction="none")
    assert v[0] == np.inf and np.isfinite(v[1])
    v = fastloss.triplet_margin_loss(x2, x1, x2, reduction="none")
    assert v[0] == np.inf
    inertia, _ = fastloss.kmeans_inertia(x1, np.zeros((1, 2)))
    assert inertia == np.inf


# ==================================================================================================
# 5. Errors


def _shapes_in(msg, *shapes):
    return all(str(tuple(s)) in msg for s in shapes)


NDIM = r"(?i)2-?d|3-?d|ndim|dimension"
o = np.ones


ERROR_CASES = [
    # wrong ndim
    ("contrastive_1d", lambda: fastloss.contrastive_loss(o(3), o(3), o(3)), ValueError, NDIM),
    (
        "pairwise_contrastive_1d",
        lambda: fastloss.pairwise_contrastive_loss(o(3), [0, 1, 2]),
        ValueError,
        NDIM,
    ),
    (
        "triplet_3d",
        lambda: fastloss.triplet_margin_loss(o((2, 3, 1)), o((2, 3, 1)), o((2, 3, 1))),
        ValueError,
        NDIM,
    ),
    ("batch_hard_1d", lambda: fastloss.batch_hard_triplet_loss(o(4), [0, 0, 1, 1]), ValueError, NDIM),
    ("cosine_1d", lambda: fastloss.cosine_embedding_loss(o(3), o(3), [1, 1, 1]), ValueError, NDIM),
    ("info_nce_1d", lambda: fastloss.info_nce(o(3), o(3)), ValueError, NDIM),
    ("info_nce_neg_1d", lambda: fastloss.info_nce(o((2, 3)), o((2, 3)), o(3)), ValueError, NDIM),
    ("nt_xent_3d", lambda: fastloss.nt_xent(o((2, 3, 1)), o((2, 3, 1))), ValueError, NDIM),
    ("mnrl_1d", lambda: fastloss.multiple_negatives_ranking_loss(o(3), o(3)), ValueError, NDIM),
    ("ge2e_2d", lambda: fastloss.ge2e_loss(o((4, 3))), ValueError, NDIM),
    ("ge2e_4d", lambda: fastloss.ge2e_loss(o((2, 2, 3, 1))), ValueError, NDIM),
    ("arcface_1d_weight", lambda: fastloss.arcface_loss(o((2, 3)), o(3), [0, 0]), ValueError, NDIM),
    ("kmeans_1d", lambda: fastloss.kmeans_inertia(o(3), o((2, 3))), ValueError, NDIM),
    ("kmeans_centers_1d", lambda: fastloss.kmeans_inertia(o((4, 3)), o(3)), ValueError, NDIM),
    # labels / targets
    (
        "contrastive_target_len",
        lambda: fastloss.contrastive_loss(o((3, 2)), o((3, 2)), o(4)),
        ValueError,
        r"target|\(3,\)|\(4,\)",
    ),
    (
        "contrastive_target_2d",
        lambda: fastloss.contrastive_loss(o((3, 2)), o((3, 2)), o((3, 1))),
        ValueError,
        r"target|shape",
    ),
    (
        "cosine_target_len",
        lambda: fastloss.cosine_embedding_loss(o((3, 2)), o((3, 2)), [1, 1]),
        ValueError,
        r"target|\(3,\)|\(2,\)",
    ),
    (
        "pairwise_labels_len",
        lambda: fastloss.pairwise_contrastive_loss(o((3, 2)), [0, 1]),
        ValueError,
        r"labels|\(2,\)",
    ),
    (
        "batch_hard_labels_len",
        lambda: fastloss.batch_hard_triplet_loss(o((3, 2)), [0, 1, 1, 0]),
        ValueError,
        r"labels|\(4,\)",
    ),
    (
        "arcface_labels_len",
        lambda: fastloss.arcface_loss(o((3, 2)), o((4, 2)), [0, 1]),
        ValueError,
        r"labels|\(2,\)",
    ),
    (
        "pairwise_labels_float",
        lambda: fastloss.pairwise_contrastive_loss(o((3, 2)), [0.0, 1.5, 1.0]),
        (ValueError, TypeError),
        r"(?i)labels|integer",
    ),
    (
        "batch_hard_labels_float",
        lambda: fastloss.batch_hard_triplet_loss(o((3, 2)), np.array([0.5, 1.0, 1.0])),
        (ValueError, TypeError),
        r"(?i)labels|integer",
    ),
    (
        "arcface_labels_float",
        lambda: fastloss.arcface_loss(o((3, 2)), o((4, 2)), [0.0, 1.5, 2.0]),
        (ValueError, TypeError),
        r"(?i)labels|integer",
    ),
    (
        "pairwise_labels_str",
        lambda: fastloss.pairwise_contrastive_loss(o((2, 2)), ["a", "b"]),
        (ValueError, TypeError),
        r"(?i)labels|integer|dtype",
    ),
    (
        "arcface_label_negative",
        lambda: fastloss.arcface_loss(o((3, 2)), o((4, 2)), [0, -1, 2]),
        ValueError,
        r"-1",
    ),
    (
        "cosine_target_nan",
        lambda: fastloss.cosine_embedding_loss(o((2, 2)), o((2, 2)), [1.0, np.nan]),
        ValueError,
        r"(?i)target|nan",
    ),
    # parameters
    (
        "contrastive_margin_neg",
        lambda: fastloss.contrastive_loss(o((2, 2)), o((2, 2)), [1, 0], margin=-0.1),
        ValueError,
        "margin",
    ),
    (
        "contrastive_margin_nan",
        lambda: fastloss.contrastive_loss(o((2, 2)), o((2, 2)), [1, 0], margin=np.nan),
        ValueError,
        "margin",
    ),
    (
        "contrastive_margin_str",
        lambda: fastloss.contrastive_loss(o((2, 2)), o((2, 2)), [1, 0], margin="1"),
        TypeError,
        "margin",
    ),
    (
        "triplet_p0",
        lambda: fastloss.triplet_margin_loss(o((2, 2)), o((2, 2)), o((2, 2)), p=0.0),
        ValueError,
        r"\bp\b",
    ),
    (
        "triplet_p_neg",
        lambda: fastloss.triplet_margin_loss(o((2, 2)), o((2, 2)), o((2, 2)), p=-2.0),
        ValueError,
        r"\bp\b",
    ),
    (
        "triplet_swap_type",
        lambda: fastloss.triplet_margin_loss(o((2, 2)), o((2, 2)), o((2, 2)), swap="yes"),
        TypeError,
        "swap",
    ),
    (
        "info_nce_T0",
        lambda: fastloss.info_nce(o((2, 2)), o((2, 2)), temperature=0.0),
        ValueError,
        "temperature",
    ),
    (
        "info_nce_T_neg",
        lambda: fastloss.info_nce(o((2, 2)), o((2, 2)), o((3, 2)), temperature=-1.0),
        ValueError,
        "temperature",
    ),
    (
        "info_nce_T_nan",
        lambda: fastloss.info_nce(o((2, 2)), o((2, 2)), temperature=np.nan),
        ValueError,
        "temperature",
    ),
    ("nt_xent_T0", lambda: fastloss.nt_xent(o((2, 2)), o((2, 2)), temperature=0), ValueError, "temperature"),
    (
        "nt_xent_T_neg",
        lambda: fastloss.nt_xent(o((2, 2)), o((2, 2)), temperature=-0.5),
        ValueError,
        "temperature",
    ),
    ("ge2e_w0", lambda: fastloss.ge2e_loss(o((2, 2, 3)), w=0.0), ValueError, r"\bw\b"),
    ("ge2e_w_neg", lambda: fastloss.ge2e_loss(o((2, 2, 3)), w=-3.0), ValueError, r"\bw\b"),
    (
        "ge2e_method",
        lambda: fastloss.ge2e_loss(o((2, 2, 3)), method="triplet"),
        ValueError,
        r"method|softmax|contrast",
    ),
    (
        "ge2e_method_type",
        lambda: fastloss.ge2e_loss(o((2, 2, 3)), method=1),
        (TypeError, ValueError),
        r"method",
    ),
    ("ge2e_S1", lambda: fastloss.ge2e_loss(o((1, 3, 3))), ValueError, r"(?i)speaker|\bS\b|2"),
    ("ge2e_U1", lambda: fastloss.ge2e_loss(o((3, 1, 3))), ValueError, r"(?i)utterance|\bU\b|2"),
    (
        "pairwise_none",
        lambda: fastloss.pairwise_contrastive_loss(o((3, 2)), [0, 1, 0], reduction="none"),
        ValueError,
        r"pairwise_distances|matrix|none",
    ),
    (
        "mnrl_M_lt_N",
        lambda: fastloss.multiple_negatives_ranking_loss(o((4, 2)), o((3, 2))),
        ValueError,
        r"positives|anchors|M >= N|M < N|rows",
    ),
    (
        "reduction_unknown",
        lambda: fastloss.info_nce(o((2, 2)), o((2, 2)), reduction="avg"),
        ValueError,
        "reduction",
    ),
    (
        "reduction_type",
        lambda: fastloss.triplet_margin_loss(o((2, 2)), o((2, 2)), o((2, 2)), reduction=None),
        TypeError,
        "reduction",
    ),
    (
        "return_grad_type",
        lambda: fastloss.nt_xent(o((2, 2)), o((2, 2)), return_grad="yes"),
        TypeError,
        "return_grad",
    ),
    (
        "kmeans_weight_neg",
        lambda: fastloss.kmeans_inertia(o((3, 2)), o((2, 2)), sample_weight=[1.0, -1.0, 1.0]),
        ValueError,
        "sample_weight",
    ),
    (
        "kmeans_weight_len",
        lambda: fastloss.kmeans_inertia(o((3, 2)), o((2, 2)), sample_weight=[1.0, 1.0]),
        ValueError,
        "sample_weight",
    ),
    (
        "kmeans_no_centers",
        lambda: fastloss.kmeans_inertia(o((3, 2)), np.zeros((0, 2))),
        ValueError,
        r"(?i)centers|K",
    ),
    # complex / strings
    (
        "complex",
        lambda: fastloss.triplet_margin_loss(o((2, 2)) * 1j, o((2, 2)), o((2, 2))),
        TypeError,
        r"complex|real",
    ),
    (
        "string",
        lambda: fastloss.nt_xent(np.array([["a", "b"]]), np.array([["a", "b"]])),
        TypeError,
        r"real|dtype",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "pattern"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors(backend, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


SHAPE_MISMATCHES = [
    ("contrastive_d", lambda: fastloss.contrastive_loss(o((5, 3)), o((5, 4)), o(5)), [(5, 3), (5, 4)]),
    ("contrastive_N", lambda: fastloss.contrastive_loss(o((5, 3)), o((4, 3)), o(5)), [(5, 3), (4, 3)]),
    ("triplet_d", lambda: fastloss.triplet_margin_loss(o((5, 3)), o((5, 3)), o((5, 2))), [(5, 3), (5, 2)]),
    ("triplet_N", lambda: fastloss.triplet_margin_loss(o((5, 3)), o((6, 3)), o((5, 3))), [(5, 3), (6, 3)]),
    ("cosine_d", lambda: fastloss.cosine_embedding_loss(o((5, 3)), o((5, 4)), o(5)), [(5, 3), (5, 4)]),
    ("info_nce_positive", lambda: fastloss.info_nce(o((5, 3)), o((4, 3))), [(5, 3), (4, 3)]),
    ("info_nce_negatives_d", lambda: fastloss.info_nce(o((5, 3)), o((5, 3)), o((6, 4))), [(5, 3), (6, 4)]),
    ("nt_xent", lambda: fastloss.nt_xent(o((5, 3)), o((4, 3))), [(5, 3), (4, 3)]),
    ("mnrl_d", lambda: fastloss.multiple_negatives_ranking_loss(o((5, 3)), o((6, 4))), [(5, 3), (6, 4)]),
    ("arcface_d", lambda: fastloss.arcface_loss(o((5, 3)), o((4, 4)), [0, 1, 2, 3, 0]), [(5, 3), (4, 4)]),
    ("kmeans_d", lambda: fastloss.kmeans_inertia(o((5, 3)), o((2, 4))), [(5, 3), (2, 4)]),
    ("pairwise_distances_d", lambda: fastloss.pairwise_distances(o((5, 3)), o((2, 4))), [(5, 3), (2, 4)]),
]


@pytest.mark.parametrize(
    ("call", "shapes"), [c[1:] for c in SHAPE_MISMATCHES], ids=[c[0] for c in SHAPE_MISMATCHES]
)
def test_shape_mismatch_names_both_shapes(backend, call, shapes):
    with pytest.raises(ValueError) as e:
        call()
    assert _shapes_in(str(e.value), *shapes), f"the message should name {shapes}: {e.value}"


BAD_LABELS = [
    # (id, call, bad position, bad value as printed)
    (
        "cosine_half",
        lambda: fastloss.cosine_embedding_loss(o((6, 2)), o((6, 2)), [1, -1, 1, 0.25, 2, 1]),
        3,
        "0.25",
    ),
    ("cosine_zero", lambda: fastloss.cosine_embedding_loss(o((4, 2)), o((4, 2)), [1, -1, -1, 0]), 3, "0"),
    ("cosine_two", lambda: fastloss.cosine_embedding_loss(o((4, 2)), o((4, 2)), [1, 2, -1, 0]), 1, "2"),
    (
        "contrastive_above",
        lambda: fastloss.contrastive_loss(o((5, 2)), o((5, 2)), [0, 1, 0.5, 1.25, -1]),
        3,
        "1.25",
    ),
    (
        "contrastive_below",
        lambda: fastloss.contrastive_loss(o((5, 2)), o((5, 2)), [0, 1, 0.5, 1.0, -0.75]),
        4,
        "-0.75",
    ),
    ("arcface_high", lambda: fastloss.arcface_loss(o((5, 2)), o((5, 2)), [0, 1, 4, 5, 7]), 3, "5"),
    ("arcface_negative", lambda: fastloss.arcface_loss(o((4, 2)), o((3, 2)), [0, 2, -3, 1]), 2, "-3"),
]


@pytest.mark.parametrize(
    ("call", "pos", "value"), [c[1:] for c in BAD_LABELS], ids=[c[0] for c in BAD_LABELS]
)
def test_bad_labels_name_position_and_value(backend, call, pos, value):
    with pytest.raises(ValueError) as e:
        call()
    msg = str(e.value)
    assert re.search(rf"(?<![\d.]){re.escape(value)}(?![\d])", msg), (
        f"the message should name the value {value}: {msg}"
    )
    assert re.search(rf"(?<![\d.]){pos}(?![\d.])", msg), f"the message should name the position {pos}: {msg}"


# ==================================================================================================
# 6. Backends and threads


def _big_problem(case, seed):
    """N = 700, d = 33, with enough columns (speakers, classes, centers) that every kernel goes parallel."""
    rng = np.random.default_rng(seed)
    if case.fn == "ge2e_loss":
        spk = rng.normal(0.0, 1.0, (40, 1, 33))
        return (spk + rng.normal(0.0, 0.8, (40, 25, 33)),), {}
    if case.fn == "arcface_loss":
        return mk_arcface(rng, 700, 33, C=50)
    if case.fn == "kmeans_inertia":
        (x, c), _ = mk_kmeans(rng, 700, 33, K=16)
        return (x, c), ({"sample_weight": rng.uniform(0.0, 2.0, 700)} if case.id == "kmeans_w" else {})
    return case.make(rng, 700, 33)


@pytest.mark.cpp_only
@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_bitwise_identical_across_threads(core, case):
    args, kw = _big_problem(case, _seed("threads", case.id))
    for dtype in DTYPES:
        a, k = cast_args(case, args, kw, dtype)
        with fastloss.use_backend("cpp"):
            with fastloss.num_threads(1):
                one = _all_outputs(case, a, k)
            with fastloss.num_threads(2):
                two = _all_outputs(case, a, k)
        for i, (x, y) in enumerate(zip(one, two)):
            np.testing.assert_array_equal(
                x, y, err_msg=f"{case.id} {np.dtype(dtype).name} output {i}: 1 vs 2 threads"
            )


@pytest.mark.cpp_only
@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_distances_bitwise_identical_across_threads(core, metric):
    rng = np.random.default_rng(_seed("pd-threads", metric))
    x, y = rng.normal(size=(700, 33)), rng.normal(size=(650, 33))
    for dtype in DTYPES:
        with fastloss.use_backend("cpp"):
            with fastloss.num_threads(1):
                one = fastloss.pairwise_distances(x.astype(dtype), y.astype(dtype), metric=metric)
            with fastloss.num_threads(2):
                two = fastloss.pairwise_distances(x.astype(dtype), y.astype(dtype), metric=metric)
        np.testing.assert_array_equal(one, two)


@needs_core
@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_backends_agree_at_scale(case):
    """Many tiles / chunks on both backends (the reference tests are small)."""
    args, kw = make_problem(case, 300, 17, _seed("agree", case.id), kink_min=0.0)
    for dtype in DTYPES:
        a, k = cast_args(case, args, kw, dtype)
        with fastloss.use_backend("cpp"):
            c = _all_outputs(case, a, k)
        with fastloss.use_backend("numpy"):
            n = _all_outputs(case, a, k)
        rtol = 1e-5 if dtype == np.float32 else 1e-11
        for i, (x, y) in enumerate(zip(c, n)):
            assert x.dtype == y.dtype
            atol = (1e-5 if dtype == np.float32 else 1e-12) * max(scale_of(y), 1e-300)
            assert_close(x, y, rtol=rtol, atol=atol, what=f"{case.id} output {i}")


@pytest.mark.parametrize(
    "case",
    [
        CASE_BY_ID[i]
        for i in ("batch_hard", "info_nce", "nt_xent", "arcface", "kmeans_w", "pairwise_contrastive")
    ],
    ids=lambda c: c.id,
)
def test_values_at_scale_match_reference(backend, case):
    """N = 300: row chunks and tiles of both backends against the full-matrix reference (float64)."""
    args, kw = make_problem(case, 300, 9, _seed("scale", case.id), kink_min=0.0)
    ref = case.reference(args, kw)
    red = case.reductions[0]
    v, g, _ = case.run(args, red, kw)
    want, want_g = reduce_ref(ref, red)
    assert_close(v, want, rtol=1e-10, atol=value_atol(ref, red, 1e-12))
    for a, b in zip(g, want_g):
        assert_close(a, b, rtol=1e-8, atol=1e-10 * scale_of(b))


def test_pairwise_distances_at_scale(backend):
    rng = np.random.default_rng(26)
    x, y = rng.normal(size=(300, 9)), rng.normal(size=(270, 9))
    for metric in METRICS:
        want = ref_cdist(x, y, metric)
        assert_close(
            fastloss.pairwise_distances(x, y, metric=metric), want, 1e-12, 1e-14 * scale_of(want), what=metric
        )


# ==================================================================================================
# 7. Properties (hypothesis)


hypothesis = optional_module("hypothesis")
hnp = optional_module("hypothesis.extra.numpy")

if hypothesis is None or hnp is None:

    def test_properties_need_hypothesis():
        pytest.skip("hypothesis is not importable")

else:
    st = hypothesis.strategies
    SETTINGS = hypothesis_settings(25)
    # away from 0 (no underflow of |x|^2 in float32) but including exact zeros
    _LO = float(np.float32(0.01))
    ELEMENTS = st.one_of(st.just(0.0), st.floats(_LO, 100.0, width=32), st.floats(-100.0, -_LO, width=32))

    @st.composite
    def embeddings(draw, n=None, d=None, min_n=0, max_n=9):
        dtype = draw(st.sampled_from(DTYPES))
        n = draw(st.integers(min_n, max_n)) if n is None else n
        d = draw(st.integers(1, 6)) if d is None else d
        return draw(hnp.arrays(np.float64, (n, d), elements=ELEMENTS)).astype(dtype)

    @SETTINGS
    @hypothesis.given(data=st.data(), metric=st.sampled_from(METRICS), same=st.booleans())
    def test_property_pairwise_distances(backend, data, metric, same):
        x = data.draw(embeddings())
        y = x if same else data.draw(embeddings(d=x.shape[1])).astype(x.dtype)
        layout = data.draw(st.sampled_from(["c"] + LAYOUTS))
        xl, yl = (x, y) if layout == "c" else (relayout(x, layout), relayout(y, layout))
        with np.errstate(invalid="ignore", divide="ignore"):
            got = fastloss.pairwise_distances(xl, None if same else yl, metric=metric)
            want = ref_cdist(x, y, metric)
        assert got.dtype == x.dtype and got.shape == (len(x), len(y))
        rtol, atol = pd_tols(x.dtype, want, metric)
        assert_close(got, want, rtol, atol, what=metric)
        if metric != "cosine":
            assert (got >= 0).all()

    @SETTINGS
    @hypothesis.given(
        data=st.data(),
        margin=st.one_of(st.just(0.0), st.floats(0.0, 3.0)),
        reduction=st.sampled_from(REDUCTIONS),
    )
    def test_property_contrastive(backend, data, margin, reduction):
        x1 = data.draw(embeddings())
        x2 = data.draw(embeddings(n=len(x1), d=x1.shape[1])).astype(x1.dtype)
        n = len(x1)
        t = data.draw(
            hnp.arrays(np.float64, (n,), elements=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
        )
        t = t.astype(x1.dtype)
        v, (g1, g2) = fastloss.contrastive_loss(
            x1, x2, t, margin=margin, reduction=reduction, return_grad=True
        )
        ref = ref_contrastive((x1, x2, t), {"margin": margin})
        want, (w1, w2) = reduce_ref(ref, reduction)
        assert g1.dtype == g2.dtype == x1.dtype and g1.shape == x1.shape
        if x1.dtype == np.float32:
            rtol, rel = 1e-5, 1e-5
        else:
            rtol, rel = 1e-11, 1e-13
        assert_close(v, want, rtol, atol=value_atol(ref, reduction, rel) + 1e-30)
        for g, w in ((g1, w1), (g2, w2)):
            if w is None:
                continue
            assert_close(g, w, rtol, atol=rel * max(scale_of(w), 1e-30) * 10)
        np.testing.assert_array_equal(g2, -g1)

    @SETTINGS
    @hypothesis.given(data=st.data())
    def test_property_kmeans(backend, data):
        x = data.draw(embeddings(max_n=12))
        c = data.draw(embeddings(min_n=1, max_n=5, d=x.shape[1])).astype(x.dtype)
        inertia, lab, (gx, gc) = fastloss.kmeans_inertia(x, c, return_grad=True)
        D = ref_cdist(x, c, "sqeuclidean")
        best = D[np.arange(len(x)), lab] if len(x) else np.zeros(0)
        # the label is a nearest center (ties: the lowest index among the exact minima in float64)
        assert (
            best <= D.min(axis=1, initial=np.inf) * (1 + (3e-6 if x.dtype == np.float32 else 1e-12)) + 1e-30
        ).all()
        want = float(np.sum(np.min(D, axis=1))) if len(x) else 0.0
        assert_close(inertia, want, 1e-5 if x.dtype == np.float32 else 1e-11, atol=1e-30)
        assert gx.shape == x.shape and gc.shape == c.shape


# --------------------------------------------------------------------------------------------------
# More thread counts, concurrent Python threads, and the two backends' primitive sets


PRIMITIVES = ("pairwise_distances", "pairwise_contrastive", "batch_hard", "kmeans", "sim_ce", "rowwise")


def test_backends_expose_the_same_primitives():
    from fastloss import _backend, _numpy

    for name in PRIMITIVES:
        assert callable(getattr(_numpy, name)), name
        if _backend._core is not None:
            assert callable(getattr(_backend._core, name)), name


def _pair_jobs(x, labels):
    return {
        "contrastive": lambda: fastloss.pairwise_contrastive_loss(x, labels, margin=4.0, return_grad=True),
        "info_nce": lambda: fastloss.info_nce(x, x[::-1], return_grad=True),
        "batch_hard": lambda: fastloss.batch_hard_triplet_loss(x, labels, return_grad=True),
    }


def _flat_bits(result):
    value, grads = result
    grads = grads if isinstance(grads, tuple) else (grads,)
    return [np.asarray(value).tobytes()] + [g.tobytes() for g in grads]


@pytest.mark.cpp_only
@pytest.mark.parametrize("threads", [3, 4, 7])
def test_bitwise_identical_for_more_thread_counts(core, threads):
    rng = np.random.default_rng(_seed("more-threads", threads))
    x = rng.normal(size=(600, 40)).astype(np.float32)
    labels = rng.integers(0, 9, 600)
    with fastloss.use_backend("cpp"):
        for name, job in _pair_jobs(x, labels).items():
            with fastloss.num_threads(1):
                one = _flat_bits(job())
            with fastloss.num_threads(threads):
                many = _flat_bits(job())
            assert one == many, f"{name}: 1 vs {threads} threads"


@pytest.mark.cpp_only
def test_two_python_threads_get_correct_results(core):
    rng = np.random.default_rng(_seed("python-threads"))
    x = rng.normal(size=(500, 24))
    labels = rng.integers(0, 7, 500)
    jobs = {k: (lambda fn=fn: _flat_bits(fn())) for k, fn in _pair_jobs(x, labels).items()}
    with fastloss.use_backend("cpp"):
        want = {k: fn() for k, fn in jobs.items()}
        results = run_concurrently(jobs)
    for name, runs in results.items():
        assert len(runs) == 3 and all(r == want[name] for r in runs), name
