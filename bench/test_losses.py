"""Every default benchmark case of ``fastloss._bench.NAMES`` (losses, activations, penalties,
Composite, the toolbox and the value-and-gradient cases), float64 and float32, at the sizes of
``--bench-sizes`` (default 1e6,1e7): fastloss on 1 and on all threads against the idiomatic NumPy
expression, PyTorch (1 and all threads) and scikit-learn's ``sklearn._loss`` (1 and all threads) where
they have the loss; absent peers skip.

    pytest bench/ --benchmark-group-by=group

shows one group per case, size and dtype. ``n`` is the case's size parameter: elements per input for
the elementwise losses, about the number of pairs for the N x N ones (see ``fastloss._bench``).
"""

from __future__ import annotations

import functools

import pytest

import fastloss
from fastloss import _bench

IMPLS = ["fastloss-1t", "fastloss-all", "numpy", "torch-1t", "torch-all", "sklearn-1t", "sklearn-all"]


@functools.lru_cache(maxsize=2)
def _case(name, n, dtype):
    return _bench.build(name, n, dtype)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", _bench.NAMES)
def test_loss(benchmark, loss, n, dtype, impl, max_threads):
    case = _case(loss, n, dtype)
    benchmark.group = f"{loss} n={n:.0e} {dtype}"
    threads = 1 if impl.endswith("-1t") else max_threads
    if impl.startswith("fastloss"):

        def fn():
            with fastloss.num_threads(threads):
                return case.fastloss()
    elif impl == "numpy":
        fn = case.numpy
    elif impl.startswith("torch"):
        if case.torch is None:
            pytest.skip("PyTorch is not installed")
        fn = case.torch(threads)
    else:
        if case.sklearn is None:
            pytest.skip("scikit-learn has no such loss, or is not installed")
        fn = case.sklearn(threads)
    benchmark.extra_info["bytes"] = case.nbytes
    if case.flops:
        benchmark.extra_info["flops"] = case.flops
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
