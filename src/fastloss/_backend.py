"""Backend selection (compiled C++ or pure NumPy) and thread control.

Two levels, as the design says: the setters (`set_backend`, `set_num_threads`) change the process-wide
setting; the context managers (`use_backend`, `num_threads`) override it for the block in the calling
thread only (a `contextvars` variable, so asyncio tasks and other threads are unaffected).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import warnings
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

#: The most threads a call may be given: four per logical CPU, and at least 64. More is never faster, and
#: a count the process cannot start would make the OpenMP runtime end the interpreter.
MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))

_lock = threading.Lock()
_backend: str = "numpy"
_num_threads: int | None = None
_UNSET = object()
# Per-thread (per-context) overrides set by the context managers; _UNSET: follow the process-wide value.
_backend_override: contextvars.ContextVar[object] = contextvars.ContextVar("fastloss_backend", default=_UNSET)
_threads_override: contextvars.ContextVar[object] = contextvars.ContextVar("fastloss_threads", default=_UNSET)
_startable = 1  # a thread count already shown to start (see _check_threads)


def _check_name(name: object) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "cpp" and _core is None:
        raise ImportError(f"the compiled backend fastloss._core is unavailable: {_CORE_ERROR}")
    return str(name)


def get_backend() -> str:
    """The backend in use in this thread: ``"cpp"`` (compiled kernels) or ``"numpy"`` (pure NumPy).

    Returns
    -------
    str
        ``"cpp"`` or ``"numpy"``: the calling thread's ``use_backend`` block if it is in one, else the
        process-wide setting (``set_backend``, or ``FASTLOSS_BACKEND``, or ``"cpp"`` when it is built).

    Raises
    ------
    Nothing.

    Examples
    --------
    >>> import fastloss
    >>> fastloss.get_backend() in ("cpp", "numpy")
    True
    """
    b = _backend_override.get()
    return _backend if b is _UNSET else b  # type: ignore[return-value]


def set_backend(name: str) -> None:
    """Use backend ``name`` for every later call in this process, in every thread (a ``use_backend``
    block still overrides it in its own thread).

    Parameters
    ----------
    name : {"cpp", "numpy"}
        The compiled kernels or the pure-NumPy ones.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        For any other name.
    ImportError
        For ``"cpp"`` when the compiled module is missing, with the reason.

    Examples
    --------
    >>> import fastloss
    >>> before = fastloss.get_backend()
    >>> fastloss.set_backend("numpy")
    >>> fastloss.get_backend()
    'numpy'
    >>> fastloss.set_backend(before)
    """
    global _backend
    name = _check_name(name)
    with _lock:
        _backend = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager: run the block with backend ``name`` in the calling thread only, then restore.

    Other Python threads keep their own setting (the process-wide one unless they are in a block of
    their own); blocks nest.

    Parameters
    ----------
    name : {"cpp", "numpy"}
        The backend of the block.

    Returns
    -------
    context manager

    Raises
    ------
    ValueError
        For any other name.
    ImportError
        For ``"cpp"`` when the compiled module is missing.

    Examples
    --------
    >>> import fastloss
    >>> with fastloss.use_backend("numpy"):
    ...     fastloss.get_backend()
    'numpy'
    """
    token = _backend_override.set(_check_name(name))
    try:
        yield
    finally:
        _backend_override.reset(token)


def kernels() -> ModuleType:
    """The module holding the current backend's kernels (same signatures on both)."""
    b = _backend_override.get()  # get_backend(), inlined: this is on every call's path
    return _core if (_backend if b is _UNSET else b) == "cpp" else _numpy


def _check_threads(n: object) -> int | None:
    global _startable
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"number of threads must be an int or None, got {type(n).__name__}")
    n = int(n)  # type: ignore[call-overload]
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    if n > MAX_THREADS:
        raise ValueError(
            f"number of threads must be at most fastloss.MAX_THREADS = {MAX_THREADS} "
            f"(4 per logical CPU, at least 64), got {n}"
        )
    if n > _startable and _core is not None:
        can = _core.startable_threads(n)
        if can < n:
            raise ValueError(
                f"this process can start only {can} threads now (a process, thread or memory limit), "
                f"so {n} threads cannot be used"
            )
        _startable = n
    return n


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads in every parallel kernel of this process; ``None`` returns to the default.

    By default each call uses ``omp_get_max_threads()`` of the calling thread, so ``OMP_NUM_THREADS``
    and ``threadpoolctl`` limits apply. Small inputs always run on one thread, and so does every call
    in a child process forked after fastloss was imported.

    Parameters
    ----------
    n : int or None
        In ``[1, MAX_THREADS]``, and a count the process can start (checked once); None: the default.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        For a non-integer ``n``.
    ValueError
        For ``n < 1``, ``n > MAX_THREADS`` or more threads than the process can start.

    Examples
    --------
    >>> import fastloss
    >>> fastloss.set_num_threads(1)
    >>> fastloss.get_num_threads()
    1
    >>> fastloss.set_num_threads(None)
    """
    global _num_threads
    _num_threads = _check_threads(n)


def _threads_setting() -> int | None:
    t = _threads_override.get()
    return _num_threads if t is _UNSET else t  # type: ignore[return-value]


def get_num_threads() -> int:
    """Threads a large kernel call made now from this thread uses.

    Returns
    -------
    int
        The ``num_threads`` block's count, else ``set_num_threads``'s, else ``omp_get_max_threads()``; 1 in
        a forked child and without the compiled module (unless set).

    Raises
    ------
    Nothing.

    Examples
    --------
    >>> import fastloss
    >>> with fastloss.num_threads(2):
    ...     fastloss.get_num_threads()
    2
    """
    n = _threads_setting()
    if _core is None:
        return n or 1
    if _core.in_forked_child():
        return 1
    return n if n is not None else _core.max_threads()


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Context manager: use ``n`` threads (``None``: the default) for the block, in the calling thread
    only, then restore. Other Python threads keep their own setting.

    Parameters
    ----------
    n : int or None
        As for :func:`set_num_threads`.

    Returns
    -------
    context manager

    Raises
    ------
    TypeError, ValueError
        As :func:`set_num_threads`.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> with fastloss.num_threads(1):
    ...     float(fastloss.mse(np.zeros(3), np.ones(3)))
    1.0
    """
    token = _threads_override.set(_check_threads(n))
    try:
        yield
    finally:
        _threads_override.reset(token)


def thread_arg() -> int:
    """The thread count passed to kernels: the set value, or 0 for OpenMP's default."""
    t = _threads_override.get()  # _threads_setting(), inlined: this is on every call's path
    return (_num_threads if t is _UNSET else t) or 0


def _initial_backend() -> str:
    env = os.environ.get("FASTLOSS_BACKEND", "").strip().lower()
    default = "cpp" if _core is not None else "numpy"
    if not env:
        return default
    try:
        # an explicit request for "cpp" without the compiled module still raises ImportError, with the reason
        return _check_name(env)
    except ValueError:
        message = f"FASTLOSS_BACKEND={env!r} is not one of {BACKENDS}; using {default!r}"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return default


_backend = _initial_backend()
