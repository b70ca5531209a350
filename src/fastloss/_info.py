"""fastloss.info(): what is installed and what runs."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import numpy as np

from fastloss import _backend

try:
    __version__ = metadata.version("fastloss")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def info() -> dict[str, Any]:
    """Version, backend, compiler, OpenMP runtime, thread count, SIMD level and CPU, as a dict.

    Returns
    -------
    dict
        What ``fastloss info`` prints: ``version``, ``backend``, ``compiled``, ``compiler``, ``openmp``,
        ``threads``, ``simd`` (the level in use) and the CPU's description, among others.

    Raises
    ------
    Nothing.

    Examples
    --------
    >>> import fastloss
    >>> sorted(fastloss.info())[:3]
    ['backend', 'compiled', 'compiler']
    """
    core = _backend._core
    d: dict[str, Any] = {
        "version": __version__,
        "backend": _backend.get_backend(),
        "compiled": core is not None,
        "numpy": np.__version__,
        "threads": _backend.get_num_threads(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
    }
    if core is not None:
        b = core.build_info()
        d.update(
            compiler=b["compiler"],
            openmp=b["openmp"],
            simd=core.get_simd(),
            simd_levels=list(b["simd_levels"]),
        )
    else:
        d.update(compiler=None, openmp=None, simd=None, simd_levels=[], core_error=str(_backend._CORE_ERROR))
    return d
