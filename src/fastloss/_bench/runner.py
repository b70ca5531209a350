"""The timing loop of ``fastloss bench``: every contender of a case interleaved round by round, the
roof probes beside them, and the table."""

from __future__ import annotations

import math
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import fastloss
from fastloss import _backend
from fastloss._bench import build


def _time_batch(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call of `number` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


# Each timed sample is at least this long: fast calls are repeated back to back, as in a training loop,
# so that waking idle threads and cores (0.1-0.3 ms on a VM after a pause) is not charged to every call.
MIN_SAMPLE_S = 0.01


def _calls_per_sample(fn: Callable[[], Any]) -> int:
    """Warm fn up and return how many back-to-back calls make a sample of MIN_SAMPLE_S."""
    t = _time_batch(fn, 1)  # the first call pays page faults and lazy initialisation
    if t < MIN_SAMPLE_S:
        t = _time_batch(fn, 1)
    return max(1, min(10_000, math.ceil(MIN_SAMPLE_S / max(t, 1e-7))))


def _median_interleaved(
    fns: dict[str, Callable[[], Any]],
    rounds: tuple[int, int],
    budget: float = 0.0,
    settle: float = 0.01,
) -> dict[str, Any]:
    """Time every callable once per round, rounds interleaved, after a warm-up each; medians in s.

    A sample is the mean of enough back-to-back calls to last MIN_SAMPLE_S. rounds = (fewest, most):
    after the fewest, rounds stop once `budget` seconds have gone by, so that a slow peer does not make
    a case take minutes. The probe's samples come back too, as "probe_all", and the number of rounds as
    "rounds". `settle` is the pause before a round's first call, after the previous round's peers.
    """
    number = {k: _calls_per_sample(fn) for k, fn in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    t_start = time.perf_counter()
    order = list(fns.items())
    for r in range(rounds[1]):
        if r >= rounds[0] and time.perf_counter() - t_start >= budget:
            break
        # Each round starts with the next contender: whatever the previous round left behind (threads of
        # another runtime still spinning, caches) falls on each of them in turn, not always on the first.
        for i, (k, fn) in enumerate(order[r % len(order) :] + order[: r % len(order)]):
            # Let the previous contender's runtime settle first: OpenMP and OpenBLAS threads spin-wait
            # for a while after a call (OpenBLAS for about 2^28 cycles after a matrix product) and would
            # steal the cores from whoever runs next.
            time.sleep(settle if i == 0 else 0.002)
            times[k].append(_time_batch(fn, number[k]))
    med: dict[str, Any] = {k: statistics.median(v) for k, v in times.items()}
    med["probe_all"] = times.get("probe", [])
    med["rounds"] = len(times["fastloss"])
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
    losses: list[str],
    sizes: list[int],
    dtypes: list[str],
    threads: list[int],
    rounds: tuple[int, int],
    budget: float = 0.0,
) -> dict[str, Any]:
    """Time every case against NumPy (and PyTorch/scikit-learn where importable), in one process.

    Each case runs `rounds` = (fewest, most) interleaved rounds, stopping after the fewest once `budget`
    seconds have gone by.
    """
    if _backend._core is None:
        raise SystemExit("fastloss bench needs the compiled backend (fastloss._core is missing)")
    rows = []
    probes: dict[tuple[int, str, int], list[float]] = {}
    configs = [(loss, n, dt) for dt in dtypes for n in sizes for loss in losses]
    total = len(configs)
    for i, (loss, n, dt) in enumerate(configs):
        _progress(i, total, f"{loss} n={n} {dt}")
        case = build(loss, n, dt)
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
                med = _median_interleaved(fns, rounds, budget, settle=0.1 if case.flops else 0.01)
                if case.flops:
                    # The peers' matrix products leave OpenBLAS threads spinning for about 0.1 s; the
                    # next case (timed at 0.01 s pauses) would otherwise share the cores with them.
                    time.sleep(0.15)
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
                    "rounds": med["rounds"],
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
    return {
        "info": fastloss.info(),
        "rounds": list(rounds),
        "budget_s": budget,
        "roof_spread": _probe_spread(probes),
        "rows": rows,
    }


# A run whose probes of one configuration spread more than this (upper over lower quartile) was measured
# on a busy machine: the table says so.
PROBE_SPREAD_WARN = 1.2


def _probe_spread(probes: dict[tuple[int, str, int, str], list[float]]) -> float:
    """The largest upper-to-lower quartile ratio of the roof probe's samples over the configurations."""
    spread = 1.0
    for samples in probes.values():
        if len(samples) >= 4:
            q1, _, q3 = statistics.quantiles(samples, n=4)
            spread = max(spread, q3 / q1 if q1 > 0 else 1.0)
    return spread


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(result: dict[str, Any]) -> None:
    info = result["info"]
    print(
        f"fastloss {info['version']} ({info['simd']}, {info['compiler']}), numpy {info['numpy']}; "
        f"median of {_rounds_text(result['rows'])} interleaved runs per case, times in ms"
    )
    print(_roofs_text(result["rows"]))
    spread = result.get("roof_spread", 1.0)
    if spread > PROBE_SPREAD_WARN:
        print(
            f"warning: the roof probes varied by {100 * (spread - 1):.0f}% within this run (upper over lower "
            "quartile): the machine was busy, so read the ratios with care and rerun on a quiet machine",
            file=sys.stderr,
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
    w = max([26] + [len(r["loss"]) + 1 for r in result["rows"]])  # case names are the public names
    print(
        f"{hdr[0]:{w}s}{hdr[1]:>10s} {hdr[2]:>8s}{hdr[3]:>4s}{hdr[4]:>10s}{hdr[5]:>10s}{hdr[6]:>9s}"
        f"{hdr[7]:>10s}{hdr[8]:>9s}{hdr[9]:>10s}{hdr[10]:>8s}{hdr[11]:>8s}"
    )
    for r in result["rows"]:
        xt = r["torch_ms"] / r["fastloss_ms"] if r["torch_ms"] else None
        print(
            f"{r['loss']:{w}s}{r['n']:>10d} {r['dtype']:>8s}{r['threads']:>4d}"
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


def _rounds_text(rows: list[dict[str, Any]]) -> str:
    lo, hi = min(r["rounds"] for r in rows), max(r["rounds"] for r in rows)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _roofs_text(rows: list[dict[str, Any]]) -> str:
    """The machine's roofs measured in this run, per dtype and thread count."""
    parts = []
    for nt in sorted({r["threads"] for r in rows}):
        for dt in sorted({r["dtype"] for r in rows}):
            sel = [r for r in rows if r["threads"] == nt and r["dtype"] == dt]
            read = sorted({round(r["roof_gbs"], 1) for r in sel if r["roof"] == "read"})
            fma = sorted({round(r["roof_gflops"]) for r in sel if r["roof"] == "fma"})
            txt = f"{dt}, {nt} thr:"
            if read:
                txt += f" read {read[0]:.1f}" + (f"-{read[-1]:.1f}" if len(read) > 1 else "") + " GB/s"
            if fma:
                txt += f" FMA {statistics.median(fma):.0f} GFLOP/s"
            parts.append(txt)
    return "roofs measured in this run: " + "; ".join(parts)


def _rate(r: dict[str, Any]) -> str:
    return f"{r['gflops']:.0f}F" if r.get("gflops") else f"{r['gbs']:.1f}"


# The default run: every case at DEFAULT_SIZE, both dtypes, about a minute on 2 cores.
DEFAULT_SIZE = 1_000_000
QUICK_SIZE = 100_000
