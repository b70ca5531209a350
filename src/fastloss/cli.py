"""The ``fastloss`` command: ``fastloss info`` and ``fastloss bench``."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import fastloss
from fastloss import _backend, _benchcases


def _cmd_info(args: argparse.Namespace) -> int:
    for k, v in fastloss.info().items():
        print(f"{k:12s} {v}")
    return 0


def _time_once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median_interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, settle: float = 0.01
) -> dict[str, Any]:
    """Run every callable once per round, rounds interleaved, after one warm-up each; medians in s.

    The raw probe times come back too, as "probe_all". `settle` is the pause before a round's first
    call, after the previous round's peers.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for i, (k, fn) in enumerate(fns.items()):
            # Let the previous contender's runtime settle first: OpenMP and OpenBLAS threads spin-wait
            # for a while after a call (OpenBLAS for about 2^28 cycles after a matrix product) and would
            # steal the cores from whoever runs next.
            time.sleep(settle if i == 0 else 0.01)
            times[k].append(_time_once(fn))
    med: dict[str, Any] = {k: statistics.median(v) for k, v in times.items()}
    med["probe_all"] = times.get("probe", [])
    return med


def _progress(i: int, total: int, label: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    done = int(width * i / total)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{total} {label:40s}")
    sys.stderr.flush()
    if i == total:
        sys.stderr.write("\r" + " " * (width + 60) + "\r")


# Rounds of the FMA probe: about 10 ms on a core.
FMA_ITERS = 2_000_000


def run_bench(
    losses: list[str], sizes: list[int], dtypes: list[str], threads: list[int], repeats: int
) -> dict[str, Any]:
    """Time every case against NumPy (and PyTorch/scikit-learn where importable), in one process."""
    if _backend._core is None:
        raise SystemExit("fastloss bench needs the compiled backend (fastloss._core is missing)")
    rows = []
    probes: dict[tuple[int, str, int], list[float]] = {}
    configs = [(loss, n, dt) for dt in dtypes for n in sizes for loss in losses]
    total = len(configs)
    for i, (loss, n, dt) in enumerate(configs):
        _progress(i, total, f"{loss} n={n} {dt}")
        case = _benchcases.build(loss, n, dt)
        # The probe reads two float arrays of n elements; a class-wise case (scores and integer labels)
        # probes its scores twice.
        probe_a = case.arrays[0].reshape(-1)
        probe_b = case.arrays[-1].reshape(-1)
        if probe_b.dtype != probe_a.dtype or probe_b.size != probe_a.size:
            probe_b = probe_a
        # Compute-bound cases are judged against the FMA peak, memory-bound ones against the read
        # bandwidth; either probe runs interleaved with the contenders.
        f32 = np.dtype(dt) == np.float32
        roof = "fma" if case.flops else "read"
        np_time = None
        for nt in threads:
            fns: dict[str, Callable[[], Any]] = {}
            with fastloss.num_threads(nt):
                fl = case.fastloss

                def fl_call(fl=fl, nt=nt):
                    with fastloss.num_threads(nt):
                        return fl()

                fns["fastloss"] = fl_call
                if case.flops:
                    fns["probe"] = lambda nt=nt, f32=f32: _backend._core.fma_probe(f32, FMA_ITERS, nt)
                else:
                    fns["probe"] = lambda a=probe_a, b=probe_b, nt=nt: _backend._core.read_probe(a, b, nt)
                if np_time is None:
                    fns["numpy"] = case.numpy
                if case.torch is not None:
                    fns["torch"] = case.torch(nt)
                if case.sklearn is not None:
                    fns["sklearn"] = case.sklearn(nt)
                med = _median_interleaved(fns, repeats, settle=0.1 if case.flops else 0.01)
            if np_time is None:
                np_time = med.pop("numpy")
            probes.setdefault((probe_a.size, dt, nt, roof), []).extend(med.pop("probe_all"))
            rows.append(
                {
                    "loss": loss,
                    "n": n,
                    "size": probe_a.size,
                    "dtype": dt,
                    "threads": nt,
                    "fastloss_ms": med["fastloss"] * 1e3,
                    "numpy_ms": np_time * 1e3,
                    "speedup_numpy": np_time / med["fastloss"],
                    "torch_ms": med["torch"] * 1e3 if "torch" in med else None,
                    "sklearn_ms": med["sklearn"] * 1e3 if "sklearn" in med else None,
                    "gbs": case.nbytes / med["fastloss"] / 1e9,
                    "gflops": case.flops / med["fastloss"] / 1e9 if case.flops else None,
                    "roof": roof,
                }
            )
    _progress(total, total, "")
    # One roof per (size, dtype, threads): the median of every probe run of that configuration, so that
    # a noisy moment does not move one row's percentage.
    for r in rows:
        t = statistics.median(probes[(r["size"], r["dtype"], r["threads"], r["roof"])])
        if r["roof"] == "fma":
            r["roof_gflops"] = (
                _backend._core.fma_probe(r["dtype"] == "float32", FMA_ITERS, 1) * r["threads"] / t / 1e9
            )
            r["roof_pct"] = 100.0 * r["gflops"] / r["roof_gflops"]
        else:
            probe_bytes = 2 * r["size"] * np.dtype(r["dtype"]).itemsize
            r["roof_gbs"] = probe_bytes / t / 1e9
            r["roof_pct"] = 100.0 * r["gbs"] / r["roof_gbs"]
    return {"info": fastloss.info(), "repeats": repeats, "rows": rows}


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(result: dict[str, Any]) -> None:
    info = result["info"]
    print(
        f"fastloss {info['version']} ({info['simd']}, {info['compiler']}), numpy {info['numpy']}; "
        f"median of {result['repeats']} interleaved runs, times in ms"
    )
    hdr = (
        "loss",
        "n",
        "dtype",
        "thr",
        "fastloss",
        "numpy",
        "x numpy",
        "torch",
        "x torch",
        "sklearn",
        "rate",
        "% roof",
    )
    print(
        f"{hdr[0]:22s}{hdr[1]:>10s} {hdr[2]:>8s}{hdr[3]:>4s}{hdr[4]:>10s}{hdr[5]:>10s}{hdr[6]:>9s}"
        f"{hdr[7]:>10s}{hdr[8]:>9s}{hdr[9]:>10s}{hdr[10]:>8s}{hdr[11]:>8s}"
    )
    for r in result["rows"]:
        xt = r["torch_ms"] / r["fastloss_ms"] if r["torch_ms"] else None
        print(
            f"{r['loss']:22s}{r['n']:>10d} {r['dtype']:>8s}{r['threads']:>4d}"
            f"{r['fastloss_ms']:>10.3f}{r['numpy_ms']:>10.2f}{r['speedup_numpy']:>9.1f}"
            f"{_fmt(r['torch_ms']):>10s}{_fmt(xt, '.1f'):>9s}{_fmt(r['sklearn_ms']):>10s}"
            f"{_rate(r):>8s}{r['roof_pct']:>8.0f}"
        )
    print(
        "rate: GB/s of the inputs read (memory-bound losses) or GFLOP/s (F, pairwise losses: 2 per "
        "multiply-add of the distance or similarity); % roof: share of the read bandwidth (sum of a + b "
        "over the same arrays) or of the FMA peak (a register-only FMA loop) measured in the same run, "
        "same threads."
    )


def _rate(r: dict[str, Any]) -> str:
    return f"{r['gflops']:.0f}F" if r.get("gflops") else f"{r['gbs']:.1f}"


def _cmd_bench(args: argparse.Namespace) -> int:
    losses = args.loss or list(_benchcases.NAMES)
    for name in losses:
        if name not in _benchcases.NAMES + _benchcases.EXTRA:
            print(
                f"fastloss bench: unknown loss {name!r}; "
                f"known: {', '.join(_benchcases.NAMES + _benchcases.EXTRA)}",
                file=sys.stderr,
            )
            return 2
    sizes = args.size or ([100_000] if args.quick else [10_000_000])
    dtypes = args.dtype or ["float64", "float32"]
    threads = args.threads or [_backend.get_num_threads()]
    repeats = args.repeats or (3 if args.quick else 5)
    result = run_bench(losses, sizes, dtypes, threads, repeats)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def _positive_int(s: str) -> int:
    v = int(float(s))  # accepts 1e7
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastloss", description=fastloss.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("info", help="version, backend, compiler, OpenMP, threads, SIMD level")
    pi.set_defaults(func=_cmd_info)
    pb = sub.add_parser("bench", help="time the losses against NumPy (and PyTorch/scikit-learn)")
    pb.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    pb.add_argument("--loss", nargs="+", metavar="NAME", help="losses to run (default: all)")
    pb.add_argument("--size", nargs="+", type=_positive_int, metavar="N", help="element counts")
    pb.add_argument("--dtype", nargs="+", choices=["float32", "float64"])
    pb.add_argument(
        "--threads",
        nargs="+",
        type=_positive_int,
        metavar="N",
        help="thread counts to time (default: all threads)",
    )
    pb.add_argument("--repeats", type=_positive_int, metavar="R", help="timed runs per case")
    pb.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    pb.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
