"""The ``fastloss`` command: ``fastloss info``, ``fastloss bench`` and ``fastloss eval``."""

from __future__ import annotations

import argparse
import json
import sys

import fastloss
from fastloss import _backend, _bench
from fastloss._bench import eval as _eval
from fastloss._bench import plot as _plot
from fastloss._bench.runner import DEFAULT_SIZE, QUICK_SIZE, print_table, run_bench


def _cmd_info(args: argparse.Namespace) -> int:
    info = fastloss.info()
    if args.json:
        print(json.dumps(info))
        return 0
    for k, v in info.items():
        print(f"{k:12s} {', '.join(map(str, v)) if isinstance(v, list) else v}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    known = _bench.NAMES + _bench.EXTRA
    losses = args.loss or list(_bench.NAMES)
    if losses == ["all"]:
        losses = list(known)
    unknown = [name for name in losses if name not in known]
    if unknown:
        print(
            f"fastloss bench: unknown loss {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(known)}, or all",
            file=sys.stderr,
        )
        return 2
    if args.plot and not _plot.available():
        print('fastloss bench: --plot needs matplotlib: pip install "fastloss[bench]"', file=sys.stderr)
        return 2
    for path in (args.json, args.plot):  # fail now, not after minutes of timing
        if path:
            try:
                open(path, "a").close()
            except OSError as e:
                print(f"fastloss bench: cannot write {path}: {e.strerror}", file=sys.stderr)
                return 1
    sizes = args.size or [QUICK_SIZE if args.quick else DEFAULT_SIZE]
    dtypes = args.dtype or ["float64", "float32"]
    threads = args.threads or [_backend.get_num_threads()]
    if args.repeats:  # exactly R rounds
        rounds, budget = (args.repeats, args.repeats), 0.0
    else:  # 3 to 5 rounds: no more once a case has taken `budget` seconds
        rounds, budget = ((3, 3) if args.quick else (3, 5)), args.budget
    result = run_bench(losses, sizes, dtypes, threads, rounds, budget)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        _plot.plot(result, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def _positive_int(s: str) -> int:
    try:
        v = int(float(s))  # accepts 1e7
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def _seconds(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastloss", description=fastloss.__doc__)
    p.add_argument("--version", action="version", version=f"fastloss {fastloss.__version__}")
    sub = p.add_subparsers(dest="command")
    pi = sub.add_parser("info", help="version, backend, compiler, OpenMP, threads, SIMD level, CPU")
    pi.add_argument("--json", action="store_true", help="print a JSON object")
    pi.set_defaults(func=_cmd_info)
    pb = sub.add_parser(
        "bench",
        help="time the losses against NumPy (and PyTorch/scikit-learn)",
        description=(
            "Time every loss (or the ones named) on synthetic data against idiomatic NumPy, and against "
            "PyTorch and scikit-learn when importable, in one process with the contenders interleaved; "
            "the machine's read bandwidth and FMA peak are measured in the same run. Without arguments: "
            f"every case at n = {DEFAULT_SIZE:.0e}, float64 and float32, all threads (about a minute on "
            "2 cores). Cases: " + ", ".join(_bench.NAMES + _bench.EXTRA) + "."
        ),
    )
    pb.add_argument("--quick", action="store_true", help=f"n = {QUICK_SIZE:.0e} and 3 rounds: a smoke test")
    pb.add_argument(
        "--loss",
        nargs="+",
        metavar="NAME",
        help="cases to run (default: all but the large extras; all: every one)",
    )
    pb.add_argument(
        "--size",
        nargs="+",
        type=_positive_int,
        metavar="N",
        help="problem sizes: elements per input, or about N^2 pairs for the pairwise cases "
        f"(default {DEFAULT_SIZE:.0e})",
    )
    pb.add_argument("--dtype", nargs="+", choices=["float32", "float64"], help="default: both")
    pb.add_argument(
        "--threads",
        nargs="+",
        type=_positive_int,
        metavar="N",
        help="thread counts to time (default: all threads)",
    )
    pb.add_argument(
        "--repeats", type=_positive_int, metavar="R", help="exactly R timed rounds per case (default 3 to 5)"
    )
    pb.add_argument(
        "--budget",
        type=_seconds,
        default=0.5,
        metavar="S",
        help="without --repeats: no round after the third once a case has run S seconds (default 0.5)",
    )
    pb.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    pb.add_argument(
        "--plot",
        metavar="FILE.png",
        help='also draw speed-ups and time against size (needs "fastloss[bench]")',
    )
    pb.set_defaults(func=_cmd_bench)
    _eval.add_parser(sub, _positive_int)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `fastloss`: what it can do
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
