"""NumPy twins of the C++ elementwise functors, and the generic driver around them.

Each loss is a function (a, b, c, params) -> (loss, d loss/da, d loss/dc or None) over float64 arrays:
formulas only. Which inputs a kernel checks, and against which domain, is read from the specs
(fastloss._specs), as the number of gradients. They follow the same formulas and edge semantics as
csrc/fastloss/elementwise.hpp (NaN propagates, derivative 0 at kinks), written the way NumPy expresses
them; the test suite checks the two backends against each other and against independent references.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fastloss._specs import Reduction, elementwise_kernels

Arr = np.ndarray
_LN2 = np.log(2.0)


def _sign(d: Arr) -> Arr:
    return np.sign(d)  # sign(0) = 0, sign(nan) = nan


def _mse(a, b, c, prm):
    d = a - b
    return d * d, 2.0 * d, None


def _l1_penalty(a, b, c, prm):
    return np.abs(a), _sign(a), None


def _l2_penalty(a, b, c, prm):
    return a * a, 2.0 * a, None


def _mae(a, b, c, prm):
    d = a - b
    return np.abs(d), _sign(d), None


def _huber(a, b, c, prm):
    (delta,) = prm[:1]
    d = a - b
    ad = np.abs(d)
    loss = np.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))
    return loss, np.clip(d, -delta, delta), None


def _smooth_l1(a, b, c, prm):
    (beta,) = prm[:1]
    d = a - b
    ad = np.abs(d)
    loss = np.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta)
    return loss, np.clip(d, -beta, beta) / beta, None


def _log_cosh(a, b, c, prm):
    d = a - b
    # logaddexp(d, -d) = log(e^d + e^-d) = log cosh d + log 2, stable for large |d|; the series
    # covers small |d|, where that difference cancels.
    d2 = d * d
    small = d2 * (0.5 + d2 * (-1.0 / 12.0 + d2 * (1.0 / 45.0)))
    loss = np.where(np.abs(d) < 2.0**-7, small, np.logaddexp(d, -d) - _LN2)
    return loss, np.tanh(d), None


def _pseudo_huber(a, b, c, prm):
    (delta,) = prm[:1]
    d = a - b
    u = d / delta
    root = np.sqrt(1.0 + u * u)
    loss = np.where(u * u > 1.0, delta * delta * (root - 1.0), d * d / (root + 1.0))
    grad = np.where(np.abs(u) > 1e150, delta * np.sign(u), d / root)
    return loss, grad, None


def _pinball(a, b, c, prm):
    (q,) = prm[:1]
    d = b - a
    loss = np.where(d < 0.0, (q - 1.0) * d, q * d)
    grad = np.where(d > 0.0, -q, np.where(d < 0.0, 1.0 - q, d * 0.0))
    return loss, grad, None


def _hinge(a, b, c, prm):
    v = prm[0] - b * a
    h = np.where(v < 0.0, 0.0, v)
    return h, np.where(np.isnan(v), v, np.where(v > 0.0, -b, 0.0)), None


def _squared_hinge(a, b, c, prm):
    v = prm[0] - b * a
    h = np.where(v < 0.0, 0.0, v)
    return h * h, -2.0 * b * h, None


def _bce(a, b, c, prm):
    lp = np.maximum(np.log(a), -100.0)
    lq = np.maximum(np.log1p(-a), -100.0)
    loss = (b - 1.0) * lq - b * lp
    grad = (a - b) / np.maximum(a * (1.0 - a), 1e-12)
    return loss, grad, None


def _softplus(x: Arr) -> Arr:
    return np.logaddexp(0.0, x)


def _sigmoid(x: Arr) -> Arr:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _mix(t: Arr, a: Arr, b: Arr) -> Arr:
    """t a + (1 - t) b, dropping a term whose factor is exactly 0 (so 0 * inf is 0, not NaN)."""
    return np.where(t == 0.0, 0.0, t * a) + np.where(t == 1.0, 0.0, (1.0 - t) * b)


def _bce_logits(a, b, c, prm):
    w = c if c is not None else prm[0]
    loss = _mix(b, w * _softplus(-a), _softplus(a))
    grad = (1.0 - b) * _sigmoid(a) - b * w * _sigmoid(-a)
    return loss, grad, None


def _sigmoid_focal(a, b, c, prm):
    alpha, gamma = prm[0], prm[1]
    p, pn = _sigmoid(a), _sigmoid(-a)
    ce = _mix(b, _softplus(-a), _softplus(a))
    dce = (1.0 - b) * p - b * pn
    q = p * (1.0 - b) + pn * b  # 1 - p_t
    mod = np.ones_like(q) if gamma == 0.0 else q**gamma
    at = 1.0 if alpha < 0.0 else (1.0 - alpha) + (2.0 * alpha - 1.0) * b
    safe_q = np.where(q > 0.0, q, 1.0)
    dmod = np.where(q > 0.0, gamma * mod * p * pn * (1.0 - 2.0 * b) / safe_q, 0.0 * q)
    return at * ce * mod, at * (dce * mod + ce * dmod), None


def _margin_ranking(a, b, c, prm):
    (margin,) = prm[:1]
    v = margin - b * (a - c)
    g1 = np.where(np.isnan(v), v, np.where(v > 0.0, -b, 0.0))
    return np.where(v < 0.0, 0.0, v), g1, 0.0 - g1


def _sigmoid_map(a, b, c, prm):
    s = _sigmoid(a)
    return s, s * _sigmoid(-a), None


def _kl_div(a, b, c, prm):
    return np.where(b == 0.0, 0.0, b * (np.log(b) - a)), -b, None


def _kl_div_log_target(a, b, c, prm):
    p = np.exp(b)
    return np.where(p == 0.0, 0.0, p * (b - a)), -p, None


Formula = Callable[[Arr, Arr, "Arr | None", tuple[float, ...]], tuple[Arr, Arr, "Arr | None"]]

LOSSES: dict[str, Formula] = {
    "mse": _mse,
    "mae": _mae,
    "huber": _huber,
    "smooth_l1": _smooth_l1,
    "log_cosh": _log_cosh,
    "pseudo_huber": _pseudo_huber,
    "pinball": _pinball,
    "hinge": _hinge,
    "hinge_squared": _squared_hinge,
    "binary_cross_entropy": _bce,
    "binary_cross_entropy_with_logits": _bce_logits,
    "binary_cross_entropy_with_logits_pw": _bce_logits,
    "sigmoid_focal_loss": _sigmoid_focal,
    "margin_ranking_loss": _margin_ranking,
    "sigmoid": _sigmoid_map,
    "kl_div": _kl_div,
    "kl_div_log_target": _kl_div_log_target,
    "l1_penalty": _l1_penalty,
    "l2_penalty": _l2_penalty,
}
KERNELS = elementwise_kernels()  # key -> (checked (argument, domain) pairs, gradients)


def elementwise(
    loss: str,
    a: Arr,
    b: Arr,
    c: Arr | None,
    weight: Arr | None,
    weight_scalar: float,
    params: list[float],
    reduction: int,
    want_grad: bool,
    num_threads: int,
) -> tuple[float, float, int, Arr | None, Arr | None, Arr | None]:
    """Same contract as fastloss._core.elementwise: (value, weight_sum, first_bad, out, grad_a, grad_c)."""
    checks, grads = KERNELS[loss]
    dtype = a.dtype
    args = [x.astype(np.float64, copy=False) if x is not None else None for x in (a, b, c)]
    first_bad = -1
    for arg, domain in checks:
        bad = np.flatnonzero(~domain.includes(args[arg]))
        if bad.size and (first_bad < 0 or bad[0] < first_bad):
            first_bad = int(bad[0])
    if first_bad >= 0:
        return 0.0, 0.0, first_bad, None, None, None
    with np.errstate(all="ignore"):
        loss_v, ga, gc = LOSSES[loss](args[0], args[1], args[2], tuple(params))
        w = weight.astype(np.float64) if weight is not None else weight_scalar
        wl = w * loss_v
        total = float(np.sum(wl))
        wsum = float(np.sum(w)) if weight is not None else weight_scalar * a.size
        # np.float64 division: 0/0 is nan (an empty or zero-weight mean), as IEEE and the C++ kernels say
        value = float(np.float64(total) / np.float64(wsum)) if reduction == Reduction.MEAN else total
        out = wl.astype(dtype) if reduction == Reduction.NONE else None
        grad_a = grad_c = None
        if want_grad:
            scale = w / np.float64(wsum) if reduction == Reduction.MEAN else w
            grad_a = (scale * ga).astype(dtype)
            if grads == 2:
                grad_c = (scale * gc).astype(dtype)
    return value, wsum, first_bad, out, grad_a, grad_c
