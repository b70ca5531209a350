"""Segmentation overlap cases: the shapes of seg_shape(n, C)."""

from __future__ import annotations

import numpy as np

import fastloss
from fastloss._bench.common import (
    COMPOSED,
    Case,
    _Peers,
    _torch,
    class_data,
    np_dice,
    seg_data,
    seg_shape,
    tensors,
    torch_dice,
    torch_factory,
)


def _dice(name: str, n: int, dtype: np.dtype) -> Case:
    """dice: (64, 1, 256, 256), fewer rows of 256 x 256 below n = 64 * 256 * 256; dice_3d: (8, 4, 128,
    128, 128) (named only: 0.5 GB of inputs, NumPy needs seconds)."""
    dtype = np.dtype(dtype)
    torch = _torch()

    def tcase(fn):
        return torch_factory(torch, fn)

    shape = (8, 4, 128, 128, 128) if name == "dice_loss_3d" else seg_shape(n, 1)
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


def _overlap(name: str, n: int, dtype: np.dtype) -> Case:
    P = _Peers()
    torch, F = P.torch, P.F
    axes = (2, 3)
    if name == "dice_loss_multiclass":
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
    if name == "jaccard_loss":

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


BUILDERS = {
    **dict.fromkeys(("dice_loss", "dice_loss_3d"), _dice),
    **dict.fromkeys(("jaccard_loss", "tversky_loss", "dice_loss_multiclass"), _overlap),
}
