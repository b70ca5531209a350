"""Peak memory of every kernel family: what a call adds to the resident set, against its inputs.

    python bench/memory.py [--threads N] [--only SUBSTRING ...]

Each case runs in a fresh subprocess: it makes its inputs (without float64 temporaries), resets the
kernel's high-water mark (``/proc/self/clear_refs``; ``ru_maxrss`` where that is refused), calls the loss
once and reports the growth of the peak resident set over the resident set it had before the call. The
bound fastloss promises is ``2 x inputs + 64 MiB`` for every loss and shape (plus the output itself where
that is bigger than the inputs by nature, as a distance matrix): scratch is sized by the rows actually
there, never by a fixed panel or tile shape, and the thread count is capped so that per-thread scratch
stays inside it. ``--threads`` sets ``fastloss.set_num_threads`` in the child (more threads than cores
is allowed: it checks that scratch does not grow with them). Exits 1 when a case is over its bound.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

MiB = 2**20

# (name, inputs, call): inputs is a Python expression over rng and g32 (float32 normals); the call
# names the arrays a, b, c in order. Pairwise distances add their N x M output to the bound.
CASES = [
    (
        "mse 1e7 f64 +grad",
        "[rng.standard_normal(10**7), rng.standard_normal(10**7)]",
        "fastloss.mse(a, b, return_grad=True)",
    ),
    ("huber 1e7 f32 +grad", "[g32(10**7), g32(10**7)]", "fastloss.huber(a, b, return_grad=True)"),
    (
        "cross_entropy 1e5x100 f32 +grad",
        "[g32((10**5, 100)), rng.integers(0, 100, 10**5)]",
        "fastloss.cross_entropy(a, b, return_grad=True)",
    ),
    (
        "cross_entropy 1x1e7 f64 +grad",
        "[rng.standard_normal((1, 10**7)), np.array([3])]",
        "fastloss.cross_entropy(a, b, return_grad=True)",
    ),
    (
        "cross_entropy 1x1e7 f32 +grad",
        "[g32((1, 10**7)), np.array([3])]",
        "fastloss.cross_entropy(a, b, return_grad=True)",
    ),
    (
        "cross_entropy 8x1e6 f32 +grad",
        "[g32((8, 10**6)), np.arange(8)]",
        "fastloss.cross_entropy(a, b, return_grad=True)",
    ),
    ("cross_entropy 1x1e7 f32", "[g32((1, 10**7)), np.array([3])]", "fastloss.cross_entropy(a, b)"),
    (
        "cross_entropy 4x21x256x256 f32 +grad",
        "[g32((4, 21, 256, 256)), rng.integers(0, 21, (4, 256, 256))]",
        "fastloss.cross_entropy(a, b, return_grad=True)",
    ),
    (
        "softmax_focal_loss 1x1e7 f32 +grad",
        "[g32((1, 10**7)), np.array([3])]",
        "fastloss.softmax_focal_loss(a, b, return_grad=True)",
    ),
    (
        "multiclass_hinge 1x1e7 f64 +grad",
        "[rng.standard_normal((1, 10**7)), np.array([3])]",
        "fastloss.multiclass_hinge(a, b, return_grad=True)",
    ),
    (
        "poly1_cross_entropy 1x1e7 f32 +grad",
        "[g32((1, 10**7)), np.array([3])]",
        "fastloss.poly1_cross_entropy(a, b, return_grad=True)",
    ),
    (
        "cross_entropy prob 1x1e7 f32 +grad",
        "[g32((1, 10**7)), rng.random((1, 10**7), dtype=np.float32) * 1e-7]",
        "fastloss.cross_entropy(a, b, return_grad=True)",
    ),
    (
        "multiclass_hinge 1x1e7 f32 +grad",
        "[g32((1, 10**7)), np.array([3])]",
        "fastloss.multiclass_hinge(a, b, return_grad=True)",
    ),
    ("softmax 1x1e7 f64", "[rng.standard_normal((1, 10**7))]", "fastloss.softmax(a)"),
    ("softmax 1x1e7 f32", "[g32((1, 10**7))]", "fastloss.softmax(a)"),
    ("log_softmax 1x1e7 f32", "[g32((1, 10**7))]", "fastloss.log_softmax(a)"),
    ("logsumexp 1e7x2 axis 0 f32", "[g32((10**7, 2))]", "fastloss.logsumexp(a, axis=0)"),
    ("softmax 1e7x2 axis 0 f32", "[g32((10**7, 2))]", "fastloss.softmax(a, axis=0)"),
    (
        "softmax_focal_loss 1x1e7x2 f32 +grad",
        "[g32((1, 10**7, 2)), np.array([[3, 4]])]",
        "fastloss.softmax_focal_loss(a, b, return_grad=True)",
    ),
    (
        "dice_loss 4x21x256x256 f32 +grad",
        "[g32((4, 21, 256, 256)), rng.integers(0, 21, (4, 256, 256))]",
        "fastloss.dice_loss(a, b, return_grad=True)",
    ),
    (
        "dice_loss 1e5x100x1 f32 +grad",
        "[g32((10**5, 100, 1)), rng.integers(0, 100, (10**5, 1))]",
        "fastloss.dice_loss(a, b, return_grad=True)",
    ),
    (
        "dice_loss none 1e5x100x1 f32 +grad",
        "[g32((10**5, 100, 1)), rng.integers(0, 100, (10**5, 1))]",
        "fastloss.dice_loss(a, b, reduction='none', return_grad=True)",
    ),
    (
        "dice_loss softmax 2x1e5x4 f32 +grad",
        "[g32((2, 10**5, 4)), rng.integers(0, 10**5, (2, 4))]",
        "fastloss.dice_loss(a, b, activation='softmax', return_grad=True)",
    ),
    ("pairwise_distances 2x1e6 f32", "[g32((2, 10**6))]", "fastloss.pairwise_distances(a)"),
    ("pairwise_distances 4096x128 f32", "[g32((4096, 128))]", "fastloss.pairwise_distances(a)"),
    (
        "pairwise_contrastive_loss 2x1e6 f32 +grad",
        "[g32((2, 10**6)), np.array([0, 1])]",
        "fastloss.pairwise_contrastive_loss(a, b, return_grad=True)",
    ),
    (
        "pairwise_contrastive_loss 100x1e5 f32 +grad",
        "[g32((100, 10**5)), rng.integers(0, 5, 100)]",
        "fastloss.pairwise_contrastive_loss(a, b, return_grad=True)",
    ),
    (
        "pairwise_contrastive_loss 8192x128 f32 +grad",
        "[g32((8192, 128)), rng.integers(0, 256, 8192)]",
        "fastloss.pairwise_contrastive_loss(a, b, return_grad=True)",
    ),
    (
        "batch_hard_triplet_loss 2x1e6 f32 +grad",
        "[g32((2, 10**6)), np.array([0, 0])]",
        "fastloss.batch_hard_triplet_loss(a, b, return_grad=True)",
    ),
    (
        "nt_xent 1x1e6 f32 +grad",
        "[g32((1, 10**6)), g32((1, 10**6))]",
        "fastloss.nt_xent(a, b, return_grad=True)",
    ),
    (
        "nt_xent 64x1e5 f32 +grad",
        "[g32((64, 10**5)), g32((64, 10**5))]",
        "fastloss.nt_xent(a, b, return_grad=True)",
    ),
    (
        "ge2e_loss 64x10x4e4 f32 +grad",
        "[g32((64, 10, 40000))]",
        "fastloss.ge2e_loss(a, return_grad=True)",
    ),
    (
        "ge2e_loss contrast 64x10x4e4 f32 +grad",
        "[g32((64, 10, 40000))]",
        "fastloss.ge2e_loss(a, method='contrast', return_grad=True)",
    ),
    (
        "ge2e_loss 256x10x4e4 f32 +grad",
        "[g32((256, 10, 40000))]",
        "fastloss.ge2e_loss(a, return_grad=True)",
    ),
    (
        "info_nce 4096x256 f32 +grad",
        "[g32((4096, 256)), g32((4096, 256))]",
        "fastloss.info_nce(a, b, return_grad=True)",
    ),
    (
        "multiple_negatives_ranking_loss 1x1e6 f32 +grad",
        "[g32((1, 10**6)), g32((1, 10**6))]",
        "fastloss.multiple_negatives_ranking_loss(a, b, return_grad=True)",
    ),
    (
        "arcface_loss 2x1e6 f32 +grad",
        "[g32((2, 10**6)), g32((4, 10**6)), np.array([0, 3])]",
        "fastloss.arcface_loss(a, b, c, return_grad=True)",
    ),
    (
        "triplet_margin_loss 1x1e6 f32 +grad",
        "[g32((1, 10**6)), g32((1, 10**6)), g32((1, 10**6))]",
        "fastloss.triplet_margin_loss(a, b, c, return_grad=True)",
    ),
    ("kmeans_inertia 2x1e6 f32", "[g32((2, 10**6)), g32((2, 10**6))]", "fastloss.kmeans_inertia(a, b)"),
    ("kmeans_inertia 1e5x64 k=16 f32", "[g32((10**5, 64)), g32((16, 64))]", "fastloss.kmeans_inertia(a, b)"),
    ("l2_penalty 1e7 f32 +grad", "[g32(10**7)]", "fastloss.l2_penalty(a, return_grad=True)"),
]
PLUS_OUTPUT = ("pairwise_distances",)

CHILD = r"""
import json, os, resource, sys
import numpy as np
import fastloss
inputs, call, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
if threads:
    fastloss.set_num_threads(threads)
