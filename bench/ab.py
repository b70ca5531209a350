"""Did anything get slower? The bench cases of this checkout against another build of fastloss.

    python bench/ab.py OTHER [--n N] [--dtype float64 float32] [--rounds R] [--only NAME ...]

OTHER is a directory holding another build's ``fastloss`` package (an unpacked wheel of the commit to
compare with: ``git worktree add /tmp/base REV && pip wheel /tmp/base --no-deps --no-build-isolation -w
/tmp/whl && unzip /tmp/whl/*.whl -d /tmp/basepkg``). Every case of ``fastloss bench`` (``fastloss._bench``)
is timed in a fresh subprocess per side and round, the two sides alternating (A B, then B A), each case
the minimum of five timeit repeats. Reported per case: the median over rounds of the per-round ratio
this / other, and the ratio of the two sides' minima; the summary gives the median of each over the cases
and how many are beyond 1.10. On a shared machine one round's ratio of one case says little: compare
medians, and rerun the outliers with ``--only`` and more rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, timeit
other = os.environ.get("FASTLOSS_AB_OTHER")
if other:  # the other build first on the path, and no editable-install finder in front of it
    sys.path.insert(0, other)
    sys.meta_path = [f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__]
import fastloss
try:
    from fastloss import _bench as B
except ImportError:  # a build from before the tooling moved (the cases it names differently drop out)
    from fastloss import _benchcases as B
n, dtypes, only = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
out = {}
for name in (only.split(",") if only else B.NAMES):
    for dt in dtypes:
        try:
            fn = B.build(name, n, dt).fastloss
            fn()
        except Exception:  # a case the other build does not have
            continue
        t = timeit.Timer(fn)
        number = max(1, t.autorange()[0] // 4)
        out[f"{name}:{dt}"] = min(t.repeat(5, number)) / number
print(json.dumps({"file": fastloss.__file__, "times": out}))
"""


def run(other: str | None, args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("FASTLOSS_AB_OTHER", None)
    if other:
        env["FASTLOSS_AB_OTHER"] = other
    cmd = [sys.executable, "-c", CHILD, str(args.n), ",".join(args.dtype), ",".join(args.only)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    res = json.loads(p.stdout)
    if other and not res["file"].startswith(other):  # the other build must be the one imported
        raise SystemExit(f"ab.py: the child imported {res['file']}, not the build in {other}")
    return res["times"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", help="directory holding the other build's fastloss package")
    ap.add_argument("--n", type=int, default=10**6, help="elements per input (default 1e6, the bench's size)")
    ap.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--only", nargs="+", default=[], metavar="NAME", help="cases to run (default: all)")
    args = ap.parse_args()
    other = os.path.abspath(args.other)
    if not os.path.isdir(os.path.join(other, "fastloss")):
        ap.error(f"{other} holds no fastloss package")
    this: list[dict[str, float]] = []
    that: list[dict[str, float]] = []
    for r in range(args.rounds):
        for side in ("this", "other") if r % 2 == 0 else ("other", "this"):
            (this if side == "this" else that).append(run(None if side == "this" else other, args))
    keys = [k for k in this[0] if all(k in d for d in this + that)]
    med = {k: statistics.median(a[k] / b[k] for a, b in zip(this, that)) for k in keys}
    mins = {k: min(d[k] for d in this) / min(d[k] for d in that) for k in keys}
    print(f"{'case':40s} {'median':>7s} {'min':>7s} {'this, us':>10s}")
    for k in sorted(keys, key=lambda k: -mins[k]):
        print(f"{k:40s} {med[k]:7.3f} {mins[k]:7.3f} {min(d[k] for d in this) * 1e6:10.1f}")
    m_med, m_min = statistics.median(med.values()), statistics.median(mins.values())
    over_med, over_min = sum(v > 1.10 for v in med.values()), sum(v > 1.10 for v in mins.values())
    print(
        f"{len(keys)} cases, {args.rounds} rounds: median of the median ratios {m_med:.3f}, of the min "
        f"ratios {m_min:.3f}; beyond 1.10: {over_med} (median), {over_min} (min)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
