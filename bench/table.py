"""Print a `fastloss bench --json FILE` result as the README's markdown table: one row per case and size,
float64 and float32 side by side.

fastloss bench --json results.json && python bench/table.py results.json [--size N] [--threads N]
"""

from __future__ import annotations

import argparse
import json


def fmt(v, spec=".1f"):
    return "–" if v is None else format(v, spec)


def ratio(peer_ms, fl_ms):
    return peer_ms / fl_ms if peer_ms else None


def cells(r) -> list[str]:
    if r is None:
        return ["–"] * 5
    fl = r["fastloss_ms"]
    roof = f"{r['roof_pct']:.0f}{' F' if r.get('roof') == 'fma' else ''}"
    return [
        f"{fl:.3g}",
        fmt(r["speedup_numpy"]),
        fmt(ratio(r["torch_ms"], fl)),
        fmt(ratio(r["sklearn_ms"], fl)),
        roof,
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--size", type=lambda s: int(float(s)), help="only this n (default: every size)")
    ap.add_argument("--threads", type=int, help="only this thread count (default: the most)")
    args = ap.parse_args(argv)
    with open(args.json) as f:
        res = json.load(f)
    rows = res["rows"]
    threads = args.threads or max(r["threads"] for r in rows)
    rows = [r for r in rows if r["threads"] == threads and (args.size is None or r["n"] == args.size)]
    info = res["info"]
    rounds = sorted({r["rounds"] for r in rows})
    print(
        f"fastloss {info['version']}, SIMD level {info['simd']}, {info['compiler']}, NumPy {info['numpy']}, "
        f"{info.get('cpu', '?')} ({info.get('cpus', '?')} CPUs), {threads} threads; median of "
        f"{rounds[0]}{'' if len(rounds) == 1 else f'–{rounds[-1]}'} interleaved rounds per case. "
        "Times in ms; × peer = peer's time / fastloss's time; % roof of the read bandwidth, or of the FMA "
        "peak (F), measured in the same run.\n"
    )
    by = {(r["loss"], r["n"], r["dtype"]): r for r in rows}
    keys = list(dict.fromkeys((r["loss"], r["n"]) for r in rows))
    head = "ms | × NumPy | × PyTorch | × sklearn | % roof"
    print(f"| case | n | float64 {head} | float32 {head} |")
    print("|---|---:|" + "---:|" * 10)
    for loss, n in keys:
        c64 = cells(by.get((loss, n, "float64")))
        c32 = cells(by.get((loss, n, "float32")))
        print(f"| {loss} | {n:.0e} | " + " | ".join(c64 + c32) + " |")


if __name__ == "__main__":
    main()
