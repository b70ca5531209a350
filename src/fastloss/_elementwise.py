"""The call path every elementwise public function shares: validate -> backend kernel -> shape result."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastloss import _backend, _validate
from fastloss._specs import RETURN_GRAD, Reduction, Spec


def run(
    spec: Spec,
    inputs: dict[str, Any],
    *,
    kernel: str | None = None,
    params: dict[str, object] | None = None,
    weight: Any = None,
    reduction: str | Reduction = "mean",
    return_grad: object = False,
    aux: tuple[str, Any, str] | None = None,
) -> Any:
    """Evaluate the elementwise kernel `kernel` (default: the spec's first) for public function `spec`.

    `inputs` maps argument names to arrays in kernel order (a, b[, c]), `params` the names of the kernel's
    parameters to their values, in kernel order, each checked against the spec's bounds; `aux` is an
    optional (name, value, scalar_kernel) per-element operand that broadcasts like a weight and is passed
    as c (pos_weight); when it holds a single value, kernel `scalar_kernel` runs instead with it as the
    first parameter. `reduction` is the public string, or a Reduction from a caller that chose it.
    Returns the value, or (value, grad) with return_grad; a loss with two differentiable inputs
    returns (value, (grad_a, grad_c)).
    """
    code = reduction if type(reduction) is Reduction else spec.check("reduction", reduction)
    values = spec.checked(params) if params else []
    return_grad = RETURN_GRAD.check(return_grad)
    loss = kernel or spec.kernels[0].key
    names = tuple(inputs)
    arrays = tuple(_validate.as_array(v, k) for k, v in inputs.items())
    shape = _validate.same_shape(names, arrays)
    dtype = _validate.compute_dtype(*arrays)
    flats = [_validate.flat(a, dtype) for a in arrays]
    w, w_scalar = (None, 1.0)
    if weight is not None:
        w, w_scalar = _validate.broadcast_operand(weight, "weight", shape, dtype)
    if aux is not None:
        c, c_scalar = _validate.broadcast_operand(aux[1], aux[0], shape, dtype)
        if c is None:
            loss, values = aux[2], [c_scalar, *values[1:]]
        else:
            flats.append(c)
            names += (aux[0],)
    a, b = flats[0], flats[1]
    c = flats[2] if len(flats) > 2 else None

    value, _, first_bad, out, grad_a, grad_c = _backend.kernels().elementwise(
        loss,
        a,
        b,
        c,
        w,
        w_scalar,
        _validate.fits(spec.name, dtype, params, values),
        code,
        return_grad,
        _backend.thread_arg(),
    )
    if first_bad >= 0:
        raise ValueError(_bad_element_message(spec, loss, names, flats, shape, first_bad))

    result = out.reshape(shape) if code == Reduction.NONE else _validate.scalar(value, dtype)
    if not return_grad:
        return result
    if grad_c is not None:
        return result, (grad_a.reshape(shape), grad_c.reshape(shape))
    return result, grad_a.reshape(shape)


def root_mean(spec: Spec, inputs: dict[str, Any], **kw: Any) -> Any:
    """The square root of the (weighted) mean (RMSE); its gradient ``g / (2 r)``, 0 where r is 0."""
    res = run(spec, inputs, **kw)
    if not kw.get("return_grad"):
        return np.sqrt(res)
    m, g = res
    r = np.sqrt(m)
    if r > 0:
        with np.errstate(invalid="ignore"):  # r = inf: inf * 0 in g is nan, as IEEE says
            g *= g.dtype.type(0.5 / float(r))
    elif r == 0:
        g[...] = 0
    return r, g


def batch_mean(spec: Spec, inputs: dict[str, Any], *, reduction: object, **kw: Any) -> Any:
    """run(), with reduction "batchmean" as well: the sum divided by the first dimension (nan for none)."""
    if spec.check("reduction", reduction) is not Reduction.BATCHMEAN:
        return run(spec, inputs, reduction=reduction, **kw)
    res = run(spec, inputs, reduction=Reduction.SUM, **kw)
    shape = np.shape(next(iter(inputs.values())))
    n = shape[0] if shape else 1
    if not kw.get("return_grad"):
        return res / res.dtype.type(n) if n else res.dtype.type(np.nan)
    value, grad = res
    if n:
        grad /= grad.dtype.type(n)
    return (value / value.dtype.type(n) if n else value.dtype.type(np.nan)), grad


def _bad_element_message(
    spec: Spec, loss: str, names: tuple[str, ...], flats: list[np.ndarray], shape: tuple[int, ...], i: int
) -> str:
    # The domain checks let NaN through (it propagates) but, once the input is rejected anyway, the message
    # names the first position that does not hold a valid value: a NaN before the kernel's first bad element.
    for arg, domain in spec.domains(spec.kernel(loss)):
        x = flats[arg][: i + 1].astype(np.float64)
        if domain.includes(x[i:])[0]:
            continue  # element i was rejected by another check
        j = int(np.argmax(np.isnan(x) | ~domain.includes(x)))
        where = tuple(int(k) for k in np.unravel_index(j, shape)) if shape else ()
        name = names[arg]
        at = ", ".join(map(str, where))
        return f"{spec.name}: {name} {domain.message}; found {name}[{at}] = {float(x[j])!r}"
    where = tuple(int(k) for k in np.unravel_index(i, shape)) if shape else ()
    # unreachable while both backends agree
    return f"{spec.name}: invalid input at [{', '.join(map(str, where))}]"
