"""Is the GIL released? Time one call, then two calls from two Python threads at once.

    python bench/concurrency.py [n]

Each call runs on one OpenMP thread, so with the GIL released two calls on a machine with two cores
finish in about the time of one; holding the GIL would double it.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

import numpy as np

import fastloss


def main() -> None:
    n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 10_000_000
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    t = rng.standard_normal(n)

    def call():
        with fastloss.num_threads(1):
            fastloss.log_cosh(x, t)

    def concurrent():
        ts = [threading.Thread(target=call) for _ in range(2)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()

    call()
    one, two = [], []
    for _ in range(7):
        t0 = time.perf_counter()
        call()
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        concurrent()
        two.append(time.perf_counter() - t0)
    a, b = statistics.median(one), statistics.median(two)
    print(
        f"log_cosh n={n}: one call {a * 1e3:.1f} ms, two concurrent calls {b * 1e3:.1f} ms "
        f"({b / a:.2f}x one call)"
    )


if __name__ == "__main__":
    main()
