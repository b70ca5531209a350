"""A bounded fuzz test over every public function: inputs as users hold them, and broken ones.

From the valid call of each function (tests/_calls.py), hypothesis draws a dtype, a memory layout for
every array (pickled, byte-swapped, unaligned, strided, Fortran-ordered, read-only, memmapped), NaN and
inf in some elements, and sometimes a broken argument (a random shape, including empty and
one-element ones, a label out of range, a parameter of a wrong value). Whatever it draws, the call either
raises a clear ValueError or TypeError on both backends alike, or returns results that agree on both
backends; the caller's arrays are never modified, and the interpreter never crashes.
"""

from __future__ import annotations

import inspect
import os
import pickle
import sys
import tempfile
import warnings

import numpy as np
import pytest
from _calls import CALLS, leaves
from conftest import HAVE_CORE, hypothesis_settings

import fastloss

hyp = pytest.importorskip("hypothesis")
st = hyp.strategies

pytestmark = pytest.mark.skipif(not HAVE_CORE, reason="compares the compiled backend with the NumPy one")

NAMES = sorted(CALLS)
DTYPES = [np.float64, np.float32, np.float16]


def _swapped(a):
    return a.astype(a.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))


def _unaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def _strided(a):
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]) if a.ndim else (2,), a.dtype)
    view = big[..., ::2] if a.ndim else big[:1].reshape(())
    view[...] = a
    return view


def _readonly(a):
    b = a.copy()
    b.flags.writeable = False
    return b


_MEMMAPS = tempfile.TemporaryDirectory(prefix="fastloss-fuzz-")
_memmap_count = iter(range(10**9))


def _memmapped(a):
    """A read-only memory map of an .npy file, as np.load(..., mmap_mode="r") gives (none when empty)."""
    if a.size == 0:
        return a
    path = os.path.join(_MEMMAPS.name, f"{next(_memmap_count)}.npy")
    np.save(path, a)
    return np.load(path, mmap_mode="r")


LAYOUTS = {
    "plain": lambda a: a,
    "pickle": lambda a: pickle.loads(pickle.dumps(a)),
    "swapped": _swapped,
    "unaligned": _unaligned,
    "strided": _strided,
    "fortran": np.asfortranarray,
    "readonly": _readonly,
    "memmap": _memmapped,
}


@st.composite
def calls(draw):
    name = draw(st.sampled_from(NAMES))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    args, kwargs = CALLS[name](np.random.default_rng(seed), np.float64)
    rng = np.random.default_rng(seed + 1)
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            if a.dtype.kind == "f":
                a = a.astype(dtype)
                if a.size and draw(st.booleans()) and draw(st.booleans()):  # NaN or inf in one element
                    a.flat[int(rng.integers(a.size))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            a = LAYOUTS[draw(st.sampled_from(list(LAYOUTS)))](a)
        out.append(a)
    broken = draw(st.sampled_from(["none", "none", "shape", "label", "param"]))
    if broken == "shape" and out:
        k = draw(st.integers(0, len(out) - 1))
        shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
        kind = out[k].dtype.kind if isinstance(out[k], np.ndarray) else "f"
        out[k] = rng.integers(0, 3, shape) if kind in "iu" else rng.standard_normal(shape).astype(dtype)
    elif broken == "label":
        ints = [k for k, a in enumerate(out) if isinstance(a, np.ndarray) and a.dtype.kind in "iu"]
        if ints:
            k = draw(st.sampled_from(ints))
            out[k] = out[k].copy()
            if out[k].size:
                out[k].flat[0] = draw(st.sampled_from([-1, -100, 10**6, 2**62]))
    elif broken == "param":
        params = [p for p, v in kwargs.items() if isinstance(v, (float, int)) and not isinstance(v, bool)]
        params += [
            p.name
            for p in inspect.signature(getattr(fastloss, name)).parameters.values()
            if p.kind is p.KEYWORD_ONLY
            and isinstance(p.default, (float, int))
            and not isinstance(p.default, bool)
        ]
        if params:
            p = draw(st.sampled_from(sorted(set(params))))
            kwargs = {**kwargs, p: draw(st.sampled_from([-1.0, 0.0, 0.5, 3, np.nan, np.inf, -np.inf, 1e300]))}
    return name, tuple(out), kwargs


def _run(name, args, kwargs, backend):
    with fastloss.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # none may escape from fastloss's own code
        try:
            return "ok", getattr(fastloss, name)(*args, **kwargs)
        except (ValueError, TypeError) as e:
            return type(e).__name__, str(e)


def _tolerance(args) -> float:
    kinds = {a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"}
    return 1e-9 if kinds <= {np.dtype(np.float64), np.dtype(">f8"), np.dtype("<f8")} else 2e-3


@hypothesis_settings(max_examples=int(os.environ.get("FASTLOSS_FUZZ_EXAMPLES", "2000")))
@hyp.given(calls())
def test_fuzz_every_public_function(call):
    name, args, kwargs = call
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    cpp = _run(name, args, kwargs, "cpp")
    ref = _run(name, args, kwargs, "numpy")
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} modified its input")
    assert cpp[0] == ref[0], (name, cpp, ref)
    if cpp[0] != "ok":
        return
    got, want = leaves(cpp[1]), leaves(ref[1])
    assert len(got) == len(want), name
    tol = _tolerance(args)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (name, g.shape, w.shape, g.dtype, w.dtype)
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        np.testing.assert_array_equal(np.isnan(g64), np.isnan(w64), err_msg=f"{name}: NaN positions")
        finite = np.isfinite(g64) & np.isfinite(w64)
        np.testing.assert_array_equal(g64[~finite & ~np.isnan(g64)], w64[~finite & ~np.isnan(w64)])
        scale = max(1.0, float(np.max(np.abs(w64[finite]), initial=0.0)))
        np.testing.assert_allclose(g64[finite], w64[finite], rtol=tol, atol=tol * scale, err_msg=name)
