"""Print a `fastloss bench --json FILE` result as the README's markdown table.

fastloss bench --json results.json && python bench/table.py results.json
"""

from __future__ import annotations

import json
import sys


def fmt(v, spec=".1f"):
    return "–" if v is None else format(v, spec)


def main(path: str) -> None:
    with open(path) as f:
        res = json.load(f)
    info = res["info"]
    print(
        f"fastloss {info['version']}, SIMD level {info['simd']}, {info['compiler']}, NumPy {info['numpy']}, "
        f"{info['threads']} threads; median of {res['repeats']} interleaved runs.\n"
    )
    print(
        "| loss | dtype | fastloss ms | NumPy ms | × NumPy | PyTorch ms | × PyTorch | sklearn ms | × sklearn "
        "| GB/s or GFLOP/s | % of roof |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["rows"]:
        fl = r["fastloss_ms"]
        xt = r["torch_ms"] / fl if r["torch_ms"] else None
        xs = r["sklearn_ms"] / fl if r["sklearn_ms"] else None
        rate = f"{r['gflops']:.0f} GFLOP/s" if r.get("gflops") else f"{r['gbs']:.1f}"
        print(
            f"| {r['loss']} | {r['dtype']} | {fl:.2f} | {r['numpy_ms']:.1f} | {r['speedup_numpy']:.1f} | "
            f"{fmt(r['torch_ms'])} | {fmt(xt)} | {fmt(r['sklearn_ms'])} | {fmt(xs)} | {rate} | "
            f"{r['roof_pct']:.0f}{' (FMA)' if r.get('roof') == 'fma' else ''} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
