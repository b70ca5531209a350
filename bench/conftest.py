"""pytest-benchmark suite: ``pytest bench/ --benchmark-group-by=group`` shows fastloss beside NumPy and
the peers for every case. Sizes with ``--bench-sizes 1e6,1e7`` (default both)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--bench-sizes", default="1e6,1e7", help="comma-separated element counts")


def pytest_generate_tests(metafunc):
    if "n" in metafunc.fixturenames:
        sizes = [int(float(s)) for s in metafunc.config.getoption("--bench-sizes").split(",")]
        metafunc.parametrize("n", sizes, ids=[f"n={s:.0e}" for s in sizes])


@pytest.fixture(scope="session")
def max_threads():
    import fastloss

    return fastloss.get_num_threads()
