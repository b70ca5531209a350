"""Backend selection, thread control, info() and the SIMD levels of the compiled module."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import CASES, HAVE_CORE, float_compute, needs_core, split_grad

import fastloss
from fastloss import _backend, _numpy

cpp_only = pytest.mark.cpp_only


# --------------------------------------------------------------------------------------------------
# Backends


def test_default_backend():
    env = os.environ.get("FASTLOSS_BACKEND", "").strip().lower()
    expected = env or ("cpp" if HAVE_CORE else "numpy")
    assert fastloss.get_backend() == expected


def test_set_backend():
    fastloss.set_backend("numpy")
    assert fastloss.get_backend() == "numpy"
    assert _backend.kernels() is _numpy
    if HAVE_CORE:
        fastloss.set_backend("cpp")
        assert fastloss.get_backend() == "cpp"
        assert _backend.kernels() is _backend._core


@pytest.mark.parametrize("bad", ["CPU", "torch", "", "Numpy", None, 1, ["numpy"]])
def test_unknown_backend_raises(bad):
    before = fastloss.get_backend()
    with pytest.raises(ValueError, match="backend must be one of"):
        fastloss.set_backend(bad)
    with pytest.raises(ValueError, match="backend must be one of"):
        with fastloss.use_backend(bad):
            pass  # pragma: no cover
    assert fastloss.get_backend() == before


def test_use_backend_restores():
    before = fastloss.get_backend()
    with fastloss.use_backend("numpy"):
        assert fastloss.get_backend() == "numpy"
        if HAVE_CORE:
            with fastloss.use_backend("cpp"):
                assert fastloss.get_backend() == "cpp"
            assert fastloss.get_backend() == "numpy"
    assert fastloss.get_backend() == before


def test_use_backend_restores_after_exception():
    before = fastloss.get_backend()
    with pytest.raises(RuntimeError):
        with fastloss.use_backend("numpy"):
            raise RuntimeError("boom")
    assert fastloss.get_backend() == before
    with pytest.raises(ValueError):
        with fastloss.use_backend("numpy"):
            fastloss.mse([1.0], [1.0, 2.0])
    assert fastloss.get_backend() == before


@cpp_only
@needs_core
def test_backend_actually_switches_kernels(monkeypatch):
    calls = []
    real = _numpy.elementwise

    def spy(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(_numpy, "elementwise", spy)
    with fastloss.use_backend("cpp"):
        fastloss.mse([1.0], [2.0])
    assert calls == []
    with fastloss.use_backend("numpy"):
        fastloss.mse([1.0], [2.0])
        fastloss.hinge([1.0], [1.0], squared=True)
    assert calls == ["mse", "hinge_squared"]


def _run_python(code, **env_updates):
    env = dict(os.environ)
    env.pop("FASTLOSS_BACKEND", None)
    env.update(env_updates)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("value", ["numpy", " NumPy ", "NUMPY"])
def test_env_var_selects_numpy_at_import(value):
    r = _run_python(
        "import fastloss; print(fastloss.get_backend()); print(float(fastloss.mse([1.0, 2.0], [0.0, 0.0])))",
        FASTLOSS_BACKEND=value,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["numpy", "2.5"]


def test_env_var_unset_or_empty_gives_default():
    expected = "cpp" if HAVE_CORE else "numpy"
    for env in ({}, {"FASTLOSS_BACKEND": ""}, {"FASTLOSS_BACKEND": "  "}):
        r = _run_python("import fastloss; print(fastloss.get_backend())", **env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == expected


@cpp_only
@needs_core
def test_env_var_cpp():
    r = _run_python("import fastloss; print(fastloss.get_backend())", FASTLOSS_BACKEND="cpp")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "cpp"


def test_env_var_unknown_warns_and_keeps_the_default():
    r = _run_python("import fastloss; print(fastloss.get_backend())", FASTLOSS_BACKEND="fortran")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("cpp" if HAVE_CORE else "numpy")
    assert "RuntimeWarning" in r.stderr and "FASTLOSS_BACKEND='fortran' is not one of" in r.stderr


# --------------------------------------------------------------------------------------------------
# Threads


def _default_threads():
    return _backend._core.max_threads() if HAVE_CORE else 1


def test_set_and_get_num_threads():
    fastloss.set_num_threads(3)
    assert fastloss.get_num_threads() == 3
    fastloss.set_num_threads(np.int64(2))
    assert fastloss.get_num_threads() == 2
    fastloss.set_num_threads(None)
    assert fastloss.get_num_threads() == _default_threads()
    assert fastloss.get_num_threads() >= 1


def test_num_threads_context_restores():
    fastloss.set_num_threads(None)
    with fastloss.num_threads(3):
        assert fastloss.get_num_threads() == 3
        with fastloss.num_threads(1):
            assert fastloss.get_num_threads() == 1
        assert fastloss.get_num_threads() == 3
    assert fastloss.get_num_threads() == _default_threads()
    assert _backend._num_threads is None
    fastloss.set_num_threads(5)
    with pytest.raises(RuntimeError):
        with fastloss.num_threads(2):
            assert fastloss.get_num_threads() == 2
            raise RuntimeError
    assert fastloss.get_num_threads() == 5
    with fastloss.num_threads(None):
        assert fastloss.get_num_threads() == _default_threads()
    assert fastloss.get_num_threads() == 5


@pytest.mark.parametrize("bad", [True, False, 1.0, 2.5, "2", [2], np.float64(2.0)])
def test_num_threads_type_errors(bad):
    fastloss.set_num_threads(4)
    with pytest.raises(TypeError):
        fastloss.set_num_threads(bad)
    with pytest.raises(TypeError):
        with fastloss.num_threads(bad):
            pass  # pragma: no cover
    assert fastloss.get_num_threads() == 4


@pytest.mark.parametrize("bad", [0, -1, -8, np.int32(0)])
def test_num_threads_value_errors(bad):
    fastloss.set_num_threads(4)
    with pytest.raises(ValueError, match=">= 1"):
        fastloss.set_num_threads(bad)
    with pytest.raises(ValueError, match=">= 1"):
        with fastloss.num_threads(bad):
            pass  # pragma: no cover
    assert fastloss.get_num_threads() == 4


@pytest.mark.parametrize("n", [1, 2, 3, 16])
def test_thread_count_does_not_change_result(backend, n):
    rng = np.random.default_rng(0)
    p, t = rng.normal(0, 1, (2, 50_001))
    want = fastloss.log_cosh(p, t, return_grad=True)
    with fastloss.num_threads(n):
        got = fastloss.log_cosh(p, t, return_grad=True)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])


# --------------------------------------------------------------------------------------------------
# info()

INFO_KEYS = {
    "version",
    "backend",
    "compiled",
    "numpy",
    "threads",
    "compiler",
    "openmp",
    "simd",
    "simd_levels",
}


def test_info_keys_and_values():
    d = fastloss.info()
    assert INFO_KEYS <= set(d)
    assert isinstance(d["version"], str) and d["version"] == fastloss.__version__
    assert d["backend"] == fastloss.get_backend()
    assert d["compiled"] is HAVE_CORE
    assert d["numpy"] == np.__version__
    assert d["threads"] == fastloss.get_num_threads()
    assert isinstance(d["simd_levels"], list)
    if HAVE_CORE:
        assert isinstance(d["compiler"], str) and d["compiler"]
        assert isinstance(d["openmp"], str)
        assert d["simd"] in d["simd_levels"]
        assert d["simd_levels"][0] == "baseline"
        assert d["simd"] == _backend._core.get_simd()
    else:
        assert d["simd"] is None and d["simd_levels"] == []


def test_info_follows_settings():
    with fastloss.use_backend("numpy"), fastloss.num_threads(3):
        d = fastloss.info()
        assert d["backend"] == "numpy" and d["threads"] == 3
    assert fastloss.info()["threads"] == fastloss.get_num_threads()


# --------------------------------------------------------------------------------------------------
# SIMD levels

BITWISE = {"mse", "mae", "huber", "huber_d0.3"}


def _all_outputs(case, args, extras, weight):
    """[(label, float64 array)] for each weighting, reduction, value and gradient."""
    out = []
    for wname, w in (("unweighted", None), ("weighted", weight)):
        for reduction in ("mean", "sum", "none"):
            value, grad = case.call(args, extras, weight=w, reduction=reduction, return_grad=True)
            out.append((f"{wname} {reduction} value", np.asarray(value, dtype=np.float64)))
            for k, g in enumerate(split_grad(case, grad)):
                out.append((f"{wname} {reduction} grad{k}", np.asarray(g, dtype=np.float64)))
    return out


def _assert_close_1e14(got, want, dtype, fc, what):
    """Within 1e-14 relative (plus 1e-14 of the largest element, for derivatives that cancel).

    A float32 output is a float64 result rounded once: a 1e-14 difference before the rounding can
    still move it by one float32 ulp, which is allowed too. The losses that compute float32 inputs
    in float32 (with FMA on some levels and not on others) get float32 roundings instead.
    """
    if dtype == np.float32 and fc:
        bound = 1e-6 * np.abs(want) + 1e-6 * float(np.max(np.abs(want)))
    else:
        bound = 1e-14 * np.abs(want) + 1e-14 * float(np.max(np.abs(want)))
    if dtype == np.float32:
        bound = bound + np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    bad = ~(np.abs(got - want) <= bound)
    assert not bad.any(), (
        f"{what}: {np.count_nonzero(bad)} elements differ, e.g. got {got[bad][:3]!r}, want {want[bad][:3]!r}"
    )


@cpp_only
@needs_core
def test_simd_levels_listed(core):
    levels = core.build_info()["simd_levels"]
    assert levels and levels[0] == "baseline"
    assert core.get_simd() in levels
    with pytest.raises(ValueError, match="not available"):
        core.set_simd("avx9000")
    assert core.get_simd() in levels


@cpp_only
@needs_core
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_simd_level_matches_default(core, case, dtype):
    original = core.get_simd()
    rng = np.random.default_rng(1)
    args, extras = case.draw(rng, (30_011,), dtype)
    weight = rng.uniform(0.5, 2.0, 30_011).astype(dtype)
    with fastloss.use_backend("cpp"):
        want = _all_outputs(case, args, extras, weight)
        try:
            for level in core.build_info()["simd_levels"]:
                core.set_simd(level)
                assert core.get_simd() == level
                got = _all_outputs(case, args, extras, weight)
                for (label, g), (_, w) in zip(got, want):
                    what = f"{case.id} at SIMD level {level!r} vs {original!r}: {label}"
                    # Per-element outputs are the same expression on every level: bitwise. A reduced
                    # value sums vector lanes whose count depends on the level (reduce.hpp says so), as
                    # does the 1/sum(w) scaling a weighted mean's gradient: a few ulp.
                    reduced = label.endswith(("mean value", "sum value")) or label.startswith(
                        "weighted mean grad"
                    )
                    if case.id in BITWISE and not reduced:
                        np.testing.assert_array_equal(g, w, err_msg=what)
                    else:
                        _assert_close_1e14(g, w, dtype, float_compute(case), what)
        finally:
            core.set_simd(original)
    assert core.get_simd() == original


@needs_core
def test_backends_implement_the_same_kernels(core):
    from fastloss import _numpy

    assert sorted(_numpy.ELEMENTWISE_LOSSES) == sorted(core.ELEMENTWISE_LOSSES)
    assert sorted(_numpy.CLASSWISE_KERNELS) == sorted(core.CLASSWISE_KERNELS)
