"""``fastloss eval``: one loss on arrays read from ``.npy``, ``.npz`` or ``.csv`` files.

Exit codes: 0 on success, 2 for a usage error (an unknown loss, option, parameter or file type, a wrong
number of arrays, a malformed value), 1 for a data error (a missing or unreadable file, a missing key,
arrays the loss rejects: wrong shape, bad labels).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import json
import math
import os
import sys
import time
from typing import Any, Callable

import numpy as np

import fastloss
from fastloss._bench import COVERS
from fastloss._specs import FUNCTIONS, SPECS

# Options of their own on the command line, never through --param.
_OWN = ("reduction", "return_grad")
READABLE = (".npy", ".npz", ".csv")


class UsageError(Exception):
    """The command line is wrong: exit code 2."""


class DataError(Exception):
    """The data cannot be read or the loss rejects it: exit code 1."""


def losses() -> dict[str, Callable[..., Any]]:
    """Every public loss, from the specs: the functions that can return their gradient."""
    return {name: FUNCTIONS[name] for name, spec in SPECS.items() if "return_grad" in spec.by_name}


def _array_params(sig: inspect.Signature) -> tuple[list[str], list[str], bool]:
    """(required array arguments, optional ones, whether any number is accepted)."""
    required, optional, varargs = [], [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            varargs = True
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            (required if p.default is p.empty else optional).append(p.name)
    return required, optional, varargs


def keyword_params(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword parameters --param may set, with their defaults."""
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name not in _OWN
    }


def resolve_loss(name: str) -> tuple[str, Callable[..., Any]]:
    table = losses()
    key = name.replace("-", "_")
    if key in table:
        return key, table[key]
    close = [n for n in table if key in n] or difflib.get_close_matches(key, table, n=3, cutoff=0.6)
    if not close:  # a bench case's name (bce_with_logits, dice, ...): the functions it times
        close = [f for f in COVERS.get(key, ()) if f in table]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UsageError(f"unknown loss {name!r}{hint}; the losses are: {', '.join(sorted(table))}")


def parse_value(text: str, *, key: str | None, default: Any) -> Any:
    """A --param value: @FILE is an array read from FILE; otherwise a Python literal (1e-3, true, none,
    [1, 2]) or, failing that, the bare string."""
    if text.startswith("@"):
        return load_array(text[1:], key=key, name=None)
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _split_key(path: str) -> tuple[str, str | None]:
    """'data.npz:logits' -> ('data.npz', 'logits'); other paths are left alone."""
    head, sep, tail = path.rpartition(":")
    if sep and head.lower().endswith(".npz") and not os.path.exists(path):
        return head, tail
    return path, None


def load_array(path: str, *, key: str | None, name: str | None) -> np.ndarray:
    """Read one array. ``.npy`` is memory-mapped (read-only), so a file larger than memory streams
    through the kernel; ``.npz`` members come by key (``FILE.npz:KEY``, then ``--key``, then the
    argument's name, then the only member); ``.csv`` files are comma-separated numbers with an
    optional header line, integral columns read as int64 (class labels)."""
    path, own_key = _split_key(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in READABLE:
        raise UsageError(f"{path}: unsupported file type {ext or '(none)'!r}; use {', '.join(READABLE)}")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    try:
        if ext == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return z[_npz_key(path, list(z.files), own_key or key, name)]
        return _load_csv(path)
    except (DataError, UsageError):
        raise
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read it: {e}") from None


def _npz_key(path: str, files: list[str], key: str | None, name: str | None) -> str:
    if key is not None:
        if key not in files:
            raise DataError(f"{path}: no array {key!r}; it holds {', '.join(files) or 'nothing'}")
        return key
    if name is not None and name in files:
        return name
    if len(files) == 1:
        return files[0]
    raise DataError(
        f"{path} holds {len(files)} arrays ({', '.join(files) or 'none'}): choose one with "
        f"{path}:KEY or --key KEY"
    )


def _load_csv(path: str) -> np.ndarray:
    with open(path) as f:
        first = f.readline()
    try:
        [float(tok) for tok in first.split(",") if tok.strip()]
        skip = 0
    except ValueError:
        skip = 1  # a header line
    a = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=1, dtype=np.float64)
    if a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)) and np.abs(a).max() < 2**53:
        return a.astype(np.int64)
    return a