rng = np.random.default_rng(0)
def g32(shape):
    return rng.standard_normal(shape, dtype=np.float32)
arrays = eval(inputs)
names = dict(zip("abcy", arrays))
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    before, peak = status("VmRSS"), lambda: status("VmHWM")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = eval(call, {"fastloss": fastloss}, names)
grew = peak() - before
leaves = []
def walk(v):
    if isinstance(v, (tuple, list)):
        for u in v:
            walk(u)
    elif isinstance(v, np.ndarray):
        leaves.append(v.nbytes)
walk(out)
print(json.dumps({"grew": grew, "inputs": sum(a.nbytes for a in arrays), "outputs": sum(leaves)}))
"""


def measure(name: str, threads: int) -> dict:
    inputs, call = next((i, c) for n, i, c in CASES if n == name)
    res = subprocess.run(
        [sys.executable, "-c", CHILD, inputs, call, str(threads)], capture_output=True, text=True
    )
    if res.returncode != 0:
        return {"case": name, "error": res.stderr.strip().splitlines()[-1]}
    r = json.loads(res.stdout)
    r["bound"] = 2 * r["inputs"] + 64 * MiB + (r["outputs"] if name.startswith(PLUS_OUTPUT) else 0)
    r["case"] = name
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="fastloss.set_num_threads in the child")
    ap.add_argument("--only", nargs="*", default=[], help="cases whose name contains one of these")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)
    names = [n for n, _, _ in CASES if not args.only or any(s in n for s in args.only)]
    rows, over = [], 0
    print(f"{'case':50s} {'inputs':>9s} {'growth':>9s} {'bound':>9s}  (MiB)")
    for name in names:
        r = measure(name, args.threads)
        rows.append(r)
        if "error" in r:
            over += 1
            print(f"{name:50s} error: {r['error']}")
            continue
        ok = r["grew"] <= r["bound"]
        over += not ok
        print(
            f"{name:50s} {r['inputs'] / MiB:9.1f} {r['grew'] / MiB:9.1f} {r['bound'] / MiB:9.1f}"
            f"  {'ok' if ok else 'OVER'}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
