"""Measure where a second thread starts to pay off for a memory-bound loss (the driver's kParallelMin).

    python bench/threshold.py

Prints the median time of fastloss.mse at sizes around the cut-off with 1 thread and with all threads.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import fastloss
from fastloss import _backend


def median_us(fn, reps=300):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(ts)


def main():
    core = _backend._core
    rng = np.random.default_rng(0)
    nt = fastloss.get_num_threads()
    print(f"{'n':>9s} {'dtype':>8s} {'1 thread us':>12s} {f'{nt} threads us':>12s}")
    for dtype in (np.float64, np.float32):
        for n in (4096, 8192, 16384, 32768, 65536, 131072, 262144):
            a = rng.standard_normal(n).astype(dtype)
            b = rng.standard_normal(n).astype(dtype)
            t1 = median_us(lambda a=a, b=b: core.elementwise("mse", a, b, None, None, 1.0, [], 2, False, 1))
            tn = median_us(lambda a=a, b=b: core.elementwise("mse", a, b, None, None, 1.0, [], 2, False, nt))
            print(f"{n:>9d} {np.dtype(dtype).name:>8s} {t1:>12.1f} {tn:>12.1f}")


if __name__ == "__main__":
    main()
