"""The call path of the class-wise functions: validate -> backend kernel -> shape the result.

Scores have the class axis at position 1 ((N, C) or (N, C, d1, ...), as PyTorch) for the losses, or at
any axis for the activations; either way the kernels see a C-contiguous (outer, classes, inner) array.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastloss import _backend, _validate
from fastloss._specs import RETURN_GRAD, Reduction, Spec


def layout(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(outer, classes, inner) of an array of `shape` with the class axis at `axis`."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])


def row_map(spec: Spec, x: Any, axis: object) -> tuple[np.ndarray, np.ndarray]:
    """Run activation `spec` over `axis`: returns (per-position values, per-element rows) in x's dtype."""
    func, kernel = spec.name, spec.kernels[0].key
    xa = _validate.as_array(x, "x")
    if xa.ndim == 0:
        raise ValueError(f"{func}: x must have at least one dimension")
    ax = spec.check("axis", axis)
    if not -xa.ndim <= ax < xa.ndim:
        raise ValueError(f"{func}: axis {ax} is out of bounds for an array of {xa.ndim} dimensions")
    ax %= xa.ndim
    dtype = _validate.compute_dtype(xa)
    outer, classes, inner = layout(xa.shape, ax)
    if classes == 0:
        raise ValueError(f"{func}: the axis has length 0")
    _, _, _, pos, rows = _backend.kernels().classwise(
        kernel,
        _validate.flat(xa, dtype),
        outer,
        classes,
        inner,
        None,
        None,
        None,
        -100,
        [],
        Reduction.NONE,
        False,
        _backend.thread_arg(),
    )
    pos_shape = xa.shape[:ax] + xa.shape[ax + 1 :]
    return pos.reshape(pos_shape), (rows.reshape(xa.shape) if rows is not None else None)


def class_loss(
    spec: Spec,
    scores: Any,
    target: Any,
    *,
    kernel: str | None = None,
    weight: Any,
    ignore_index: object,
    params: dict[str, object],
    reduction: str,
    return_grad: object,
    weight_name: str = "weight",
) -> Any:
    """Evaluate class-wise loss `spec` (its kernel `kernel`, default the first) with class-index targets,
    or probability targets where the spec has a kernel for them; `params` in kernel order."""
    func = spec.name
    code = spec.check("reduction", reduction)
    values = spec.checked(params)
    return_grad = RETURN_GRAD.check(return_grad)
    if ignore_index is not None:
        spec.check("ignore_index", ignore_index)
    kernel = kernel or spec.kernels[0].key
    prob_kernel = spec.prob_kernel  # type: ignore[attr-defined]
    scores_name = spec.inputs[0].name
    # An ignore_index outside int64 matches no target: the same as none.
    kernel_ignore = ignore_index
    if ignore_index is not None and not -(2**63) <= int(ignore_index) < 2**63:
        kernel_ignore = None
    xs = _validate.as_array(scores, scores_name)
    if xs.dtype.kind != "f":
        xs = xs.astype(np.float64)
    ts = _validate.as_array(target, "target")
    unbatched = xs.ndim == 1
    if unbatched:  # (C,) scores with a scalar class index (or (C,) probabilities), as PyTorch allows
        xs = xs[None]
        ts = ts[None]
    if xs.ndim < 2:
        raise ValueError(f"{func}: {scores_name} must have shape (N, C) or (N, C, d1, ...), got {xs.shape}")
    dtype = _validate.compute_dtype(xs)
    outer, classes, inner = layout(xs.shape, 1)
    if classes == 0:
        raise ValueError(f"{func}: {scores_name} has no classes (C = 0)")
    pos_shape = (xs.shape[0],) + xs.shape[2:]
    prob = ts.dtype.kind == "f"
    if prob:
        if prob_kernel is None:
            raise TypeError(f"{func}: target must hold integer class indices, got dtype {ts.dtype}")
        if ts.shape != xs.shape:
            raise ValueError(
                f"{func}: probability targets must have the input's shape {xs.shape}, got {ts.shape}"
            )
        kernel = prob_kernel
        tidx, tprob = None, _validate.flat(ts, dtype)
    else:
        if ts.dtype.kind not in "iu":
            raise TypeError(
                f"{func}: target must hold integer class indices"
                + (" or float probabilities" if prob_kernel else "")
                + f", got dtype {ts.dtype}"
            )
        if ts.shape != pos_shape:
            raise ValueError(
                f"{func}: class-index targets must have shape {pos_shape} for input of shape {xs.shape}, "
                f"got {ts.shape}"
            )
        if ts.dtype.kind == "u" and ts.size and ts.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{func}: target holds class indices beyond the int64 range")
        tidx, tprob = np.ascontiguousarray(ts, dtype=np.int64).reshape(-1), None
    cw = None
    if weight is not None:
        wa = _validate.as_array(weight, weight_name)
        if wa.ndim == 0 and weight_name == "alpha":  # one alpha for every class
            wa = np.full(classes, wa)
        if wa.shape != (classes,):
            raise ValueError(
                f"{func}: {weight_name} must have shape ({classes},), one per class, got {wa.shape}"
            )
        cw = _validate.flat(wa, dtype)
        if not np.isfinite(cw).all():
            k = int(np.argmin(np.isfinite(cw)))
            bad = f"{weight_name}[{k}] = {float(cw[k])!r}"
            raise ValueError(f"{func}: {weight_name} must be finite; found {bad}")
    value, _, first_bad, out, grad = _backend.kernels().classwise(
        kernel,
        _validate.flat(xs, dtype),
        outer,
        classes,
        inner,
        tidx,
        tprob,
        cw,
        None if kernel_ignore is None else int(kernel_ignore),
        _validate.fits(func, dtype, params, values),
        code,
        return_grad,
        _backend.thread_arg(),
    )
    if first_bad >= 0:
        where = np.unravel_index(first_bad, pos_shape)
        idx = ", ".join(str(int(k)) for k in (where[1:] if unbatched else where))
        loc = f"[{idx}]" if idx else ""
        if prob:
            raise ValueError(
                f"{func}: target probabilities must lie in [0, 1]; found one outside in target{loc}"
            )
        bad = int(tidx[first_bad])
        raise ValueError(
            f"{func}: target must be a class index in [0, {classes})"
            + ("" if ignore_index is None else f" or ignore_index={int(ignore_index)}")
            + f"; found target{loc} = {bad}"
        )
    if code == Reduction.NONE:
        result = out.reshape(pos_shape)
        if unbatched:
            result = result[0]
    else:
        result = _validate.scalar(value, dtype)
    if not return_grad:
        return result
    g = grad.reshape(xs.shape)
    return result, (g[0] if unbatched else g)
