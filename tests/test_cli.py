"""The ``fastloss`` command: every subcommand runs, ``eval`` agrees with the Python API on .npy, .npz and
.csv files, and every error path gives its message and exit code (2: usage, 1: data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from conftest import needs_core

import fastloss
from fastloss import cli
from fastloss._bench import eval as _eval
from fastloss._bench import runner


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of `fastloss argv...` run in this process."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def rng():
    return np.random.default_rng(20261201)


# --------------------------------------------------------------------------------------------------
# info


def test_info_prints_every_field(capsys):
    rc, out, _ = run_cli(capsys, "info")
    assert rc == 0
    for key in ("version", "backend", "compiler", "openmp", "threads", "simd", "cpu"):
        assert any(line.split()[0] == key for line in out.splitlines()), key


def test_info_json_is_fastloss_info(capsys):
    rc, out, _ = run_cli(capsys, "info", "--json")
    assert rc == 0
    got = json.loads(out)
    want = fastloss.info()
    assert got["version"] == want["version"] and got["simd"] == want["simd"]
    assert got["threads"] == want["threads"] and got["backend"] == want["backend"]


def test_python_dash_m_and_console_script():
    script = os.path.join(os.path.dirname(sys.executable), "fastloss")  # this interpreter's own script
    for cmd in ([sys.executable, "-m", "fastloss", "info"], [script, "info"]):
        if not os.path.exists(cmd[0]):
            continue  # no console script beside this interpreter (not installed with pip)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert fastloss.__version__ in res.stdout


# --------------------------------------------------------------------------------------------------
# bench


@needs_core
def test_bench_quick_tiny_json(capsys, tmp_path):
    path = tmp_path / "r.json"
    losses = ("mse", "cross_entropy", "pairwise_distances", "dice_loss")
    rc, out, _ = run_cli(
        capsys, "bench", "--quick", "--size", 3000, "--loss", *losses, "--repeats", 1, "--json", path
    )
    assert rc == 0
    assert "x numpy" in out and "roofs measured in this run" in out
    res = json.loads(path.read_text())
    rows = res["rows"]
    assert [r["loss"] for r in rows] == list(losses) * 2  # float64, then float32
    for r in rows:
        assert r["fastloss_ms"] > 0 and r["numpy_ms"] > 0 and r["rounds"] == 1
        assert r["speedup_numpy"] == pytest.approx(r["numpy_ms"] / r["fastloss_ms"])
        assert r["roof"] == ("fma" if r["loss"] == "pairwise_distances" else "read")
        assert r["roof_pct"] > 0
    assert res["info"]["version"] == fastloss.__version__


@needs_core
def test_bench_threads_and_dtype(capsys, tmp_path):
    path = tmp_path / "r.json"
    rc, _, _ = run_cli(
        capsys, "bench", "--size", 2000, "--loss", "huber", "--dtype", "float32", "--threads", 1, 2,
        "--repeats", 1, "--json", path,
    )  # fmt: skip
    assert rc == 0
    rows = json.loads(path.read_text())["rows"]
    assert [(r["dtype"], r["threads"]) for r in rows] == [("float32", 1), ("float32", 2)]
    assert rows[0]["numpy_ms"] == rows[1]["numpy_ms"]  # NumPy is timed once per case


@needs_core
def test_bench_budget_bounds_the_rounds(capsys, tmp_path):
    path = tmp_path / "r.json"
    rc, _, _ = run_cli(capsys, "bench", "--size", 2000, "--loss", "mae", "--budget", 0, "--json", path)
    assert rc == 0
    assert [r["rounds"] for r in json.loads(path.read_text())["rows"]] == [3, 3]


@needs_core
def test_bench_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    rc, out, _ = run_cli(
        capsys,
        "bench",
        "--size",
        2000,
        4000,
        "--loss",
        "mse",
        "pairwise_distances",
        "--repeats",
        1,
        "--plot",
        png,
    )
    assert rc == 0 and f"plot written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_plot_without_matplotlib(capsys, tmp_path, monkeypatch):
    from fastloss._bench import plot as _plot

    monkeypatch.setattr(_plot, "available", lambda: False)
    rc, _, err = run_cli(capsys, "bench", "--loss", "mse", "--plot", tmp_path / "x.png")
    assert rc == 2 and "pip install" in err and "fastloss[bench]" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--loss", "msee"], "unknown loss 'msee'"),
        (["--size", "0"], "must be >= 1"),
        (["--size", "many"], "not a number"),
        (["--threads", "-1"], "must be >= 1"),
        (["--dtype", "float16"], "invalid choice"),
        (["--budget", "-1"], "must be >= 0"),
    ],
)
def test_bench_usage_errors(capsys, argv, message):
    rc, _, err = run_cli(capsys, "bench", *argv)
    assert rc == 2 and message in err


def test_bench_unwritable_json(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "bench", "--loss", "mse", "--json", tmp_path / "no" / "such" / "dir.json")
    assert rc == 1 and "cannot write" in err


# --------------------------------------------------------------------------------------------------
# eval: the same value as the Python API


def save(tmp_path, name, a):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, a)
    elif name.endswith(".csv"):
        np.savetxt(path, a, delimiter=",", fmt="%.17g" if a.dtype.kind == "f" else "%d")
    return path


def eval_value(capsys, *argv):
    rc, out, err = run_cli(capsys, "eval", *argv)
    assert rc == 0, err
    return float(out.strip().splitlines()[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eval_npy(capsys, tmp_path, rng, backend, dtype):
    p, t = rng.standard_normal(1000).astype(dtype), rng.standard_normal(1000).astype(dtype)
    fp, ft = save(tmp_path, "p.npy", p), save(tmp_path, "t.npy", t)
    assert eval_value(capsys, "mse", fp, ft) == fastloss.mse(p, t)
    got = eval_value(capsys, "huber", fp, ft, "--param", "delta=0.5", "--reduction", "sum")
    assert got == fastloss.huber(p, t, delta=0.5, reduction="sum")
    w = rng.random(1000)
    fw = save(tmp_path, "w.npy", w)
    assert eval_value(capsys, "log-cosh", fp, ft, "--weight", fw) == fastloss.log_cosh(p, t, weight=w)


def test_eval_npz_keys(capsys, tmp_path, rng, backend):
    x, y = rng.standard_normal((50, 7)), rng.integers(0, 7, 50)
    want = fastloss.cross_entropy(x, y, label_smoothing=0.1)
    both = tmp_path / "both.npz"
    np.savez(both, logits=x, target=y)
    # by the argument's name, by FILE:KEY, and by --key for one-member files
    assert eval_value(capsys, "cross_entropy", both, both, "-p", "label_smoothing=0.1") == want
    np.savez(tmp_path / "other.npz", scores=x, labels=y)
    other = tmp_path / "other.npz"
    got = eval_value(
        capsys, "cross_entropy", f"{other}:scores", f"{other}:labels", "-p", "label_smoothing=0.1"
    )
    assert got == want
    np.savez(tmp_path / "x.npz", scores=x)
    np.savez(tmp_path / "y.npz", scores=y)
    got = eval_value(
        capsys, "cross_entropy", tmp_path / "x.npz", tmp_path / "y.npz", "--key", "scores",
        "-p", "label_smoothing=0.1",
    )  # fmt: skip
    assert got == want


def test_eval_csv_with_header_and_labels(capsys, tmp_path, rng, backend):
    x, y = rng.standard_normal((40, 5)), rng.integers(0, 5, 40)
    fx = tmp_path / "x.csv"
    fx.write_text("a,b,c,d,e\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in x) + "\n")
    fy = save(tmp_path, "y.csv", y)
    assert eval_value(capsys, "cross_entropy", fx, fy) == fastloss.cross_entropy(x, y)
    assert eval_value(capsys, "multiclass_hinge", fx, fy) == fastloss.multiclass_hinge(x, y)


def test_eval_three_arrays_and_batchmean(capsys, tmp_path, rng, backend):
    a, b = rng.standard_normal(100), rng.standard_normal(100)
    y = np.where(rng.random(100) < 0.5, -1.0, 1.0)
    files = [save(tmp_path, f"{k}.npy", v) for k, v in (("a", a), ("b", b), ("y", y))]
    got = eval_value(capsys, "margin_ranking_loss", *files, "-p", "margin=0.1")
    assert got == fastloss.margin_ranking_loss(a, b, y, margin=0.1)
    logq = np.log(rng.dirichlet(np.ones(6), 20))
    pt = rng.dirichlet(np.ones(6), 20)
    fq, fp = save(tmp_path, "q.npy", logq), save(tmp_path, "pt.npy", pt)
    assert eval_value(capsys, "kl_div", fq, fp, "--reduction", "batchmean") == fastloss.kl_div(logq, pt)


def test_eval_varargs_and_tuple_results(capsys, tmp_path, rng, backend):
    w1, w2 = rng.standard_normal((3, 4)), rng.standard_normal(5)
    f1, f2 = save(tmp_path, "w1.npy", w1), save(tmp_path, "w2.npy", w2)
    assert eval_value(capsys, "l2_penalty", f1, f2) == fastloss.l2_penalty(w1, w2)
    x, c = rng.standard_normal((30, 3)), rng.standard_normal((4, 3))
    fx, fc = save(tmp_path, "x.npy", x), save(tmp_path, "c.npy", c)
    rc, out, _ = run_cli(capsys, "eval", "kmeans_inertia", fx, fc, "--json")
    assert rc == 0
    res = json.loads(out)
    inertia, labels = fastloss.kmeans_inertia(x, c)
    assert res["value"] == inertia and res["extra"] == [labels.tolist()]


def test_eval_reduction_none_json_and_out(capsys, tmp_path, rng, backend):
    p, t = rng.standard_normal(7), rng.standard_normal(7)
    fp, ft = save(tmp_path, "p.npy", p), save(tmp_path, "t.npy", t)
    want = fastloss.mae(p, t, reduction="none")
    rc, out, _ = run_cli(capsys, "eval", "mae", fp, ft, "--reduction", "none", "--out", tmp_path / "o.npy")
    assert rc == 0
    # the values go to the file; the terminal gets one line about them, not every element
    assert out.count("\n") == 1 and out.startswith(f"wrote {tmp_path / 'o.npy'}: shape (7,), float64, min ")
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), want)
    rc, out, _ = run_cli(capsys, "eval", "mae", fp, ft, "--reduction", "none", "--json")
    res = json.loads(out)
    assert res["value"] == want.tolist() and res["loss"] == "mae"
    assert res["inputs"][0] == {"path": str(fp), "shape": [7], "dtype": "float64"}
    assert res["params"] == {"reduction": "none"} and res["backend"] == backend


def test_eval_nan_in_json(capsys, tmp_path, backend):
    fp, ft = save(tmp_path, "p.npy", np.array([np.nan, 1.0])), save(tmp_path, "t.npy", np.zeros(2))
    rc, out, _ = run_cli(capsys, "eval", "mse", fp, ft, "--json")
    assert rc == 0 and json.loads(out)["value"] == "nan"


def test_eval_threads_and_backend_options(capsys, tmp_path, rng):
    p, t = rng.standard_normal(50_000), rng.standard_normal(50_000)
    fp, ft = save(tmp_path, "p.npy", p), save(tmp_path, "t.npy", t)
    with fastloss.use_backend("numpy"):
        want = fastloss.mse(p, t)
    rc, out, _ = run_cli(capsys, "eval", "mse", fp, ft, "--backend", "numpy", "--threads", 1, "--json")
    res = json.loads(out)
    assert rc == 0 and res["backend"] == "numpy" and res["threads"] == 1 and res["value"] == want


@pytest.mark.cpp_only
@needs_core
def test_eval_memory_maps_npy(tmp_path, rng):
    n = 1_000_000  # 8 MB per file
    fp, ft = save(tmp_path, "p.npy", rng.standard_normal(n)), save(tmp_path, "t.npy", rng.standard_normal(n))
    a = _eval.load_array(str(fp), key=None, name="pred")
    assert isinstance(a, np.memmap) and not a.flags.writeable
    args = cli.build_parser().parse_args(["eval", "mse", str(fp), str(ft)])
    with fastloss.use_backend("cpp"):
        tracemalloc.start()
        try:
            res = _eval.evaluate(args)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < n  # no copy of either 8 MB input is ever allocated
    assert res["value"] == fastloss.mse(np.load(fp), np.load(ft))


def test_eval_subprocess_exit_codes(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "fastloss", "eval", "mse", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1 and "no such file" in res.stderr
    res = subprocess.run(
        [sys.executable, "-m", "fastloss", "eval", "nope", "a.npy"], capture_output=True, text=True
    )
    assert res.returncode == 2 and "unknown loss 'nope'" in res.stderr


# --------------------------------------------------------------------------------------------------
# eval: error paths


@pytest.fixture
def files(tmp_path, rng):
    f = {
        "p": save(tmp_path, "p.npy", rng.standard_normal(10)),
        "t": save(tmp_path, "t.npy", rng.standard_normal(10)),
        "short": save(tmp_path, "short.npy", rng.standard_normal(9)),
        "scores": save(tmp_path, "scores.npy", rng.standard_normal((10, 3))),
        "labels": save(tmp_path, "labels.npy", np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, 2])),
        "pm": save(tmp_path, "pm.npy", np.full(10, 0.5)),
    }
    np.savez(tmp_path / "two.npz", a=np.zeros(10), b=np.ones(10))
    f["two"] = tmp_path / "two.npz"
    (tmp_path / "bad.npy").write_bytes(b"not an npy file at all")
    f["bad"] = tmp_path / "bad.npy"
    (tmp_path / "text.csv").write_text("1,2\nthree,4\n")
    f["badcsv"] = tmp_path / "text.csv"
    f["missing"] = tmp_path / "missing.npy"
    f["parquet"] = tmp_path / "p.parquet"
    return f


@pytest.mark.parametrize(
    "argv, code, message",
    [
        # usage errors: exit code 2
        (["msee", "p", "t"], 2, "unknown loss 'msee' (did you mean mse"),
        (["nope", "p", "t"], 2, "the losses are: arcface_loss"),
        (["bce_with_logits", "p", "t"], 2, "(did you mean binary_cross_entropy_with_logits?)"),
        (["mse", "p"], 2, "mse takes the arrays (pred, target); got 1"),
        (["mse", "p", "t", "t"], 2, "got 3"),
        (["mse", "p", "t", "-p", "delta=1"], 2, "mse has no parameter 'delta'; its parameters: weight=None"),
        (["huber", "p", "t", "-p", "delta"], 2, "--param needs name=value"),
        (["huber", "p", "t", "--reduction", "median"], 2, "reduction must be one of mean, sum, none"),
        (["mse", "p", "t", "--reduction", "batchmean"], 2, "reduction must be one of mean, sum, none"),
        (["ge2e_loss", "scores", "--weight", "p"], 2, "ge2e_loss takes no weight"),
        (["kmeans_inertia", "scores", "scores", "--reduction", "sum"], 2, "kmeans_inertia has no reduction"),
        (["mse", "parquet", "t"], 2, "unsupported file type '.parquet'"),
        (["mse", "p", "t", "--threads", "0"], 2, "must be >= 1"),
        (["mse", "p", "t", "--backend", "gpu"], 2, "invalid choice"),
        # data errors: exit code 1
        (["mse", "missing", "t"], 1, "missing.npy: no such file"),
        (["mse", "p", "short"], 1, "mse: pred and target must have the same shape"),
        (["mse", "bad", "t"], 1, "bad.npy: cannot read it"),
        (["mse", "badcsv", "t"], 1, "text.csv: cannot read it"),
        (["mse", "two", "t"], 1, "holds 2 arrays (a, b): choose one with"),
        (["mse", "two", "t", "--key", "c"], 1, "no array 'c'; it holds a, b"),
        (["hinge", "p", "pm"], 1, "hinge: target must be exactly -1 or +1"),
        (["cross_entropy", "scores", "labels"], 1, "cross_entropy: "),
        (["mse", "p", "t", "--weight", "missing"], 1, "no such file"),
        (["huber", "p", "t", "-p", "delta=-1"], 1, "huber: delta"),
        (["huber", "p", "t", "-p", "pos_weight=@missing.npy"], 2, "huber has no parameter 'pos_weight'"),
    ],
)
def test_eval_errors(capsys, files, argv, code, message):
    argv = [str(files.get(a, a)) for a in argv]
    rc, out, err = run_cli(capsys, "eval", *argv)
    assert rc == code, err
    assert message in err, err
    assert out == ""


def test_eval_help_lists_losses(capsys):
    rc, out, _ = run_cli(capsys, "eval", "--help")
    assert rc == 0
    for name in ("mse", "cross_entropy", "dice_loss", "info_nce", "l2_penalty"):
        assert name in out


def test_eval_param_values():
    assert _eval.parse_value("0.5", key=None, default=1.0) == 0.5
    assert _eval.parse_value("2", key=None, default=1.0) == 2.0
    assert isinstance(_eval.parse_value("2", key=None, default=1.0), float)
    assert _eval.parse_value("3", key=None, default=1) == 3
    assert _eval.parse_value("True", key=None, default=False) is True
    assert _eval.parse_value("none", key=None, default="softmax") is None
    assert _eval.parse_value("softmax", key=None, default=None) == "softmax"
    np.testing.assert_array_equal(_eval.parse_value("[1, 2]", key=None, default=None), [1, 2])


def test_eval_array_param_from_file(capsys, tmp_path, rng, backend):
    x, t = rng.standard_normal((20, 3)), (rng.random((20, 3)) < 0.5).astype(float)
    pw = np.array([1.0, 2.0, 3.0])
    fx, ft, fw = save(tmp_path, "x.npy", x), save(tmp_path, "t.npy", t), save(tmp_path, "pw.npy", pw)
    got = eval_value(capsys, "binary_cross_entropy_with_logits", fx, ft, "-p", f"pos_weight=@{fw}")
    assert got == fastloss.binary_cross_entropy_with_logits(x, t, pos_weight=pw)


def test_eval_losses_are_the_public_losses():
    table = _eval.losses()
    assert {"mse", "cross_entropy", "dice_loss", "info_nce", "l1_penalty", "style_loss"} <= set(table)
    assert not {"info", "softmax", "gram_matrix", "pairwise_distances", "num_threads"} & set(table)
    assert all(os.path.basename(fn.__module__).startswith("fastloss") for fn in table.values())


def test_bare_command_prints_help_and_version(capsys):
    rc, out, _ = run_cli(capsys)
    assert rc == 0 and "usage: fastloss" in out and "bench" in out and "eval" in out
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"fastloss {fastloss.__version__}"


def test_eval_unknown_file_type_is_a_usage_error_listing_the_types(capsys, tmp_path):
    fp = tmp_path / "p.txt"
    fp.write_text("1,2\n")
    rc, _, err = run_cli(capsys, "eval", "mse", fp, fp)
    assert rc == 2 and "unsupported file type '.txt'; use .npy, .npz, .csv" in err


def test_eval_out_json_describes_the_file(capsys, tmp_path, rng):
    fp = save(tmp_path, "p.npy", rng.standard_normal(5))
    rc, out, _ = run_cli(
        capsys, "eval", "mse", fp, fp, "--reduction", "none", "--out", tmp_path / "o", "--json"
    )
    assert rc == 0 and json.loads(out)["value"].startswith(f"wrote {tmp_path / 'o.npy'}: shape (5,)")
    assert (tmp_path / "o.npy").exists()


def test_bench_warns_when_the_roof_probes_varied(capsys):
    steady = {(10, "float64", 1, "read"): [1.0, 1.01, 0.99, 1.0, 1.02]}
    busy = {(10, "float64", 1, "read"): [1.0, 1.6, 0.9, 1.5, 1.0, 2.0]}
    assert runner._probe_spread(steady) < runner.PROBE_SPREAD_WARN < runner._probe_spread(busy)
