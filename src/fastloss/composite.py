"""Regularisers and weighted composite losses.

``l1_penalty`` and ``l2_penalty`` are sums over any number of parameter arrays (Keras's convention: no
1/2). :class:`Composite` builds ``L = sum_k lambda_k L_k`` from any fastloss functions and evaluates the
total, every term's value and, on request, the gradient of the total with respect to each input array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike

from fastloss import _elementwise, _validate
from fastloss._specs import RETURN_GRAD, SPECS, Param, Reduction, api

__all__ = ["Composite", "CompositeResult", "l1_penalty", "l2_penalty"]


def _penalty(func: str, arrays: tuple, return_grad: object) -> Any:
    spec = SPECS[func]
    return_grad = spec.check("return_grad", return_grad)
    total = 0.0
    grads = []
    dtypes = []
    for i, w in enumerate(arrays):
        a = _validate.as_array(w, f"arrays[{i}]")
        # The elementwise driver reads two inputs; a penalty reads only the first (the same array).
        r = _elementwise.run(
            spec, {f"arrays[{i}]": a, "(unused)": a}, reduction=Reduction.SUM, return_grad=return_grad
        )
        value, g = r if return_grad else (r, None)
        total += float(value)
        dtypes.append(np.asarray(value).dtype)
        grads.append(g)
    dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    value = _validate.scalar(total, dtype)
    return (value, tuple(grads)) if return_grad else value


@api
def l1_penalty(*arrays: ArrayLike, return_grad: bool = False) -> Any:
    """L1 regulariser ``sum_k sum |w_k|`` over any number of parameter arrays (Keras ``L1(1.0)``).

    With ``return_grad=True`` returns ``(value, (sign(w_1), sign(w_2), ...))``, one gradient per array
    (0 at w = 0, the subgradient). Scale it yourself, or give it a weight in a :class:`Composite`.

    >>> import fastloss
    >>> float(fastloss.l1_penalty([1.0, -2.0], [[0.5]]))
    3.5
    """
    return _penalty("l1_penalty", arrays, return_grad)


@api
def l2_penalty(*arrays: ArrayLike, return_grad: bool = False) -> Any:
    """L2 regulariser ``sum_k sum w_k^2`` over any number of parameter arrays (Keras ``L2(1.0)``: no 1/2).

    With ``return_grad=True`` returns ``(value, (2 w_1, 2 w_2, ...))``, one gradient per array.

    >>> import fastloss
    >>> float(fastloss.l2_penalty([1.0, -2.0], [[0.5]]))
    5.25
    """
    return _penalty("l2_penalty", arrays, return_grad)


_TERM_WEIGHT = Param("weight", 1.0, doc="The term's factor in the total.")


@dataclass
class _Term:
    name: str
    weight: float
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    wrt: tuple[int, ...] | None


@dataclass
class CompositeResult:
    """What :meth:`Composite.evaluate` returns.

    ``total`` is ``sum_k weight_k value_k``; ``terms`` maps each term's name to its (unweighted) value;
    with gradients, ``grads`` holds d total / d input for every distinct input array, in the order of
    :attr:`Composite.inputs`, and :meth:`grad` looks one up by the array itself.
    """

    total: Any
    terms: dict[str, Any]
    grads: list[np.ndarray] | None = None
    inputs: list[Any] = field(default_factory=list)

    def grad(self, array: Any) -> np.ndarray:
        """d total / d ``array``, for an array passed to one of the terms (by identity)."""
        if self.grads is None:
            raise ValueError("evaluate(return_grad=True) computes gradients; this result has none")
        for a, g in zip(self.inputs, self.grads):
            if a is array:
                return g
        raise KeyError("this array is not a differentiable input of any term")


class Composite:
    """A weighted sum of fastloss losses: ``L = sum_k weight_k L_k(args_k)``.

    Add terms with :meth:`add` (it returns the composite, so calls chain), then :meth:`evaluate`.
    Each term is a fastloss function with its positional arrays and keyword options; it must reduce to a
    scalar (``reduction`` "mean" or "sum"). Its differentiable inputs are its first positional arrays, as
    many as the function returns gradients for (fastloss puts them first), or the positions given as
    ``wrt``. An array passed to several terms (the same object) gets the sum of their gradients.

    >>> import numpy as np, fastloss
    >>> logits, labels = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
    >>> W = np.array([[0.5, -0.5], [1.0, 0.0]])
    >>> loss = fastloss.Composite()
    >>> loss = loss.add(fastloss.cross_entropy, logits, labels, name="ce")
    >>> loss = loss.add(fastloss.l2_penalty, W, weight=1e-2, name="l2")
    >>> res = loss.evaluate(return_grad=True)
    >>> round(float(res.total), 6), sorted(res.terms)
    (0.235095, ['ce', 'l2'])
    >>> res.grad(W).tolist()
    [[0.01, -0.01], [0.02, 0.0]]
    """

    def __init__(self) -> None:
        self._terms: list[_Term] = []

    def add(
        self,
        fn: Callable[..., Any],
        *args: Any,
        weight: float = 1.0,
        name: str | None = None,
        wrt: tuple[int, ...] | None = None,
        **kwargs: Any,
    ) -> Composite:
        """Add the term ``weight * fn(*args, **kwargs)``.

        Parameters
        ----------
        fn : callable
            A fastloss function that reduces to a scalar.
        *args : array_like
            Its positional arrays; the same object in several terms gets the sum of their gradients.
        weight : float, default 1.0
            The term's finite factor in the total.
        name : str, optional
            The term's name in the result (default: the function's name; unique).
        wrt : tuple of int, optional
            The positions of the differentiable arrays (default: the first ones, one per gradient).
        **kwargs
            The function's keyword options (not ``return_grad``: :meth:`evaluate` chooses it).

        Returns
        -------
        Composite
            This composite, so that calls chain.

        Raises
        ------
        TypeError
            For a non-callable ``fn``, a non-string ``name`` or a non-real ``weight``.
        ValueError
            For a duplicate name, ``return_grad`` among the options or ``wrt`` outside the arguments.

        Examples
        --------
        >>> import fastloss
        >>> loss = fastloss.Composite().add(fastloss.mse, [1.0], [0.0])
        >>> loss = loss.add(fastloss.l2_penalty, [2.0], weight=0.5)
        >>> loss.names
        ['mse', 'l2_penalty']
        """
        if not callable(fn):
            raise TypeError(f"Composite.add: fn must be callable, got {type(fn).__name__}")
        w = _TERM_WEIGHT.check(weight)
        label = name if name is not None else getattr(fn, "__name__", f"term{len(self._terms)}")
        if not isinstance(label, str):
            raise TypeError(f"Composite.add: name must be a string, got {type(label).__name__}")
        if any(t.name == label for t in self._terms):
            raise ValueError(f"Composite.add: a term named {label!r} exists already; pass name=")
        if "return_grad" in kwargs:
            raise ValueError("Composite.add: return_grad is chosen by evaluate(), not per term")
        if wrt is not None:
            wrt = tuple(int(i) for i in wrt)
            if any(not 0 <= i < len(args) for i in wrt):
                raise ValueError(f"Composite.add: wrt positions {wrt} are outside the {len(args)} arguments")
        self._terms.append(_Term(label, w, fn, args, kwargs, wrt))
        return self

    @property
    def names(self) -> list[str]:
        return [t.name for t in self._terms]

    @property
    def inputs(self) -> list[Any]:
        """The distinct positional arguments of the terms, in order of first appearance."""
        seen: list[Any] = []
        for t in self._terms:
            for a in t.args:
                if not any(a is s for s in seen):
                    seen.append(a)
        return seen

    def evaluate(self, *, return_grad: bool = False) -> CompositeResult:
        """Every term's value, the weighted total and, with ``return_grad``, d total / d each input.

        Parameters
        ----------
        return_grad : bool, default False
            Also compute the gradient of the total with respect to every distinct input array.

        Returns
        -------
        CompositeResult
            ``total``, ``terms`` (name -> unweighted value) and, with gradients, ``grads`` and ``grad()``.

        Raises
        ------
        ValueError
            Without terms, or when a term does not reduce to a scalar.

        Examples
        --------
        >>> import fastloss
        >>> res = fastloss.Composite().add(fastloss.mse, [1.0], [0.0]).evaluate(return_grad=True)
        >>> float(res.total), res.grads[0].tolist()
        (1.0, [2.0])
        """
        return_grad = RETURN_GRAD.check(return_grad)
        if not self._terms:
            raise ValueError("Composite.evaluate: no terms; add some with Composite.add")
        terms: dict[str, Any] = {}
        total = 0.0
        dtypes = []
        inputs = self.inputs
        grads: list[Any] = [None] * len(inputs)
        for t in self._terms:
            out = t.fn(*t.args, **t.kwargs, return_grad=True) if return_grad else t.fn(*t.args, **t.kwargs)
            value, g = out if return_grad else (out, None)
            if np.ndim(value) != 0:
                raise ValueError(
                    f"Composite: term {t.name!r} returned an array of shape {np.shape(value)}; terms must "
                    "reduce to a scalar (reduction 'mean' or 'sum')"
                )
            terms[t.name] = value
            total += t.weight * float(value)
            dtypes.append(np.asarray(value).dtype)
            if not return_grad:
                continue
            gs = g if isinstance(g, tuple) else (g,)
            positions = t.wrt if t.wrt is not None else tuple(range(len(gs)))
            if len(positions) != len(gs):
                raise ValueError(
                    f"Composite: term {t.name!r} returns {len(gs)} gradients for wrt={positions}"
                )
            for pos, gi in zip(positions, gs):
                k = next(j for j, a in enumerate(inputs) if a is t.args[pos])
                contrib = t.weight * gi
                grads[k] = contrib if grads[k] is None else grads[k] + contrib
        value = _validate.scalar(total, np.result_type(*dtypes))
        if not return_grad:
            return CompositeResult(value, terms, None, inputs)
        # Inputs no term differentiates (labels, targets) get no gradient; keep the list aligned.
        return CompositeResult(value, terms, grads, inputs)
