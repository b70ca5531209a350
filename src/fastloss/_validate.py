"""Shared input normalisation for every public function.

Everything a kernel receives has been through here: a supported dtype, identical shapes, C-contiguous
flat copies (or views) in the computation dtype, a checked reduction and checked parameters. Errors
name the offending argument and value.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterable
from typing import Any, Callable, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

_in_ieee: contextvars.ContextVar[bool] = contextvars.ContextVar("fastloss_ieee", default=False)


def ieee(func: F) -> F:
    """Decorator for the glue around the kernels that computes in NumPy (norms, Gram matrices, final
    ratios): inf, NaN and overflow follow IEEE, as documented, without a RuntimeWarning from fastloss's
    own code. A fresh errstate per outermost call, so it is safe across threads on every NumPy; a
    decorated helper called inside another decorated function reuses the caller's state (an errstate
    costs about a microsecond)."""

    @functools.wraps(func)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        if _in_ieee.get():
            return func(*args, **kwargs)
        token = _in_ieee.set(True)
        try:
            with np.errstate(all="ignore"):
                return func(*args, **kwargs)
        finally:
            _in_ieee.reset(token)

    return quiet  # type: ignore[return-value]


_F32_MAX = float(np.finfo(np.float32).max)


def scalar(value: float, dtype: np.dtype) -> np.generic:
    """A reduced float64 result as a scalar of the computation dtype. Beyond float32's range it rounds to
    +-inf as IEEE says, without NumPy's overflow warning (the check costs a comparison on the common path).
    """
    if dtype.itemsize < 8 and not -_F32_MAX <= value <= _F32_MAX:
        with np.errstate(over="ignore", invalid="ignore"):
            return dtype.type(value)
    return dtype.type(value)


def _from_foreign(x: object, name: str) -> object:
    """What np.asarray should see for `x`: refuses what would be silently misread, and turns a tensor
    NumPy cannot read (bfloat16, or one offering only ``__dlpack__``) into one it can."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array: fastloss does not apply masks; pass np.ma.getdata({name}) with a "
            "weight of 0 where it is masked (or compress the masked elements away)"
        )
    module = type(x).__module__ or ""
    if module.startswith("torch"):
        if getattr(x, "requires_grad", False):
            raise TypeError(
                f"{name} is a torch tensor that requires grad: call {name}.detach() first "
                "(fastloss computes values and gradients itself and records nothing on the autograd tape)"
            )
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            return x.float()  # type: ignore[attr-defined]  # NumPy has no bfloat16: compute as float32
        return x
    if not isinstance(x, np.ndarray) and not hasattr(x, "__array__") and hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, ValueError, BufferError, RuntimeError) as e:
            raise TypeError(f"{name} offers __dlpack__ but NumPy cannot read it: {e}") from None
    return x


def as_array(x: object, name: str) -> np.ndarray:
    """np.asarray with a dtype check: real numbers and booleans only, in a form the kernels read directly.

    Normalised once here for every public function: non-native byte order (files written on another
    machine) is converted to native, an unaligned buffer is copied to an aligned one, and a dtype equal
    to a builtin one but a different object (after pickle, or carrying metadata) is replaced by the
    builtin. bfloat16 (ml_dtypes or torch) becomes float32. Views are returned wherever no conversion is
    needed.
    """
    if type(x) is np.ndarray:  # the common case skips the foreign checks (a masked array is a subclass)
        a = x
    else:
        x = _from_foreign(x, name)  # its TypeErrors are the message, not a conversion failure
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:  # ragged nested sequences and the like
            raise ValueError(f"{name} cannot be converted to an array: {e}") from None
    dt = a.dtype
    if _NATIVE.get(dt.char) is dt:  # a builtin native dtype (the common case): only alignment to check
        return a if a.flags.aligned else a.copy()
    kind = dt.kind
    if kind == "V" and dt.itemsize == 2 and dt.name == "bfloat16":  # ml_dtypes.bfloat16
        return a.astype(np.float32)
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {dt}")
    if kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {dt}")
    if kind == "f" and dt.itemsize > 8:
        raise TypeError(
            f"{name} has dtype {dt}: extended precision is not supported; convert to float64 explicitly"
        )
    native = _NATIVE.get(dt.char)
    if native is None:  # bool, and the platform's other integer aliases
        native = np.dtype(dt.char)
    if not dt.isnative:
        return a.astype(native)
    if not a.flags.aligned:
        return a.copy()
    if dt is not native:  # an equal dtype object that is not the builtin one (pickle, metadata)
        return a.view(native)
    return a


_NATIVE = {c: np.dtype(c) for c in "efdbhilqBHILQ?"}
_F32, _F64 = _NATIVE["f"], _NATIVE["d"]
_FLOAT_MAX = {np.dtype(t): float(np.finfo(t).max) for t in (np.float16, np.float32, np.float64)}


def compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32/float64 natively, float16 as float32; without any float input, float64.

    Integer and boolean arrays (labels, say) take the dtype of the float inputs beside them, so float32
    scores with int8 labels compute in float32.
    """
    first = arrays[0].dtype
    if first is _F64 or first is _F32:  # the common case (as_array made it the builtin dtype object)
        if len(arrays) == 1 or all(a.dtype is first or a.dtype.kind != "f" for a in arrays[1:]):
            return first
    floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
    if not floats:
        return np.dtype(np.float64)
    dt = np.result_type(*floats)
    return np.dtype(np.float32) if dt == np.float16 else np.dtype(dt)


def same_shape(names: tuple[str, ...], arrays: tuple[np.ndarray, ...]) -> tuple[int, ...]:
    shape = arrays[0].shape
    for name, a in zip(names[1:], arrays[1:]):
        if a.shape != shape:
            raise ValueError(
                f"{names[0]} and {name} must have the same shape (no broadcasting), got {shape} and {a.shape}"
            )
    return shape


def flat(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous 1-D array of `dtype` with a's elements in C order; a view when a already is one."""
    if a.dtype is dtype:
        return a.ravel()  # a view when C-contiguous, else a contiguous copy
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def broadcast_operand(
    value: object, name: str, shape: tuple[int, ...], dtype: np.dtype
) -> tuple[np.ndarray | None, float]:
    """An optional per-element operand (weight, pos_weight) that must broadcast to `shape`.

    Returns (None, scalar) when it holds one value, else (flat array of `shape`, 1.0).
    """
    w = as_array(value, name)
    try:
        bshape = np.broadcast_shapes(w.shape, shape)
    except ValueError:
        bshape = None
    if bshape != tuple(shape):
        raise ValueError(f"{name} of shape {w.shape} does not broadcast to the input shape {shape}")
    if w.size == 1:
        return None, float(w.astype(dtype).reshape(()))
    return flat(np.broadcast_to(w, shape), dtype), 1.0


def fits(func: str, dtype: np.dtype, names: Iterable[str] | None, values: list[float]) -> list[float]:
    """The kernel parameters `values` (named `names`), each checked to stay finite in the compute dtype: the
    kernels compute in `dtype`, where 1e300 would become inf (float32), a value the spec already refuses."""
    if dtype is _F64 or not values:  # every float (NaN is refused, an allowed inf meant) fits float64
        return values
    top = _FLOAT_MAX.get(dtype) or _FLOAT_MAX[np.dtype(dtype)]
    for name, v in zip(names or (), values):
        if v == v and abs(v) != np.inf and abs(v) > top:
            raise ValueError(
                f"{func}: {name}={v:g} overflows {np.dtype(dtype).name}, the precision the inputs compute in "
                f"(at most {top:.3g}); pass float64 inputs"
            )
    return values
