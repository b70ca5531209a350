"""Peak memory of the pairwise losses: O(N d), never the N x N matrix.

    python bench/memory.py [N] [d]

Each measurement runs in a fresh subprocess and reports the growth of its peak resident set size
(ru_maxrss) over what it had after making the inputs, beside the bytes of the inputs and the bytes one
N x N float32 matrix would take (the NumPy and PyTorch formulations build several of those).
"""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import resource, sys, time
import numpy as np
import fastloss
n, d, what = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
x = rng.standard_normal((n, d), dtype=np.float32)  # no float64 temporary in the high-water mark
labels = rng.integers(0, max(2, n // 32), n)
p = rng.standard_normal((n, d), dtype=np.float32)
calls = {
    "pairwise_contrastive_loss": lambda: fastloss.pairwise_contrastive_loss(x, labels, margin=16.0),
    "pairwise_contrastive_loss+grad": lambda: fastloss.pairwise_contrastive_loss(
        x, labels, margin=16.0, return_grad=True),
    "batch_hard_triplet_loss": lambda: fastloss.batch_hard_triplet_loss(x, labels),
    "info_nce": lambda: fastloss.info_nce(x, p),
    "info_nce+grad": lambda: fastloss.info_nce(x, p, return_grad=True),
}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
calls[what]()
dt = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(after - before) / 1024:.1f} {dt:.2f}")
"""


def main() -> None:
    n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 32768
    d = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    print(
        f"N = {n}, d = {d}, float32: inputs {n * d * 4 / 2**20:.0f} MiB; one N x N float32 matrix "
        f"{n * n * 4 / 2**30:.1f} GiB"
    )
    for what in (
        "pairwise_contrastive_loss",
        "pairwise_contrastive_loss+grad",
        "batch_hard_triplet_loss",
        "info_nce",
        "info_nce+grad",
    ):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(d), what], capture_output=True, text=True, check=True
        ).stdout.split()
        print(f"{what:32s} peak RSS growth {float(out[0]):8.1f} MiB   {float(out[1]):7.2f} s")


if __name__ == "__main__":
    main()
