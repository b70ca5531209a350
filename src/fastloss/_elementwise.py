"""The call path every elementwise public function shares: validate -> backend kernel -> shape result."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastloss import _backend, _validate
from fastloss._numpy import ELEMENTWISE_SPECS


def run(
    func: str,
    loss: str,
    inputs: dict[str, Any],
    *,
    params: dict[str, float] | None = None,
    weight: Any = None,
    reduction: str = "mean",
    return_grad: bool = False,
    aux: tuple[str, Any, str] | None = None,
) -> Any:
    """Evaluate elementwise kernel `loss` for public function `func`.

    `inputs` maps argument names to arrays in kernel order (a, b[, c]), `params` the public names of the
    kernel's parameters to their values, in kernel order; `aux` is an optional (name, value, scalar_loss)
    per-element operand that broadcasts like a weight and is passed as c (pos_weight); when it holds a
    single value, kernel `scalar_loss` runs instead with it as the first parameter.
    Returns the value, or (value, grad) with return_grad; a loss with two differentiable inputs
    returns (value, (grad_a, grad_c)).
    """
    code = _validate.reduction_code(reduction)
    params = params or {}
    return_grad = _validate.bool_param("return_grad", return_grad)
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
            loss, params = aux[2], {aux[0]: c_scalar, **dict(list(params.items())[1:])}
        else:
            flats.append(c)
    a, b = flats[0], flats[1]
    c = flats[2] if len(flats) > 2 else None

    value, _, first_bad, out, grad_a, grad_c = _backend.kernels().elementwise(
        loss,
        a,
        b,
        c,
        w,
        w_scalar,
        _validate.fits(func, dtype, params),
        code,
        return_grad,
        _backend.thread_arg(),
    )
    if first_bad >= 0:
        raise ValueError(_bad_element_message(func, loss, names, flats, shape, first_bad))

    result = out.reshape(shape) if code == 0 else _validate.scalar(value, dtype)
    if not return_grad:
        return result
    if grad_c is not None:
        return result, (grad_a.reshape(shape), grad_c.reshape(shape))
    return result, grad_a.reshape(shape)


def _bad_element_message(
    func: str, loss: str, names: tuple[str, ...], flats: list[np.ndarray], shape: tuple[int, ...], i: int
) -> str:
    # The domain checks let NaN through (it propagates) but, once the input is rejected anyway, the message
    # names the first position that does not hold a valid value: a NaN before the kernel's first bad element.
    for chk in ELEMENTWISE_SPECS[loss].checks:
        x = flats[chk.arg][: i + 1].astype(np.float64)
        if chk.valid(x[i:])[0]:
            continue  # element i was rejected by another check
        j = int(np.argmax(np.isnan(x) | ~chk.valid(x)))
        where = tuple(int(k) for k in np.unravel_index(j, shape)) if shape else ()
        name = names[chk.arg] if chk.arg < len(names) else "c"
        return f"{func}: {name} {chk.message}; found {name}[{', '.join(map(str, where))}] = {float(x[j])!r}"
    where = tuple(int(k) for k in np.unravel_index(i, shape)) if shape else ()
    return f"{func}: invalid input at [{', '.join(map(str, where))}]"  # unreachable while both backends agree
