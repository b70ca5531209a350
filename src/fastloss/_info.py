"""fastloss.info(): what is installed and what runs."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import numpy as np

from fastloss import _backend

try:
    __version__ = metadata.version("fastloss")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"


def info() -> dict[str, Any]:
    """Version, backend, compiler, OpenMP runtime, thread count and SIMD level, as a dict.

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
