"""Backend selection (compiled C++ or pure NumPy) and thread control."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from types import ModuleType

from fastloss import _numpy

try:
    from fastloss import _core
except ImportError as e:  # no compiler at install time, or a broken build
    _core = None
    _CORE_ERROR: ImportError | None = e
else:
    _CORE_ERROR = None

BACKENDS = ("cpp", "numpy")
_lock = threading.Lock()
_backend: str = "numpy"
_num_threads: int | None = None


def _check_name(name: object) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "cpp" and _core is None:
        raise ImportError(f"the compiled backend fastloss._core is unavailable: {_CORE_ERROR}")
    return str(name)


def get_backend() -> str:
    """The backend in use: ``"cpp"`` (compiled kernels) or ``"numpy"`` (the pure-NumPy fallback)."""
    return _backend


def set_backend(name: str) -> None:
    """Use backend ``name`` ("cpp" or "numpy") for every later call in this process.

    Raises ImportError for "cpp" when the compiled module is missing, with the reason.
    """
    global _backend
    name = _check_name(name)
    with _lock:
        _backend = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager: run the block with backend ``name``, then restore the previous one."""
    global _backend
    name = _check_name(name)
    with _lock:
        previous, _backend = _backend, name
    try:
        yield
    finally:
        with _lock:
            _backend = previous


def kernels() -> ModuleType:
    """The module holding the current backend's kernels (same signatures on both)."""
    return _core if _backend == "cpp" else _numpy


def _check_threads(n: object) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"number of threads must be an int or None, got {type(n).__name__}")
    n = int(n)  # type: ignore[call-overload]
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    return n


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads in every parallel kernel; ``None`` returns to the default.

    By default each call uses ``omp_get_max_threads()`` of the calling thread, so ``OMP_NUM_THREADS``
    and ``threadpoolctl`` limits apply. Small inputs always run on one thread.
    """
    global _num_threads
    _num_threads = _check_threads(n)


def get_num_threads() -> int:
    """Threads a large kernel call uses now."""
    if _num_threads is not None:
        return _num_threads
    return _core.max_threads() if _core is not None else 1


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Context manager: ``set_num_threads(n)`` for the block, then restore the previous setting."""
    global _num_threads
    n = _check_threads(n)
    previous, _num_threads = _num_threads, n
    try:
        yield
    finally:
        _num_threads = previous


def thread_arg() -> int:
    """The thread count passed to kernels: the set value, or 0 for OpenMP's default."""
    return _num_threads or 0


def _initial_backend() -> str:
    env = os.environ.get("FASTLOSS_BACKEND", "").strip().lower()
    if env:
        return _check_name(env)  # an explicit request for "cpp" without _core raises ImportError
    return "cpp" if _core is not None else "numpy"


_backend = _initial_backend()
