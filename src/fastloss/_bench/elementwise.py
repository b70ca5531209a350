"""Elementwise cases: regression, binary classification and ranking, the activations and the penalties
(about n elements per input)."""

from __future__ import annotations

import numpy as np

import fastloss
from fastloss._bench.common import (
    CLASSES,
    COMPOSED,
    LN2,
    Case,
    _np_focal,
    _Peers,
    _sk_loss,
    _torch,
    class_rows,
    make_data,
    np_log_softmax,
    np_logsumexp,
    np_sigmoid,
    tensors,
    torch_factory,
)


def _losses(name: str, n: int, dtype: np.dtype) -> Case:
    """The regression and binary-classification cases: n elements per input."""
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
    if name in ("binary_cross_entropy_with_logits", "sigmoid_focal_loss"):
        x, t = make_data("logits", n, dtype)
        tx, tq = tt(x, t) if torch is not None else (None, None)
        if name == "binary_cross_entropy_with_logits":
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
    if name == "margin_ranking_loss":
        a, b, y = make_data("ranking", n, dtype)
        ta, tb, ty = tt(a, b, y) if torch is not None else (None, None, None)
        return Case(
            name,
            (a, b, y),
            lambda: fastloss.margin_ranking_loss(a, b, y, margin=0.1),
            lambda: np.mean(np.maximum(0.0, -y * (a - b) + 0.1)),
            tcase(lambda: F.margin_ranking_loss(ta, tb, ty, margin=0.1)),
        )


def _maps(name: str, n: int, dtype: np.dtype) -> Case:
    """RMSE, the activations and the penalties."""
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


BUILDERS = {
    **dict.fromkeys(
        (
            "mse",
            "mae",
            "huber",
            "smooth_l1",
            "pinball",
            "hinge",
            "log_cosh",
            "pseudo_huber",
            "binary_cross_entropy",
            "binary_cross_entropy_with_logits",
            "sigmoid_focal_loss",
            "margin_ranking_loss",
        ),
        _losses,
    ),
    **dict.fromkeys(
        ("rmse", "sigmoid", "l1_penalty", "l2_penalty", "softmax", "log_softmax", "logsumexp"), _maps
    ),
}
