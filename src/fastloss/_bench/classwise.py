"""Class-wise cases: n is the number of scores, (n // C, C) (or a segmentation map for
``cross_entropy_seg``)."""

from __future__ import annotations

import numpy as np

import fastloss
from fastloss._bench.common import (
    CLASSES,
    COMPOSED,
    Case,
    _Peers,
    _sk_loss,
    _torch,
    class_data,
    class_rows,
    np_log_softmax,
    tensors,
    torch_factory,
)

CLASSWISE = {"cross_entropy_c10": 10, "cross_entropy": 100, "cross_entropy_c1000": 1000}


def _cross_entropy(name: str, n: int, dtype: np.dtype) -> Case:
    dtype = np.dtype(dtype)
    torch, sk = _torch(), _sk_loss()

    def tcase(fn):
        return torch_factory(torch, fn)

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
    if name == "nll_loss":
        logp = np_log_softmax(x)
        (tlp,) = P.t(logp)
        return Case(
            name,
            (logp, y),
            lambda: fastloss.nll_loss(logp, y),
            lambda: -np.mean(logp[r, y]),
            P.case(lambda: F.nll_loss(tlp, ty)),
        )
    if name == "softmax_focal_loss":

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


BUILDERS = {
    **dict.fromkeys((*CLASSWISE, "cross_entropy_seg"), _cross_entropy),
    **dict.fromkeys(
        (
            "kl_div",
            "nll_loss",
            "softmax_focal_loss",
            "poly1_cross_entropy",
            "multiclass_hinge",
            "multiclass_hinge_cs",
        ),
        _classwise,
    ),
}
