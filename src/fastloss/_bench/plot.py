"""``fastloss bench --plot FILE.png``: the speed-up over NumPy per loss, and time against size on log-log
axes with the measured roofline. Needs matplotlib (``pip install "fastloss[bench]"``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastloss._bench import MEMORY_BOUND

COLORS = {"float32": "tab:blue", "float64": "tab:orange"}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(result: dict[str, Any], path: str) -> None:
    """Write the figure for a `run_bench` result to `path` (any format matplotlib knows by extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    threads = max(r["threads"] for r in rows)
    top = [r for r in rows if r["threads"] == threads]
    largest = max(r["n"] for r in top)
    bars = [r for r in top if r["n"] == largest]
    losses = list(dict.fromkeys(r["loss"] for r in bars))
    dtypes = list(dict.fromkeys(r["dtype"] for r in bars))

    height = max(7.0, 0.12 * len(losses) * len(dtypes) + 1.5)
    fig = plt.figure(figsize=(13, height), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(1, 1.1))
    ax_bar = fig.add_subplot(grid[:, 0])
    ax_mem = fig.add_subplot(grid[0, 1])
    ax_fma = fig.add_subplot(grid[1, 1])

    # Speed-up over NumPy, one bar per (loss, dtype), at the largest size and most threads.
    w = 0.8 / len(dtypes)
    by = {(r["loss"], r["dtype"]): r for r in bars}
    for j, dt in enumerate(dtypes):
        ys, xs = [], []
        for i, loss in enumerate(losses):
            if (loss, dt) in by:
                ys.append(i + (j - (len(dtypes) - 1) / 2) * w)
                xs.append(by[(loss, dt)]["speedup_numpy"])
        ax_bar.barh(ys, xs, height=w, color=COLORS.get(dt), label=dt)
        for y, x in zip(ys, xs):
            ax_bar.text(x, y, f" {x:.1f}", va="center", fontsize=6)
    ax_bar.axvline(1.0, color="black", lw=0.8)
    ax_bar.set_xscale("log")
    ax_bar.set_yticks(range(len(losses)), losses, fontsize=8)
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel("speed-up over NumPy (x, log scale)")
    ax_bar.set_title(f"fastloss vs NumPy, n = {largest:.0e}, {threads} threads", fontsize=10)
    ax_bar.legend(loc="lower right", fontsize=8)
    ax_bar.grid(axis="x", which="both", alpha=0.3)

    _time_panel(
        ax_mem, top, "read", "gbs", "bytes read", "roof_gbs", 1e9, "read bandwidth", set(MEMORY_BOUND)
    )
    _time_panel(
        ax_fma, top, "fma", "gflops", "floating-point operations", "roof_gflops", 1e9, "FMA peak", None
    )
    info = result["info"]
    fig.suptitle(
        f"fastloss {info['version']} ({info['simd']}), {threads} threads, median of interleaved runs; "
        "lines: the roofline measured in the same run",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _time_panel(ax, rows, roof, rate_key, xlabel, roof_key, unit, roof_name, highlight) -> None:
    """Time against work (bytes or FLOPs) on log-log axes, one line per loss and dtype across sizes; the
    roof is work / (the bandwidth or peak measured at the largest size), per dtype. The `highlight` cases
    (None: all) are coloured and labelled at their largest size (float64 only, to keep it legible); the
    others are drawn faint."""
    import statistics

    rows = [r for r in rows if r["roof"] == roof]
    if not rows:
        ax.set_axis_off()
        return
    series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        work = r["fastloss_ms"] * 1e-3 * r[rate_key] * unit  # bytes or flops of the call
        series[(r["loss"], r["dtype"])].append((work, r["fastloss_ms"]))
    for (loss, dt), pts in sorted(series.items()):
        pts.sort()
        if highlight is None or loss in highlight:
            ax.plot(*zip(*pts), marker="o", ms=3, lw=0.9, alpha=0.8, color=COLORS.get(dt))
            if dt == "float64":
                ax.annotate(loss, pts[-1], xytext=(3, 0), textcoords="offset points", fontsize=6, va="center")
        else:
            ax.plot(*zip(*pts), marker=".", ms=2, lw=0.5, alpha=0.25, color="grey")
    for dt in sorted({r["dtype"] for r in rows}):
        sel = [r for r in rows if r["dtype"] == dt]
        big = max(r["n"] for r in sel)
        rate = statistics.median(r[roof_key] for r in sel if r["n"] == big) * unit
        works = [w for (_, d), pts in series.items() if d == dt for w, _ in pts]
        xs = [min(works) / 1.5, max(works) * 1.5]
        unit_name = "GB/s" if roof == "read" else "GFLOP/s"
        ax.plot(
            xs,
            [x / rate * 1e3 for x in xs],
            color="black",
            ls="--" if dt == "float32" else "-",
            lw=1.2,
            label=f"{roof_name} {rate / unit:.0f} {unit_name}, {dt}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fastloss time (ms)")
    if roof == "read":
        title = "time against size: memory-bound losses (grey: the others judged by bandwidth)"
    else:
        title = "time against size: compute-bound (pairwise, Gram) cases"
    ax.set_title(title + "; black: the roof", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(which="both", alpha=0.3)