def evaluate(args: Any) -> dict[str, Any]:
    """Run the loss the command line names; raises UsageError or DataError."""
    name, fn = resolve_loss(args.loss)
    sig = inspect.signature(fn)
    required, optional, varargs = _array_params(sig)
    n = len(args.arrays)
    if n < len(required) or (not varargs and n > len(required) + len(optional)):
        want = ", ".join(required + [f"[{o}]" for o in optional]) + (" ..." if varargs else "")
        raise UsageError(f"{name} takes the arrays ({want}); got {n} file(s)")
    kw_allowed = keyword_params(fn)
    kwargs: dict[str, Any] = {}
    for item in args.param or []:
        pname, sep, text = item.partition("=")
        pname = pname.strip().replace("-", "_")
        if not sep or not pname:
            raise UsageError(f"--param needs name=value, got {item!r}")
        if pname not in kw_allowed:
            valid = ", ".join(f"{k}={v!r}" for k, v in kw_allowed.items()) or "none"
            raise UsageError(f"{name} has no parameter {pname!r}; its parameters: {valid}")
        kwargs[pname] = parse_value(text, key=args.key, default=kw_allowed[pname])
    if args.weight is not None:
        if "weight" not in kw_allowed:
            raise UsageError(f"{name} takes no weight")
        kwargs["weight"] = load_array(args.weight, key=args.key, name="weight")
    if args.reduction is not None:
        allowed = SPECS[name].reductions
        if not allowed:
            raise UsageError(f"{name} has no reduction option")
        if args.reduction not in allowed:
            raise UsageError(f"{name}: reduction must be one of {', '.join(allowed)}")
        kwargs["reduction"] = args.reduction
    names = (required + optional)[:n] if not varargs else [f"arrays[{i}]" for i in range(n)]
    arrays = [load_array(p, key=args.key, name=nm) for p, nm in zip(args.arrays, names)]
    t0 = time.perf_counter()
    try:
        result = fn(*arrays, **kwargs)
    except (ValueError, TypeError) as e:
        raise DataError(f"{name}: {e}") from None
    seconds = time.perf_counter() - t0
    value, extra = (result[0], list(result[1:])) if isinstance(result, tuple) else (result, [])
    return {
        "loss": name,
        "value": value,
        "extra": extra,
        "params": {k: v for k, v in kwargs.items() if not isinstance(v, np.ndarray)},
        "inputs": [
            {"path": p, "shape": list(a.shape), "dtype": str(a.dtype)} for p, a in zip(args.arrays, arrays)
        ],
        "backend": fastloss.get_backend(),
        "threads": fastloss.get_num_threads(),
        "seconds": seconds,
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()] if v.ndim else _jsonable(v.item())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else str(f)  # JSON has no nan/inf: "nan", "inf", "-inf"
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _print_value(v: Any) -> None:
    if isinstance(v, np.ndarray) and v.ndim:
        np.savetxt(sys.stdout, v.reshape(v.shape[0], -1) if v.ndim > 1 else v, fmt="%.17g")
    else:
        print(repr(float(v)) if isinstance(v, (float, np.floating)) else v)


def run(args: Any) -> int:
    from fastloss import _backend

    try:
        with _backend.use_backend(args.backend or _backend.get_backend()), fastloss.num_threads(args.threads):
            res = evaluate(args)
        if args.out is not None:
            out = np.asarray(res["value"])
            np.save(args.out, out)
    except UsageError as e:
        print(f"fastloss eval: {e}", file=sys.stderr)
        return 2
    except (DataError, OSError, ImportError) as e:
        print(f"fastloss eval: {e}", file=sys.stderr)
        return 1
    if args.json:
        if args.out is not None:  # the file holds the values; the JSON says where and what
            res = {**res, "value": _summary(np.asarray(res["value"]), args.out)}
        print(json.dumps({k: _jsonable(v) for k, v in res.items()}))
    elif args.out is not None:
        print(_summary(np.asarray(res["value"]), args.out))
    else:
        _print_value(res["value"])
        for v in res["extra"]:
            _print_value(v)
    return 0


def _summary(v: np.ndarray, path: str) -> str:
    """One line for a value saved with --out: where, its shape and dtype, and its range."""
    saved = path if path.endswith(".npy") else path + ".npy"  # np.save adds the suffix
    text = f"wrote {saved}: shape {v.shape}, {v.dtype}"
    if v.size:
        with np.errstate(all="ignore"):
            text += f", min {np.nanmin(v):.6g}, mean {np.nanmean(v):.6g}, max {np.nanmax(v):.6g}"
        nan = int(np.isnan(v).sum()) if v.dtype.kind == "f" else 0
        text += f", {nan} nan" if nan else ""
    return text


def add_parser(sub: Any, positive_int: Callable[[str], int]) -> None:
    pe = sub.add_parser(
        "eval",
        help="evaluate one loss on arrays from .npy/.npz/.csv files",
        description=(
            "Evaluate a loss on arrays read from files and print its value. ARRAYS are the loss's array "
            "arguments in order (PRED TARGET for most). .npy files are memory-mapped, so files larger "
            "than memory stream through; .npz members are chosen with FILE.npz:KEY or --key; .csv files "
            "are comma-separated numbers (an optional header line; integral columns read as integer "
            "labels). Exit code 2 for usage errors, 1 for data errors. Losses: " + ", ".join(sorted(losses()))
        ),
    )
    pe.add_argument("loss", metavar="LOSS", help="a fastloss function name, e.g. mse or cross_entropy")
    pe.add_argument("arrays", nargs="+", metavar="ARRAY", help="input files, in argument order")
    pe.add_argument(
        "--param",
        "-p",
        action="append",
        metavar="NAME=VALUE",
        help="a keyword parameter, e.g. delta=0.5 or pos_weight=@w.npy (repeatable)",
    )
    pe.add_argument("--reduction", help="mean, sum or none (kl_div: also batchmean)")
    pe.add_argument("--weight", metavar="FILE", help="per-element (or per-class) weights")
    pe.add_argument("--key", metavar="KEY", help="the member to read from .npz files")
    pe.add_argument("--json", action="store_true", help="print a JSON object (value, inputs, params, time)")
    pe.add_argument(
        "--out",
        metavar="FILE.npy",
        help="save the value (e.g. reduction=none) as .npy and print a one-line summary instead of it",
    )
    pe.add_argument("--backend", choices=["cpp", "numpy"], help="backend (default: the active one)")
    pe.add_argument("--threads", type=positive_int, metavar="N", help="threads (default: all)")
    pe.set_defaults(func=run)
