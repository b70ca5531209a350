"""One declarative spec per public function: the single place that says what each loss takes.

A :class:`Spec` holds, for the function of the same name (which is also its primary kernel key, bench case
name, CLI name and test id): its family, its array inputs with their domains, its keyword parameters with
their defaults and bounds, how many gradients it returns, the kernels it runs, whether float32 inputs
compute in float32 lanes, and what ``"mean"`` divides by. Domains are data (:class:`Interval`,
:class:`Values`, ...), in the manner of scikit-learn's ``sklearn/_loss/link.py`` ``Interval``: the argument
checks and their messages, the NumPy backend's domain checks, the generated docstrings and the tests'
input generators all read them, so none of them restates a bound.
"""

from __future__ import annotations

import enum
import inspect
import math
import numbers
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

Family = Literal[
    "elementwise", "classwise", "activation", "rowwise", "pairwise", "similarity", "overlap", "glue"
]
ReductionName = Literal["mean", "sum", "none"]


class Reduction(enum.IntEnum):
    """The reduction codes every kernel takes (C++ and NumPy alike). BATCHMEAN is kl_div's only: it runs
    as SUM and divides by the first dimension."""

    NONE = 0
    SUM = 1
    MEAN = 2
    BATCHMEAN = 3


_REDUCTIONS = {r.name.lower(): r for r in Reduction}


