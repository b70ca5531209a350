"""Value and gradient cases: fastloss with return_grad=True against NumPy by hand and PyTorch's autograd."""

from __future__ import annotations

import numpy as np

import fastloss
from fastloss._bench.common import (
    CLASSES,
    PAIR_D,
    PAIR_MARGIN,
    Case,
    _np_sqdist,
    _Peers,
    class_rows,
    gaussian_rows,
    leaf,
    make_data,
    np_log_softmax,
    pair_rows,
    row_labels,
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
    if name == "binary_cross_entropy_with_logits_grad":
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


BUILDERS = dict.fromkeys(
    (
        "mse_grad",
        "binary_cross_entropy_with_logits_grad",
        "cross_entropy_grad",
        "pairwise_contrastive_loss_grad",
    ),
    _grad,
)