def reduction(value: object, func: str = "", allowed: tuple[str, ...] = ("mean", "sum", "none")) -> Reduction:
    """The code of a public ``reduction`` argument, or TypeError/ValueError naming the accepted ones."""
    if not isinstance(value, str):
        raise TypeError(f"reduction must be a string, got {type(value).__name__}")
    code = _REDUCTIONS.get(value)
    if code is None or value not in allowed:
        if value in ("mean", "sum", "none"):  # a kernel reduction this function does not offer
            only = " or ".join(repr(a) for a in allowed)
            raise ValueError(f"{func} supports only reduction={only}, got {value!r}")
        raise ValueError(f"reduction must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return code


# ---------------------------------------------------------------------------------------------------
# Domains: the values an input or a parameter may take.


@dataclass(frozen=True)
class Interval:
    """Real numbers between ``low`` and ``high``; each end included or not. NaN is inside for array
    inputs (it propagates) and outside for parameters (a NaN parameter is never meant)."""

    low: float = -math.inf
    high: float = math.inf
    low_inclusive: bool = False
    high_inclusive: bool = False
    note: str = ""  # what the values are, for the message: "probabilities"

    def includes(self, x: np.ndarray) -> np.ndarray:
        """Elementwise: x lies in the interval, or is NaN."""
        below = (x < self.low) if self.low_inclusive else (x <= self.low)
        above = (x > self.high) if self.high_inclusive else (x >= self.high)
        return ~(below | above)

    def contains(self, v: float) -> bool:
        """A scalar lies in the interval (NaN does not)."""
        lo = v >= self.low if self.low_inclusive else v > self.low
        return lo and (v <= self.high if self.high_inclusive else v < self.high)

    @property
    def checked(self) -> bool:
        """Whether an array input needs a check at all (every float, inf included, is in ANY)."""
        return not (
            self.low == -math.inf and self.high == math.inf and self.low_inclusive and self.high_inclusive
        )

    def describe(self) -> str:
        """'in [0, 1]', '> 0', '>= 0', '<= 1', or '' for every real."""
        lo, hi = math.isfinite(self.low), math.isfinite(self.high)
        if lo and hi:
            left, right = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
            text = f"in {left}{self.low:g}, {self.high:g}{right}"
        elif lo:
            text = f"{'>=' if self.low_inclusive else '>'} {self.low:g}"

        elif hi:
            text = f"{'<=' if self.high_inclusive else '<'} {self.high:g}"
        else:
            return ""
        return text

    @property
    def message(self) -> str:
        d = self.describe()
        text = f"must lie {d}" if d.startswith("in") else f"must be {d}"
        return f"{text} ({self.note})" if self.note else text

    def inside(self) -> list[float]:
        """A few values inside, ends included where they are, for the tests' generators."""
        lo = self.low if math.isfinite(self.low) else -3.0
        hi = self.high if math.isfinite(self.high) else lo + 6.0
        vals = [lo + (hi - lo) * f for f in (0.25, 0.5, 0.75)]
        vals += [e for e, inc in ((self.low, self.low_inclusive), (self.high, self.high_inclusive)) if inc]
        return vals

    def outside(self) -> list[float]:
        """Values just outside each finite end (the end itself where it is excluded)."""
        vals: list[float] = []
        if math.isfinite(self.low):
            vals.append(self.low - max(1.0, abs(self.low)) * 0.5)
            if not self.low_inclusive:
                vals.append(self.low)
        if math.isfinite(self.high):
            vals.append(self.high + max(1.0, abs(self.high)) * 0.5)
            if not self.high_inclusive:
                vals.append(self.high)
        return vals


@dataclass(frozen=True)
class Values:
    """Exactly one of a few real values (NaN passes for array inputs)."""

    values: tuple[float, ...]
    message: str

    checked = True

    def includes(self, x: np.ndarray) -> np.ndarray:
        ok = np.isnan(x)
        for v in self.values:
            ok = ok | (x == v)
        return ok

    def contains(self, v: float) -> bool:
        return v in self.values

    def describe(self) -> str:
        return " or ".join(f"{v:g}" for v in self.values)

    def inside(self) -> list[float]:
        return list(self.values)

    def outside(self) -> list[float]:
        return [0.5, 0.0 if 0.0 not in self.values else 2.0]


@dataclass(frozen=True)
class Integers:
    """Integer arrays: class indices in [0, C) (``classes`` names the axis giving C), labels that only
    group rows (``classes=None``), or a permutation of [0, n)."""

    classes: str | None = None
    ignore_index: bool = False  # class indices may equal ignore_index instead
    permutation: bool = False

    checked = True

    @property
    def message(self) -> str:
        if self.permutation:
            return "must be a permutation of 0..n-1"
        if self.classes is None:
            return "must hold integer labels"
        return f"must be a class index in [0, {self.classes})" + (
            " or ignore_index" if self.ignore_index else ""
        )

    def describe(self) -> str:
        return self.message.removeprefix("must be ").removeprefix("must hold ")


ANY = Interval(low_inclusive=True, high_inclusive=True)  # an array input: every float, +-inf included
REAL = Interval()  # a parameter: every finite real
UNIT = Interval(0.0, 1.0, True, True)
PROBABILITIES = Interval(0.0, math.inf, True, True, note="probabilities")
PM1 = Values((-1.0, 1.0), "must be exactly -1 or +1")
LABELS = Integers()
Domain = Interval | Values | Integers


# ---------------------------------------------------------------------------------------------------
# Inputs and parameters.


@dataclass(frozen=True)
class Input:
    """An array argument: its name, the values it may hold, its shape in words and what it is."""

    name: str
    domain: Domain = ANY
    shape: str = ""
    doc: str = ""
    optional: bool = False


Kind = Literal["real", "int", "bool", "choice", "array", "reduction"]


@dataclass(frozen=True)
class Param:
    """A keyword parameter: default, kind and bounds. ``check`` is the one place its value is validated."""

    name: str
    default: Any
    kind: Kind = "real"
    bounds: Interval = REAL  # for "real": the interval; +-inf allowed only where it is inside it
    choices: tuple[Any, ...] = ()  # for "choice" (and a "real" that must be one of a few values)
    doc: str = ""

    def __post_init__(self) -> None:
        # The check of each kind, chosen once: a call with a valid value costs a dict lookup or two
        # comparisons on the common path (this runs on every call of every public function).
        check = {
            "real": self._real,
            "bool": self._bool,
            "int": self._int,
            "choice": self._choice,
            "reduction": self._reduction,
        }.get(self.kind, self._array)
        object.__setattr__(self, "check", check)
        if self.kind == "reduction":
            object.__setattr__(self, "_codes", {c: _REDUCTIONS[c] for c in self.choices})
        b = self.bounds
        object.__setattr__(self, "_b", (b.low, b.low_inclusive, b.high, b.high_inclusive))

    def check(self, value: object, func: str = "") -> Any:  # replaced per instance in __post_init__
        raise NotImplementedError

    def _bool(self, value: object, func: str = "") -> bool:
        if value is True or value is False:
            return value
        if not isinstance(value, np.bool_):
            raise TypeError(f"{self.name} must be a bool, got {type(value).__name__}")
        return bool(value)

    def _int(self, value: object, func: str = "") -> int:
        if type(value) is int:
            return value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{func}: {self.name} must be an int, got {type(value).__name__}")
        return int(value)

    def _choice(self, value: object, func: str = "") -> Any:
        if not isinstance(value, str) and not (value is None and None in self.choices):
            raise TypeError(f"{func}: {self.name} must be a string, got {type(value).__name__}")
        if value not in self.choices:
            raise ValueError(
                f"{func}: {self.name} must be one of {', '.join(map(repr, self.choices))}; got {value!r}"
            )
        return value

    def _reduction(self, value: object, func: str = "") -> Reduction:
        code = self._codes.get(value) if type(value) is str else None  # type: ignore[attr-defined]
        return code if code is not None else reduction(value, func, self.choices)

    def _array(self, value: object, func: str = "") -> object:
        return value  # arrays: checked by the family's driver against the input shapes

    def _real(self, value: object, func: str = "") -> float:
        t = type(value)
        if (t is float or t is int) and not self.choices:  # the common case: a Python number
            v = float(value)  # type: ignore[arg-type]
            b = self.bounds
            if (v > b.low or (b.low_inclusive and v == b.low)) and (
                v < b.high or (b.high_inclusive and v == b.high)
            ):
                return v  # inside the bounds (NaN is never inside)
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
            value = value.item()
        if self.choices:  # one of a few numbers (a power): anything else is a wrong value
            if (
                isinstance(value, (bool, np.bool_))
                or not isinstance(value, numbers.Real)
                or value not in self.choices
            ):
                one_of = " or ".join(f"{c:g}" for c in self.choices)
                raise ValueError(f"{func}: {self.name} must be {one_of}, got {value!r}")
            return float(value)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{self.name} must be a real number, got {type(value).__name__}")
        v = float(value)
        if v != v:
            raise ValueError(f"{self.name} must not be NaN")
        b = self.bounds
        if math.isinf(v) and not b.contains(v):
            raise ValueError(f"{self.name} must be finite, got {v:g}")
        if not b.contains(v):
            raise ValueError(f"{self.name} must be {b.describe()}, got {v:g}")
        return v

    def bad_values(self) -> list[tuple[object, type[Exception]]]:
        """Values ``check`` refuses, with the exception each raises: generated from the kind and bounds."""
        if self.kind == "real" and self.choices:  # a number from a short list: anything else is a wrong value
            return [
                (v, ValueError) for v in (math.nan, "1", True, max(self.choices) + 1.0, min(self.choices) / 2)
            ]
        if self.kind == "real":
            bad: list[tuple[object, type[Exception]]] = [
                (math.nan, ValueError),
                ("1", TypeError),
                (True, TypeError),
            ]
            bad += [(v, ValueError) for v in self.bounds.outside()]
            bad += [(v, ValueError) for v in (math.inf, -math.inf) if not self.bounds.contains(v)]
            return bad
        if self.kind == "bool":
            return [(1, TypeError), ("yes", TypeError), (None, TypeError)]
        if self.kind == "int":
            return [(1.5, TypeError), (True, TypeError), ("1", TypeError)]
        if self.kind in ("choice", "reduction"):
            return [("__bogus__", ValueError), (3, TypeError)]
        return []

    def describe(self) -> str:
        """The numpydoc type line: ``float, default 1.0`` and the like."""
        if self.kind == "reduction":
            return "{" + ", ".join(f'"{c}"' for c in self.choices) + f'}}, default "{self.default}"'
        if self.kind == "choice":
            return (
                "{"
                + ", ".join("None" if c is None else f'"{c}"' for c in self.choices)
                + "}, default "
                + ("None" if self.default is None else f'"{self.default}"')
            )
        if self.kind == "array":
            return "array_like, optional"
        return f"{self.kind if self.kind != 'real' else 'float'}, default {self.default!r}"


def reduction_param(*choices: str, default: str = "mean") -> Param:
    return Param("reduction", default, "reduction", choices=choices or ("mean", "sum", "none"))


RETURN_GRAD = Param(
    "return_grad", False, "bool", doc="Also return the gradient(s), computed in the same pass."
)
WEIGHT = Param(
    "weight",
    None,
    "array",
    doc="Per-element weights broadcastable to the first input: ``'none'`` returns ``w l``, ``'sum'`` is "
    "``sum(w l)`` and ``'mean'`` the weighted mean ``sum(w l) / sum(w)``.",
)
CLASS_WEIGHT = Param("weight", None, "array", doc="C per-class weights (PyTorch's ``weight``).")
IGNORE_INDEX = Param("ignore_index", -100, "int", doc="Positions whose target equals it count nothing.")


# ---------------------------------------------------------------------------------------------------
# Specs.


@dataclass(frozen=True)
class Kernel:
    """A backend kernel a public function runs: its key in the compiled and NumPy kernel tables, the
    inputs it reads in kernel order (default: the function's inputs), and which of them its pass checks
    (default: every input with a domain). ``target`` is the class-wise kernels' kind of target."""

    key: str
    args: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None
    target: Literal["index", "prob", None] = None


@dataclass(frozen=True)
class Spec:
    name: str
    family: Family
    inputs: tuple[Input, ...]
    params: tuple[Param, ...] = ()
    grads: int = 1  # gradients returned with return_grad=True (one per differentiable input); 0: none
    kernels: tuple[Kernel, ...] = ()
    float32_lanes: bool = False  # float32 inputs compute their elements in float32 lanes
    mean: str = ""  # what "mean" divides by
    matches: str = ""  # the peer whose semantics it follows
    returns: str = ""  # for a function that is not a loss: what it returns
    wrt: tuple[str, ...] = ()  # the inputs the gradients are of, when not the first `grads` ones
    by_name: dict[str, Param] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update({p.name: p for p in self.params})
        # read on every call: computed once
        prob = next((k.key for k in self.kernels if k.target == "prob"), None)
        object.__setattr__(self, "prob_kernel", prob)  # the class-wise kernel of probability targets

    def check(self, name: str, value: object) -> Any:
        """The checked value of parameter `name` (TypeError/ValueError naming it otherwise)."""
        return self.by_name[name].check(value, self.name)

    def checked(self, params: dict[str, object]) -> list[float]:
        """Checked values of the named parameters, in the given (kernel) order."""
        by_name, func, out = self.by_name, self.name, []
        for k, v in params.items():  # a loop: cheaper than a comprehension for the one or two there are
            out.append(by_name[k].check(v, func))
        return out

    @property
    def differentiable(self) -> tuple[str, ...]:
        """The inputs the gradients are with respect to, in the order they are returned."""
        return self.wrt or tuple(i.name for i in self.inputs[: self.grads])

    def input(self, name: str) -> Input:
        return next(i for i in self.inputs if i.name == name)

    def kernel(self, key: str) -> Kernel:
        return next(k for k in self.kernels if k.key == key)

    def domains(self, kernel: Kernel) -> tuple[tuple[int, Domain], ...]:
        """(kernel argument index, domain) of each input `kernel` checks."""
        args = kernel.args or tuple(i.name for i in self.inputs)
        known = {i.name: i.domain for i in self.inputs}
        known.update({p.name: ANY for p in self.params})
        names = kernel.checks if kernel.checks is not None else tuple(a for a in args if known[a].checked)
        return tuple((args.index(n), known[n]) for n in names)

    @property
    def reductions(self) -> tuple[str, ...]:
        p = self.by_name.get("reduction")
        return p.choices if p is not None else ()


def _k(*keys: str, **kw: Any) -> tuple[Kernel, ...]:
    return tuple(Kernel(k, **kw) for k in keys)


def _spec(name: str, family: Family, inputs: tuple[Input, ...], params: tuple[Param, ...], **kw: Any) -> Spec:
    kw.setdefault("kernels", () if family not in ("elementwise", "classwise", "activation") else _k(name))
    return Spec(name, family, inputs, params, **kw)


def _elementwise(
    name: str, inputs: tuple[Input, ...], *params: Param, weight: bool = True, **kw: Any
) -> Spec:
    """An elementwise loss: inputs of one shape, an optional per-element weight, the weighted mean."""
    red = kw.pop("reduction", reduction_param())
    kw.setdefault("mean", "the sum of the weights (the element count without a weight)")
    return _spec(
        name, "elementwise", inputs, (*params, *((WEIGHT,) if weight else ()), red, RETURN_GRAD), **kw
    )


def _classwise(name: str, scores: str, *params: Param, probs: bool = False, **kw: Any) -> Spec:
    """A class-wise loss over the class axis 1 of (N, C, d1, ...) scores and class-index targets."""
    target = "Class indices of shape (N, d1, ...)" + (
        ", or class probabilities of the scores' shape (a float dtype)" if probs else ""
    )
    ignore = any(p.name == "ignore_index" for p in params)
    inputs = (
        Input(scores, shape="(N, C, d1, ...) or (C,)", doc="Scores, the class axis at 1."),
        Input("target", Integers("C", ignore_index=ignore), shape="(N, d1, ...) or ()", doc=target + "."),
    )
    kw.setdefault("kernels", _k(name, target="index"))
    return _spec(name, "classwise", inputs, (*params, reduction_param(), RETURN_GRAD), **kw)


def _embeddings(
    name: str,
    family: Family,
    inputs: tuple[Input, ...],
    *params: Param,
    reductions: tuple[str, ...] | None = ("mean", "sum", "none"),
    **kw: Any,
) -> Spec:
    """A metric-learning loss over rows of embeddings; the mean is over rows unless `mean` says otherwise."""
    kw.setdefault("mean", "the number of rows")
    tail = ((reduction_param(*reductions),) if reductions else ()) + (RETURN_GRAD,)
    return _spec(name, family, inputs, (*params, *tail), **kw)


def _overlap(name: str, *params: Param, squared: bool = True, **kw: Any) -> Spec:
    """A segmentation overlap loss (MONAI's options); `params` come first, then the common ones."""
    inputs = (
        Input("pred", shape="(B, C, d1, ...)", doc="Probabilities (or scores with ``activation``)."),
        Input(
            "target",
            shape="pred's shape, or (B, 1, d1, ...) / (B, d1, ...) labels",
            doc="Soft or one-hot targets of pred's shape, or integer labels in [0, C).",
        ),
    )
    common = (
        Param("smooth_nr", 1e-5, bounds=NONNEG, doc="Added to the numerator."),
        Param("smooth_dr", 1e-5, bounds=NONNEG, doc="Added to the denominator."),
    ) + (
        (Param("squared", False, "bool", doc="Square pred and target in the denominator sums."),)
        if squared
        else ()
    )
    flags = (
        Param("batch", False, "bool", doc="Sum over the batch before the ratio (one term per channel)."),
        Param("include_background", True, "bool", doc="Keep channel 0."),
        Param(
            "activation", None, "choice", choices=(None, "sigmoid", "softmax"), doc="Applied to pred first."
        ),
    )
    return _spec(
        name,
        "overlap",
        inputs,
        (*params, *common, *flags, reduction_param(), RETURN_GRAD),
        mean="the number of (batch, channel) terms",
        matches="monai.losses",
        **kw,
    )


def _real(name: str, default: float, bounds: Interval = REAL, doc: str = "", **kw: Any) -> Param:
    return Param(name, default, "real", bounds, doc=doc, **kw)


POS = Interval(0.0, math.inf, False, False)
POS_INF = Interval(0.0, math.inf, False, True)
NONNEG = Interval(0.0, math.inf, True, False)
BELOW_1 = Interval(high=1.0, high_inclusive=True)

_X = Input("pred", shape="any", doc="Predictions.")
_T = Input("target", shape="pred's shape", doc="Targets.")
_LOGITS = Input("logits", shape="any", doc="Logits (raw scores).")
_SOFT = Input(
    "target", UNIT, shape="logits' shape", doc="Binary targets; soft labels in [0, 1] are used linearly."
)


def _emb(name: str, shape: str = "(N, d)", doc: str = "Embeddings, one per row.", **kw: Any) -> Input:
    return Input(name, shape=shape, doc=doc, **kw)


def _specs() -> list[Spec]:
    regression = [
        _elementwise("mse", (_X, _T), matches="torch.nn.functional.mse_loss"),
        _elementwise("mae", (_X, _T), matches="torch.nn.functional.l1_loss"),
        _elementwise(
            "rmse",
            (_X, _T),
            kernels=_k("mse"),
            reduction=reduction_param("mean"),
            matches="sklearn.metrics.root_mean_squared_error",
        ),
        _elementwise(
            "huber",
            (_X, _T),
            _real("delta", 1.0, POS_INF, "Where the quadratic part ends; inf: all quadratic."),
            matches="torch.nn.functional.huber_loss",
        ),
        _elementwise(
            "smooth_l1",
            (_X, _T),
            _real("beta", 1.0, NONNEG, "Where the quadratic part ends; 0: L1."),
            kernels=_k("smooth_l1", "mae"),
            matches="torch.nn.functional.smooth_l1_loss",
        ),
        _elementwise("log_cosh", (_X, _T), matches="keras.losses.log_cosh"),
        _elementwise(
            "pseudo_huber",
            (_X, _T),
            _real("delta", 1.0, POS_INF, "The scale of the quadratic part."),
            matches="scipy.special.pseudo_huber",
        ),
        _elementwise(
            "pinball",
            (_X, _T),
            _real("quantile", 0.5, UNIT, "The quantile q."),
            matches="sklearn.metrics.mean_pinball_loss",
        ),
    ]
    binary = [
        _elementwise(
            "hinge",
            (
                Input("scores", shape="any", doc="Decision values."),
                Input("target", PM1, shape="scores' shape", doc="Labels, exactly -1 or +1."),
            ),
            _real("margin", 1.0, doc="The margin."),
            Param("squared", False, "bool", doc="Square the hinge."),
            kernels=_k("hinge", "hinge_squared"),
            matches="sklearn.metrics.hinge_loss",
        ),
        _elementwise(
            "binary_cross_entropy",
            (
                Input("probs", UNIT, shape="any", doc="Probabilities."),
                Input("target", UNIT, shape="probs' shape", doc="Binary targets in [0, 1]."),
            ),
            matches="torch.nn.functional.binary_cross_entropy",
        ),
        _elementwise(
            "binary_cross_entropy_with_logits",
            (_LOGITS, _SOFT),
            Param(
                "pos_weight", None, "array", doc="Weight of the positive term, broadcastable to the logits."
            ),
            kernels=(
                Kernel("binary_cross_entropy_with_logits"),
                Kernel("binary_cross_entropy_with_logits_pw", args=("logits", "target", "pos_weight")),
            ),
            float32_lanes=True,
            matches="torch.nn.functional.binary_cross_entropy_with_logits",
        ),
        _elementwise(
            "sigmoid_focal_loss",
            (_LOGITS, _SOFT),
            _real("alpha", 0.25, BELOW_1, "Weight of the positive class; negative: no balancing."),
            _real("gamma", 2.0, NONNEG, "The focusing exponent."),
            float32_lanes=True,
            matches="torchvision.ops.sigmoid_focal_loss",
        ),
        _elementwise(
            "margin_ranking_loss",
            (
                Input("x1", shape="any", doc="First scores."),
                Input("x2", shape="x1's shape", doc="Second scores."),
                Input("target", PM1, shape="x1's shape", doc="+1: x1 ranks higher; -1: x2."),
            ),
            _real("margin", 0.0, doc="The margin."),
            grads=2,
            kernels=_k("margin_ranking_loss", args=("x1", "target", "x2")),
            matches="torch.nn.functional.margin_ranking_loss",
        ),
        _elementwise(
            "kl_div",
            (
                Input("input", shape="any", doc="Log-probabilities log Q."),
                Input(
                    "target",
                    PROBABILITIES,
                    shape="input's shape",
                    doc="Probabilities P (log P with ``log_target=True``).",
                ),
            ),
            Param("log_target", False, "bool", doc="target holds log-probabilities."),
            weight=False,
            reduction=reduction_param("batchmean", "sum", "mean", "none", default="batchmean"),
            kernels=(Kernel("kl_div"), Kernel("kl_div_log_target", checks=())),
            float32_lanes=True,
            mean="the element count ('batchmean': the first dimension)",
            matches="torch.nn.functional.kl_div",
        ),
    ]
    classwise = [
        _classwise(
            "cross_entropy",
            "logits",
            CLASS_WEIGHT,
            IGNORE_INDEX,
            _real("label_smoothing", 0.0, UNIT, "Mass spread uniformly over the classes."),
            probs=True,
            kernels=(Kernel("cross_entropy", target="index"), Kernel("cross_entropy_prob", target="prob")),
            mean="the sum of the targets' class weights over non-ignored positions (probability targets: "
            "the positions)",
            matches="torch.nn.functional.cross_entropy",
        ),
        _classwise(
            "nll_loss",
            "log_probs",
            CLASS_WEIGHT,
            IGNORE_INDEX,
            mean="the sum of the targets' class weights over non-ignored positions",
            matches="torch.nn.functional.nll_loss",
        ),
        _classwise(
            "softmax_focal_loss",
            "logits",
            _real("gamma", 2.0, NONNEG, "The focusing exponent."),
            Param("alpha", None, "array", doc="None, one factor, or C per-class factors."),
            IGNORE_INDEX,
            mean="the non-ignored positions",
            matches="torchvision-style multi-class focal loss",
        ),
        _classwise(
            "poly1_cross_entropy",
            "logits",
            _real("epsilon", 1.0, doc="Weight of the (1 - p_y) term."),
            IGNORE_INDEX,
            mean="the non-ignored positions",
            matches="Leng et al. 2022 (Poly-1)",
        ),
        _classwise(
            "multiclass_hinge",
            "scores",
            _real("margin", 1.0, doc="The margin."),
            _real("p", 1, doc="The power, 1 or 2.", choices=(1.0, 2.0)),
            CLASS_WEIGHT,
            Param(
                "method",
                "weston_watkins",
                "choice",
                choices=("weston_watkins", "crammer_singer"),
                doc="Sum over wrong classes (Weston-Watkins) or the largest one (Crammer-Singer).",
            ),
            kernels=_k(*(f"multiclass_hinge_{m}{p}" for m in ("ww", "cs") for p in (1, 2)), target="index"),
            mean="the positions",
            matches="torch.nn.functional.multi_margin_loss",
        ),
    ]
    axis = Param("axis", -1, "int", doc="The axis the activation runs along.")
    x = Input("x", shape="at least 1-D", doc="Scores.")
    activations = [
        _spec(
            "softmax",
            "activation",
            (x,),
            (axis,),
            grads=0,
            returns="Of x's shape and dtype",
            matches="scipy.special.softmax",
        ),
        _spec(
            "log_softmax",
            "activation",
            (x,),
            (axis,),
            grads=0,
            returns="Of x's shape and dtype",
            matches="scipy.special.log_softmax",
        ),
        _spec(
            "logsumexp",
            "activation",
            (x,),
            (axis,),
            grads=0,
            returns="Of x's shape without the axis",
            matches="scipy.special.logsumexp",
        ),
        _spec(
            "sigmoid",
            "elementwise",
            (Input("x", shape="any", doc="Scores."),),
            (),
            grads=0,
            kernels=_k("sigmoid", args=("x", "x")),
            float32_lanes=True,
            returns="Of x's shape and dtype",
            matches="scipy.special.expit",
        ),
    ]
    margin_nonneg = _real("margin", 1.0, NONNEG, "The margin.")
    metric = [
        _spec(
            "pairwise_distances",
            "pairwise",
            (_emb("x"), _emb("y", "(M, d)", optional=True)),
            (
                Param(
                    "metric",
                    "euclidean",
                    "choice",
                    choices=("euclidean", "sqeuclidean", "cosine", "manhattan"),
                    doc="The distance.",
                ),
            ),
            grads=0,
            returns="The (N, M) distances",
            matches="scipy.spatial.distance.cdist",
        ),
        _embeddings(
            "contrastive_loss",
            "rowwise",
            (
                _emb("x1"),
                _emb("x2"),
                Input("target", UNIT, shape="(N,)", doc="1: a similar pair, 0: a dissimilar one."),
            ),
            margin_nonneg,
            grads=2,
            kernels=_k("contrastive_loss"),
            matches="Hadsell, Chopra and LeCun 2006",
        ),
        _embeddings(
            "pairwise_contrastive_loss",
            "pairwise",
            (_emb("embeddings"), Input("labels", LABELS, shape="(N,)", doc="Group labels.")),
            margin_nonneg,
            reductions=("mean", "sum"),  # 'none' would be the N x N matrix of pair losses
            mean="the number of pairs i < j",
            matches="pytorch-metric-learning ContrastiveLoss",
        ),
        _embeddings(
            "triplet_margin_loss",
            "rowwise",
            (_emb("anchor"), _emb("positive"), _emb("negative")),
            _real("margin", 1.0, POS, "The margin."),
            _real("p", 2.0, POS, "The norm's order."),
            _real("eps", 1e-6, NONNEG, "Added to the differences, as PyTorch."),
            Param("swap", False, "bool", doc="Use the positive-negative distance when smaller."),
            grads=3,
            kernels=_k("triplet_margin_loss"),
            matches="torch.nn.functional.triplet_margin_loss",
        ),
        _embeddings(
            "cosine_embedding_loss",
            "rowwise",
            (_emb("x1"), _emb("x2"), Input("target", PM1, shape="(N,)", doc="+1: similar, -1: dissimilar.")),
            _real("margin", 0.0, doc="The margin of dissimilar pairs."),
            grads=2,
            kernels=_k("cosine_embedding_loss"),
            matches="torch.nn.functional.cosine_embedding_loss",
        ),
        _embeddings(
            "batch_hard_triplet_loss",
            "pairwise",
            (_emb("embeddings"), Input("labels", LABELS, shape="(N,)", doc="Group labels.")),
            _real("margin", 1.0, doc="The margin."),
            mean="the anchors",
            matches="Hermans et al. 2017 (batch hard)",
        ),
        _embeddings(
            "info_nce",
            "similarity",
            (
                _emb("query"),
                _emb("positive"),
                _emb(
                    "negatives", "(M, d)", "Shared negatives; None: the other rows' positives.", optional=True
                ),
            ),
            _real("temperature", 0.1, POS, "Divides the cosine similarities."),
            grads=3,
            matches="Oord et al. 2018 (InfoNCE)",
        ),
        _embeddings(
            "nt_xent",
            "similarity",
            (_emb("z1"), _emb("z2")),
            _real("temperature", 0.5, POS, "Divides the cosine similarities."),
            grads=2,
            mean="the 2N rows",
            matches="Chen et al. 2020 (SimCLR)",
        ),
        _embeddings(
            "multiple_negatives_ranking_loss",
            "similarity",
            (_emb("anchors"), _emb("positives")),
            _real("scale", 20.0, POS, "Multiplies the cosine similarities."),
            grads=2,
            matches="sentence_transformers.losses.MultipleNegativesRankingLoss",
        ),
        _embeddings(
            "ge2e_loss",
            "similarity",
            (_emb("embeddings", "(S, U, d)", "Utterance embeddings per speaker."),),
            _real("w", 10.0, POS, "Scale of the similarities."),
            _real("b", -5.0, doc="Bias of the similarities."),
            Param("method", "softmax", "choice", choices=("softmax", "contrast"), doc="The GE2E variant."),
            mean="the S U utterances",
            matches="Wan et al. 2018 (GE2E)",
        ),
        _embeddings(
            "arcface_loss",
            "similarity",
            (
                _emb("embeddings"),
                _emb("weight", "(C, d)", "Class centres."),
                Input("labels", Integers("C"), shape="(N,)", doc="Class indices."),
            ),
            _real("scale", 64.0, POS, "Multiplies the cosines."),
            _real("margin", 0.5, NONNEG, "The additive angular margin."),
            grads=2,
            matches="InsightFace ArcFace",
        ),
        _embeddings(
            "kmeans_inertia",
            "pairwise",
            (_emb("x"), _emb("centers", "(K, d)", "Cluster centres.")),
            Param("sample_weight", None, "array", doc="N non-negative row weights."),
            reductions=None,
            grads=2,
            mean="(no mean: the weighted sum)",
            returns="(inertia, labels): the weighted sum of squared distances to the nearest centers, and "
            "each row's nearest center (int64)",
            matches="sklearn.cluster.KMeans.score and predict",
        ),
    ]
    segmentation = [
        _overlap("dice_loss"),
        _overlap("jaccard_loss"),
        _overlap(
            "tversky_loss",
            _real("alpha", 0.5, NONNEG, "Weight of the false positives."),
            _real("beta", 0.5, NONNEG, "Weight of the false negatives."),
            squared=False,
        ),
    ]
    feats = (
        _emb("features_a", "(B, C, ...)", "Features."),
        _emb("features_b", "features_a's shape", "Features."),
    )
    glue = [
        _spec(
            "l1_penalty",
            "elementwise",
            (Input("arrays", shape="any, one or more", doc="Parameters."),),
            (RETURN_GRAD,),
            kernels=_k("l1_penalty", args=("arrays", "arrays")),
            mean="(no mean: the sum)",
        ),
        _spec(
            "l2_penalty",
            "elementwise",
            (Input("arrays", shape="any, one or more", doc="Parameters."),),
            (RETURN_GRAD,),
            kernels=_k("l2_penalty", args=("arrays", "arrays")),
            mean="(no mean: the sum)",
        ),
        _spec(
            "gram_matrix",
            "glue",
            (Input("features", shape="(C, N), (C, H, W) or (B, C, H, W)", doc="Feature maps."),),
            (Param("normalize", True, "bool", doc="Divide by ``C H W`` (or ``C N``)."),),
            grads=0,
            returns="The Gram matrices: (C, C), or (B, C, C) for a batch",
        ),
        _spec(
            "style_loss",
            "glue",
            feats,
            (RETURN_GRAD,),
            grads=2,
            mean="(the squared Gram difference, averaged)",
            matches="Gatys et al. 2016",
        ),
        _spec(
            "perceptual_loss",
            "glue",
            feats,
            (reduction_param(), RETURN_GRAD),
            grads=2,
            matches="Johnson et al. 2016",
        ),
        _spec(
            "temporal_consistency_loss",
            "glue",
            (Input("frames", shape="(T, ...)", doc="Frames, T >= 2."),),
            (
                _real("p", 1, doc="1: mean absolute, 2: mean squared difference.", choices=(1.0, 2.0)),
                RETURN_GRAD,
            ),
        ),
        _spec(
            "flow_matching_loss",
            "glue",
            (
                _emb("v_pred", "(N, ...)", "Predicted velocities."),
                _emb("x0", "v_pred's shape", "Noise samples."),
                _emb("x1", "v_pred's shape", "Data samples."),
            ),
            (reduction_param(), RETURN_GRAD),
            matches="Lipman et al. 2023 (flow matching)",
        ),
        _spec(
            "prior_preservation_loss",
            "glue",
            (
                _X,
                _T,
                _emb("prior_pred", "any", "Prior-class predictions."),
                _emb("prior_target", "prior_pred's shape", "Prior-class targets."),
            ),
            (_real("prior_weight", 1.0, NONNEG, "Weight of the prior term."), RETURN_GRAD),
            grads=2,
            wrt=("pred", "prior_pred"),
            matches="DreamBooth (Ruiz et al. 2023)",
        ),
        _spec(
            "graph_matching_loss",
            "glue",
            (
                _emb("a1", "(n, n)", "Adjacency matrix."),
                _emb("a2", "(n, n)", "Adjacency matrix."),
                Input(
                    "perm",
                    Integers(permutation=True),
                    shape="(n,)",
                    doc="Node i of a1 is node perm[i] of a2.",
                ),
            ),
            (RETURN_GRAD,),
            grads=2,
            matches="the squared Frobenius distance ||A1 - P A2 P^T||^2",
        ),
    ]
    return regression + binary + classwise + activations + metric + segmentation + glue


SPECS: dict[str, Spec] = {s.name: s for s in _specs()}


def elementwise_kernels() -> dict[str, tuple[tuple[tuple[int, Domain], ...], int]]:
    """Every elementwise kernel key -> (the (argument index, domain) pairs its pass checks, its number of
    gradients): what the NumPy backend's driver needs beside the formulas."""
    return {
        k.key: (spec.domains(k), spec.grads)
        for spec in SPECS.values()
        if spec.family == "elementwise"
        for k in spec.kernels
    }


# ---------------------------------------------------------------------------------------------------
# The public functions: each is declared with @api, which checks its signature against its spec (at
# import, so they cannot drift apart) and completes its docstring from the spec.

FUNCTIONS: dict[str, Callable[..., Any]] = {}


def api(func: F) -> F:
    """Register public function `func` under its spec (same name) and write its numpydoc sections."""
    spec = SPECS[func.__name__]
    _check_signature(spec, inspect.signature(func))
    func.__doc__ = _docstring(spec, func.__doc__ or "")
    func.spec = spec  # type: ignore[attr-defined]
    FUNCTIONS[spec.name] = func
    return func


def _check_signature(spec: Spec, sig: inspect.Signature) -> None:
    P = inspect.Parameter
    params = list(sig.parameters.values())
    arrays = [
        p
        for p in params
        if p.kind == P.VAR_POSITIONAL
        or (p.kind == P.POSITIONAL_OR_KEYWORD and (p.default is P.empty or p.default is None))
    ]
    rest = [p for p in params if p not in arrays]
    got_inputs = [(p.name, p.default is None) for p in arrays]
    want_inputs = [(i.name, i.optional) for i in spec.inputs]
    got = [(p.name, p.default) for p in rest]
    want = [(p.name, p.default) for p in spec.params]
    if got_inputs != want_inputs or got != want:
        raise TypeError(
            f"{spec.name}: signature {sig} does not match its spec: inputs {want_inputs}, parameters {want}"
        )


def _docstring(spec: Spec, doc: str) -> str:
    text = inspect.cleandoc(doc)
    for section in ("Parameters", "Returns", "Raises"):  # written from the spec, never by hand
        if f"\n{section}\n---" in text:
            raise TypeError(f"{spec.name}: its docstring has a {section} section; the spec writes it")
    head, sep, examples = text.partition("\n>>>")
    out = [head.rstrip(), "", "Parameters", "----------"]
    for i in spec.inputs:
        out.append(f"{i.name} : array_like" + (", optional" if i.optional else ""))
        dom = "" if not i.domain.checked else f" Values {i.domain.describe()}."
        out.append(_wrap(f"{i.doc} Shape {i.shape}.{dom}"))
    for p in spec.params:
        out.append(f"{p.name} : {p.describe()}")
        out.append(_wrap(_param_doc(spec, p)))
    out += ["", "Returns", "-------"]
    out += _returns(spec)
    out += ["", "Raises", "------", "ValueError"]
    out.append("    Inputs of mismatched shapes, values outside an input's domain (the first bad position is")
    out.append("    named) or a parameter outside its bounds.")
    out += ["TypeError", "    Complex, object or string inputs, or a parameter of the wrong type."]
    if spec.matches:
        out += ["", "Notes", "-----", f"Follows the semantics of {spec.matches}."]
    if sep:
        out += ["", "Examples", "--------", ">>>" + examples]
    return "\n".join(out) + "\n"


def _wrap(text: str) -> str:
    return textwrap.fill(text, 104, initial_indent="    ", subsequent_indent="    ")


def _param_doc(spec: Spec, p: Param) -> str:
    if p.kind == "reduction":
        return (
            f"``'mean'`` divides the sum by {spec.mean}; ``'sum'`` adds; ``'none'`` returns the terms."
            if "none" in p.choices
            else "Only ``'mean'``."
        )
    text = p.doc
    if p.kind == "real" and p.bounds.describe():
        text += f" Must be {p.bounds.describe()}" + (" (or inf)." if p.bounds.high_inclusive else ".")
    if p.kind == "real" and p.choices:
        text += f" One of {', '.join(f'{c:g}' for c in p.choices)}."
    return text


def _returns(spec: Spec) -> list[str]:
    if spec.returns and spec.grads == 0:
        return ["out : ndarray", _wrap(f"{spec.returns}.")]
    if spec.returns:
        lines = ["result : tuple", _wrap(f"{spec.returns}.")]
    else:
        text = "The loss: a scalar of the computation dtype, or an array with ``reduction='none'``."
        lines = ["value : numpy scalar or ndarray", _wrap(text)]
    wrt = spec.differentiable
    if spec.grads == 1:
        text = f"With ``return_grad=True``: d value / d {wrt[0]}, of its shape and dtype."
        lines += ["grad : ndarray", _wrap(text)]
    elif spec.grads > 1:
        text = f"With ``return_grad=True``: the gradients with respect to {', '.join(wrt)}, in that order."
        lines += ["grads : tuple of ndarray", _wrap(text)]
    return lines


# ---------------------------------------------------------------------------------------------------
# Type stubs: each public module's .pyi is generated from the specs (overloads on return_grad, Literal
# reductions and choices), and a test checks the checked-in stubs are what this writes.

STUB_MODULES = ("activations", "classification", "metric", "regression", "segmentation", "toolbox")
_STUB_HEAD = """# Generated from fastloss._specs by `python -m fastloss._specs --write-stubs`; do not edit.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

Value = np.floating[Any] | NDArray[np.floating[Any]]
Array = NDArray[np.floating[Any]]
"""


def _annotation(p: Param) -> str:
    if p.kind == "real":
        return "float"
    if p.kind in ("bool", "int"):
        return p.kind
    if p.kind == "array":
        return "ArrayLike | None"
    lits = ", ".join("None" if c is None else f'"{c}"' for c in p.choices)
    return f"Literal[{lits}]"


def _def(name: str, params: list[str], returns: str) -> str:
    """One stub signature, on one line where it fits (as ruff formats it)."""
    line = f"def {name}({', '.join(params)}) -> {returns}: ..."
    if len(line) <= 110:
        return line + "\n"
    return f"def {name}(\n" + "".join(f"    {p},\n" for p in params) + f") -> {returns}: ...\n"


def _stub(spec: Spec) -> str:
    args = [f"{i.name}: ArrayLike" + (" | None = ..." if i.optional else "") for i in spec.inputs]
    keywords = [f"{p.name}: {_annotation(p)} = ..." for p in spec.params if p.name != "return_grad"]
    if spec.family == "activation" or not keywords:  # axis may be passed positionally
        args, keywords = args + keywords, []
    name = spec.name
    if "return_grad" not in spec.by_name:
        out = "Array" if spec.family in ("activation", "elementwise", "pairwise", "glue") else "Value"
        return _def(name, args + (["*", *keywords] if keywords else []), out)
    if spec.grads == 1:
        grad = "Array"
    elif any(i.optional for i in spec.inputs):  # one gradient per input given
        grad = "tuple[Array, ...]"
    else:
        grad = f"tuple[{', '.join(['Array'] * spec.grads)}]"
    value, pair = "Value", f"tuple[Value, {grad}]"
    if spec.name == "kmeans_inertia":  # (inertia, labels[, grads])
        value = "tuple[np.floating[Any], NDArray[np.int64]]"
        pair = f"tuple[np.floating[Any], NDArray[np.int64], {grad}]"
    head = [*args, "*", *keywords]
    return (
        "@overload\n"
        + _def(name, [*head, "return_grad: Literal[False] = ..."], value)
        + "@overload\n"
        + _def(name, [*head, "return_grad: Literal[True]"], pair)
    )


def stub_source(module: str) -> str:
    """The .pyi text of public module `module` (fastloss.<module>)."""
    names = sorted(n for n, f in FUNCTIONS.items() if f.__module__ == f"fastloss.{module}")
    body = "".join(_stub(SPECS[n]) for n in names)
    typing = [t for t in ("Any", "Literal", "overload") if t == "Any" or f"{t}[" in body or f"@{t}" in body]
    return (
        _STUB_HEAD.replace(
            "from typing import Any, Literal, overload", f"from typing import {', '.join(typing)}"
        )
        + "\n"
        + body
    )


def _write_stubs() -> None:
    import os

    import fastloss
    from fastloss import _specs  # the copy the public functions registered with (this may run as __main__)

    root = os.path.dirname(fastloss.__file__)
    for module in STUB_MODULES:
        with open(os.path.join(root, f"{module}.pyi"), "w") as f:
            f.write(_specs.stub_source(module))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write-stubs"]:
        raise SystemExit("usage: python -m fastloss._specs --write-stubs")
    _write_stubs()
