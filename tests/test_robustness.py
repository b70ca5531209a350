"""The arrays users actually hold and the processes they run in.

Arrays that crossed a process (pickle, joblib's loky workers), dtypes with metadata, non-native byte
order, unaligned buffers, narrow floats and foreign tensors reach every family of losses and give the
result of the plain array. A forked child computes, thread counts are checked, the context managers are
per thread, Ctrl-C stops a long call, and a bad FASTLOSS_BACKEND only warns.
"""

from __future__ import annotations

import inspect
import itertools
import os
import pickle
import re
import subprocess
import sys
import textwrap
import threading
import warnings
import zlib

import numpy as np
import pytest
from _calls import CALLS, leaves
from conftest import DTYPE_IDS, DTYPES, HAVE_CORE, needs_core

import fastloss
from fastloss import _backend, _validate

NAMES = sorted(CALLS)


def _call(name: str, dtype, transform=None):
    args, kwargs = CALLS[name](np.random.default_rng(zlib.crc32(name.encode())), dtype)
    if transform is not None:
        args = tuple(transform(a) if isinstance(a, np.ndarray) else a for a in args)
        kwargs = {k: transform(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    return getattr(fastloss, name)(*args, **kwargs)


def assert_same(got, want, what=""):
    g, w = leaves(got), leaves(want)
    assert len(g) == len(w), what
    for a, b in zip(g, w):
        assert a.dtype == b.dtype and a.shape == b.shape, what
        np.testing.assert_array_equal(a, b, err_msg=what)


def _pickled(a):
    return pickle.loads(pickle.dumps(a))


def _with_metadata(a):
    return a.astype(np.dtype(a.dtype.char, metadata={"unit": "m"}))


def _byteswapped(a):
    return a.astype(a.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))


def _unaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    assert not out.flags.aligned or a.dtype.itemsize == 1
    out[...] = a
    return out


def _readonly_memmap(tmp_path_factory):
    d = tmp_path_factory.mktemp("mm")

    def make(a):
        path = d / f"{id(a)}.npy"
        np.save(path, a)
        return np.load(path, mmap_mode="r")

    return make


TRANSFORMS = {
    "pickle": _pickled,
    "metadata": _with_metadata,
    "byteswapped": _byteswapped,
    "unaligned": _unaligned,
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_function_takes_arrays_as_users_hold_them(backend, name, dtype, transform):
    want = _call(name, dtype)
    got = _call(name, dtype, TRANSFORMS[transform])
    assert_same(got, want, f"{name} on {transform} arrays")


@pytest.mark.parametrize("name", NAMES)
def test_read_only_memmaps(backend, name, tmp_path_factory):
    assert_same(_call(name, np.float32, _readonly_memmap(tmp_path_factory)), _call(name, np.float32), name)


@pytest.mark.parametrize("dtype", [">f8", ">f4", ">f2", "<f2", ">i8", ">i2", ">u4"])
def test_byte_orders_of_every_width(backend, dtype):
    lo = 0 if np.dtype(dtype).kind == "u" else -5
    x = np.arange(lo, lo + 11).astype(dtype)
    y = np.ones(11, dtype)
    want_dtype = fastloss.mse(x.astype(x.dtype.newbyteorder("=")), y.astype(y.dtype.newbyteorder("="))).dtype
    got = fastloss.mse(x, y, return_grad=True)
    assert got[0] == fastloss.mse(np.arange(lo, lo + 11.0), np.ones(11)).astype(want_dtype)
    assert got[1].dtype.isnative and got[1].dtype == want_dtype


def test_byteswapped_labels_in_every_label_family(backend):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    assert fastloss.cross_entropy(x, y.astype(">i8")) == fastloss.cross_entropy(x, y)
    assert fastloss.pairwise_contrastive_loss(x, y.astype(">i4")) == fastloss.pairwise_contrastive_loss(x, y)
    p = rng.random((2, 4, 5))
    lab = rng.integers(0, 4, (2, 5))
    assert fastloss.dice_loss(p, lab.astype(">i2")) == fastloss.dice_loss(p, lab)


def test_eval_reads_a_big_endian_npy(tmp_path, capsys):
    from fastloss import cli

    rng = np.random.default_rng(2)
    p, t = rng.random(1000), rng.random(1000)
    np.save(tmp_path / "p.npy", p.astype(">f8"))
    np.save(tmp_path / "t.npy", t.astype(">f8"))
    rc = cli.main(["eval", "mse", str(tmp_path / "p.npy"), str(tmp_path / "t.npy")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert float(out.split()[-1]) == float(fastloss.mse(p, t))


def test_inputs_are_never_modified(backend):
    for name in NAMES:
        args, kwargs = CALLS[name](np.random.default_rng(3), np.float64)
        before = [a.copy() for a in args if isinstance(a, np.ndarray)]
        getattr(fastloss, name)(*args, **kwargs)
        after = [a for a in args if isinstance(a, np.ndarray)]
        for a, b in zip(after, before):
            np.testing.assert_array_equal(a, b, err_msg=name)


# --------------------------------------------------------------------------------------------------
# The compiled module itself compares dtypes by value and refuses what it cannot read


@needs_core
def test_binding_compares_dtypes_by_value(core):
    x = _pickled(np.linspace(0, 1, 10))
    assert x.dtype is not np.dtype(np.float64)  # what pickle gives: an equal, distinct descriptor
    assert core.elementwise("mse", x, x[::-1].copy(), None, None, 1.0, [], 2, False, 0)[0] > 0
    xm = _with_metadata(np.ones(4))
    assert core.elementwise("mse", xm, xm, None, None, 1.0, [], 2, False, 0)[0] == 0
    lab = _pickled(np.array([0, 1, 1], np.int64))
    v = core.classwise("cross_entropy", np.zeros(6), 3, 2, 1, lab, None, None, None, [], 2, False, 0)[0]
    assert v == pytest.approx(np.log(2))


@needs_core
def test_binding_refuses_byteswapped_unaligned_and_overflowing_sizes(core):
    x = np.ones(8)
    with pytest.raises(TypeError, match="native float32 or float64"):
        core.elementwise("mse", x.astype(">f8"), x, None, None, 1.0, [], 2, False, 0)
    with pytest.raises(ValueError, match="aligned"):
        core.elementwise("mse", _unaligned(x), x, None, None, 1.0, [], 2, False, 0)
    with pytest.raises(ValueError, match="overflows"):
        core.classwise(
            "cross_entropy", np.ones(4), 2**40, 2**40, 2**40, None, None, None, None, [], 2, False, 0
        )
    with pytest.raises(ValueError):
        core.classwise(
            "cross_entropy",
            np.ones(4),
            2**32,
            2**32,
            1,
            np.zeros(4, np.int64),
            None,
            None,
            None,
            [],
            2,
            False,
            0,
        )


# --------------------------------------------------------------------------------------------------
# Narrow floats and foreign objects


def test_bfloat16_from_ml_dtypes_computes_as_float32(backend):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(4)
    p = rng.standard_normal(100).astype(ml_dtypes.bfloat16)
    t = rng.standard_normal(100).astype(ml_dtypes.bfloat16)
    v, g = fastloss.huber(p, t, return_grad=True)
    want_v, want_g = fastloss.huber(p.astype(np.float32), t.astype(np.float32), return_grad=True)
    assert v.dtype == np.float32 and v == want_v
    np.testing.assert_array_equal(g, want_g)
    s = rng.standard_normal((5, 3)).astype(ml_dtypes.bfloat16)
    assert fastloss.cross_entropy(s, [0, 1, 2, 0, 1]) == fastloss.cross_entropy(
        s.astype(np.float32), [0, 1, 2, 0, 1]
    )


def test_torch_tensors(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p, t = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    assert fastloss.mse(torch.from_numpy(p), torch.from_numpy(t)) == fastloss.mse(p, t)
    for dt in (torch.bfloat16, torch.float16):
        tp, tt = torch.from_numpy(p).to(dt), torch.from_numpy(t).to(dt)
        v = fastloss.mse(tp, tt)
        assert v.dtype == np.float32
        assert v == fastloss.mse(tp.float().numpy(), tt.float().numpy())
    with pytest.raises(TypeError, match=r"pred is a torch tensor that requires grad: call pred.detach\(\)"):
        fastloss.mse(torch.zeros(3, requires_grad=True), torch.zeros(3))
    with pytest.raises(TypeError, match=r"target .*requires grad"):
        fastloss.mse(torch.zeros(3), torch.zeros(3, requires_grad=True))


class _DLPackOnly:
    """An object that offers only the DLPack protocol (no __array__, no buffer)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_dlpack_only_objects(backend):
    p, t = np.linspace(0, 1, 20), np.linspace(1, 0, 20)
    assert fastloss.mse(_DLPackOnly(p), _DLPackOnly(t)) == fastloss.mse(p, t)


def test_masked_arrays_are_refused(backend):
    p = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    with pytest.raises(TypeError, match="pred is a masked array: fastloss does not apply masks"):
        fastloss.mse(p, [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="masked"):
        fastloss.cross_entropy(np.ma.masked_array(np.zeros((2, 3))), [0, 1])


@pytest.mark.parametrize("name", NAMES)
def test_errors_name_the_public_argument(backend, name):
    """A complex array in each array argument is refused with the signature's name for it."""
    args, kwargs = CALLS[name](np.random.default_rng(6), np.float64)
    params = [p.name for p in inspect.signature(getattr(fastloss, name)).parameters.values()]
    for k, a in enumerate(args):
        if not isinstance(a, np.ndarray):
            continue
        bad = list(args)
        bad[k] = a.astype(np.complex128)
        want = f"arrays[{k}]" if params[0] == "arrays" else params[k]
        with pytest.raises(TypeError, match=rf"(^|\W){re.escape(want)}(?!\w)"):
            getattr(fastloss, name)(*bad, **kwargs)


# --------------------------------------------------------------------------------------------------
# Processes


def _parent_and_child(
    code: str, timeout: float = 60, backend: str | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "FASTLOSS_BACKEND": backend} if backend else None
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_joblib_loky_workers(backend):
    joblib = pytest.importorskip("joblib")
    names = NAMES
    want = [_call(n, np.float64) for n in names]
    # Each worker receives pickled arrays; the results come back pickled too.
    jobs = [joblib.delayed(_call)(n, np.float64, _pickled) for n in names]
    got = joblib.Parallel(n_jobs=2, backend="loky")(jobs)
    for n, g, w in zip(names, got, want):
        if fastloss.get_backend() == _backend._initial_backend():
            assert_same(g, w, n)
        else:  # the workers run the process default backend
            for a, b in zip(leaves(g), leaves(w)):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=n)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_computes_after_a_parallel_parent():
    r = _parent_and_child(
        """
        import os, sys, time
        import numpy as np, fastloss
        x, y = np.random.default_rng(0).random((2, 10**6))
        want = fastloss.mse(x, y)          # the parent runs a multi-threaded kernel first
        fastloss.cross_entropy(np.zeros((100000, 10)), np.zeros(100000, np.int64))
        pid = os.fork()
        if pid == 0:
            t = time.perf_counter()
            ok = fastloss.mse(x, y) == want and fastloss.get_num_threads() == 1
            with fastloss.num_threads(2):
                ok = ok and fastloss.huber(x, y) == fastloss.huber(x, y)
            os._exit(0 if ok and time.perf_counter() - t < 5 else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_multiprocessing_fork_pool():
    r = _parent_and_child(
        """
        import multiprocessing as mp
        import numpy as np, fastloss
        x, y = np.random.default_rng(0).random((2, 10**6))
        want = float(fastloss.mse(x, y))
        def work(i):
            return float(fastloss.mse(x, y))
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(2) as pool:
                got = pool.map_async(work, range(6)).get(timeout=20)
            assert got == [want] * 6, got
        """,
        timeout=40,
    )
    assert r.returncode == 0, r.stderr


def test_spawn_pool_workers(backend):
    import multiprocessing as mp

    x = np.random.default_rng(7).random(5000)
    with mp.get_context("spawn").Pool(1) as pool:
        got = pool.apply_async(fastloss.huber, (x, x[::-1])).get(timeout=60)
    assert got == fastloss.huber(x, x[::-1]) or fastloss.get_backend() != _backend._initial_backend()


# --------------------------------------------------------------------------------------------------
# Threads


@pytest.mark.parametrize("n", [0, -1, fastloss.MAX_THREADS + 1, 2**31, 2**63])
def test_absurd_thread_counts_are_refused(n):
    with pytest.raises(ValueError, match="number of threads"):
        fastloss.set_num_threads(n)
    with pytest.raises(ValueError, match="number of threads"), fastloss.num_threads(n):
        pass
    assert fastloss.mse([1.0], [2.0]) == 1.0


@needs_core
@pytest.mark.skipif(
    bool(os.environ.get("FASTLOSS_SANITIZED")), reason="AddressSanitizer maps its shadow beyond any RLIMIT_AS"
)
def test_a_thread_count_the_process_cannot_start_is_refused_not_fatal():
    r = _parent_and_child(
        """
        import resource
        import numpy as np, fastloss
        # Leave room for this process and little more: 64 thread stacks cannot be mapped.
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + (96 << 20), resource.RLIM_INFINITY))
        try:
            fastloss.set_num_threads(64)
        except ValueError as e:
            assert "can start only" in str(e), e
        else:
            raise SystemExit("64 threads were accepted under the limit")
        x = np.ones(10**5)
        assert fastloss.mse(x, x) == 0.0
        print("alive")
        """,
        backend="cpp",
    )
    assert r.returncode == 0 and "alive" in r.stdout, r.stderr


def test_context_managers_are_per_thread():
    if not HAVE_CORE:
        pytest.skip("needs both backends")
    fastloss.set_backend("cpp")
    inside, outside = threading.Event(), threading.Event()
    seen = {}

    def in_block():
        with fastloss.use_backend("numpy"), fastloss.num_threads(1):
            seen["inner"] = (fastloss.get_backend(), _backend.thread_arg())
            inside.set()
            outside.wait(10)

    t = threading.Thread(target=in_block)
    t.start()
    assert inside.wait(10)
    seen["other"] = (fastloss.get_backend(), _backend.thread_arg())
    outside.set()
    t.join()
    assert seen["inner"] == ("numpy", 1)
    assert seen["other"] == ("cpp", 0)


def test_interleaved_blocks_in_two_threads_restore_the_process_setting():
    if not HAVE_CORE:
        pytest.skip("needs both backends")
    fastloss.set_backend("cpp")
    step = [threading.Event() for _ in range(4)]

    def a():
        with fastloss.use_backend("numpy"):
            step[0].set()
            step[1].wait(10)
        step[2].set()

    def b():
        step[0].wait(10)
        with fastloss.use_backend("numpy"):
            step[1].set()
            step[2].wait(10)

    ts = [threading.Thread(target=f) for f in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert fastloss.get_backend() == "cpp"


def test_setters_stay_process_wide():
    fastloss.set_num_threads(1)
    got = []
    t = threading.Thread(target=lambda: got.append(_backend.thread_arg()))
    t.start()
    t.join()
    assert got == [1]


# --------------------------------------------------------------------------------------------------
# Ctrl-C and the environment


@needs_core
@pytest.mark.parametrize(
    "call",
    [
        "fastloss.pairwise_contrastive_loss(x, lab, return_grad=True)",
        "fastloss.pairwise_distances(x)",
        "fastloss.pairwise_contrastive_loss(x, lab)",
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_interrupts_a_long_call(call, threads):
    r = _parent_and_child(
        f"""
        import os, resource, signal, threading, time
        import numpy as np, fastloss
        x = np.random.default_rng(0).standard_normal((8000, 256)).astype(np.float32)
        lab = np.arange(8000) % 50
        fastloss.set_num_threads({threads})
        t0 = time.perf_counter()
        {call}                        # the uninterrupted time
        full = time.perf_counter() - t0
        sent = []
        def interrupt():
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(min(0.3, full / 4), interrupt).start()
        try:
            {call}
        except KeyboardInterrupt:
            late = time.perf_counter() - sent[0]
        else:
            raise SystemExit(f"not interrupted (full call {{full:.2f}} s)")
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(0.3)               # nothing may go on computing in the background
        cpu2 = resource.getrusage(resource.RUSAGE_SELF)
        busy = cpu2.ru_utime + cpu2.ru_stime - cpu.ru_utime - cpu.ru_stime
        y = x[:500]
        assert fastloss.pairwise_contrastive_loss(y, lab[:500]) > 0   # the next call works
        print(f"full {{full:.3f}} late {{late:.3f}} busy {{busy:.3f}}")
        assert late < max(0.5, full / 2), (late, full)
        assert busy < 0.15, busy
        """,
        timeout=120,
        backend="cpp",
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("value", ["bogus", "CPP2", "torch"])
def test_unknown_backend_variable_warns_and_uses_the_default(value):
    r = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import fastloss; print(fastloss.get_backend())"],
        capture_output=True,
        text=True,
        env={**os.environ, "FASTLOSS_BACKEND": value},
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("cpp" if HAVE_CORE else "numpy")
    assert "FASTLOSS_BACKEND" in r.stderr and value.lower() in r.stderr


# --------------------------------------------------------------------------------------------------
# Parameters and messages the two backends now agree on


@pytest.mark.parametrize("p", [1, 1.0, np.float32(1), np.int64(1), 2, 2.0, np.float64(2)])
def test_multiclass_hinge_p_in_any_numeric_type(backend, p):
    want = {1: 1 / 6, 2: (0.5**2) / 3}[int(p)]
    got = fastloss.multiclass_hinge(np.array([[1.0, 0.5, -1.0]]), np.array([0]), p=p)
    assert got == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("p", [0, 3, 1.5, np.nan, np.inf])
def test_multiclass_hinge_other_p_is_a_value_error(backend, p):
    with pytest.raises(ValueError, match="p must"):
        fastloss.multiclass_hinge(np.zeros((1, 3)), [0], p=p)


@pytest.mark.parametrize("method", [[], None, 1])
def test_multiclass_hinge_method_of_wrong_type(backend, method):
    with pytest.raises(TypeError, match="method must be a string"):
        fastloss.multiclass_hinge(np.zeros((1, 3)), [0], method=method)


def test_bad_label_message_names_the_first_bad_position_nan_included(backend):
    with pytest.raises(ValueError, match=r"found target\[1\] = nan"):
        fastloss.hinge(np.zeros(3), np.array([1.0, np.nan, 0.5]))
    with pytest.raises(ValueError, match=r"found target\[0, 2\] = 0.5"):
        fastloss.hinge(np.zeros((2, 3)), np.array([[1.0, -1.0, 0.5], [np.nan, 1.0, 1.0]]))
    assert np.isnan(fastloss.hinge(np.zeros(2), np.array([1.0, np.nan])))  # NaN alone propagates


@pytest.mark.parametrize("name", NAMES)
def test_no_runtime_warning_from_fastloss_on_inf_nan_and_huge_inputs(backend, name):
    """Each float argument in turn holds inf, -inf, NaN or 1e300 in one element: the result follows IEEE
    (or the call raises ValueError for a domain), and no RuntimeWarning escapes from fastloss's glue."""
    fn = getattr(fastloss, name)
    params = inspect.signature(fn).parameters
    reductions = [None, "none", "sum"] if "reduction" in params else [None]
    grads = [False, True] if "return_grad" in params else [False]  # the gradient paths' glue too
    for dtype in DTYPES:
        base, kwargs = CALLS[name](np.random.default_rng(8), dtype)
        for k, a in enumerate(base):
            if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
                continue
            for v in (np.inf, -np.inf, np.nan, 1e300):
                args = list(base)
                args[k] = a.copy()
                with np.errstate(over="ignore"):  # 1e300 into float32 is inf: the test's own cast
                    args[k].flat[0] = v
                for red, grad in itertools.product(reductions, grads):
                    kw = dict(kwargs) if red is None else {**kwargs, "reduction": red}
                    if grad:
                        kw["return_grad"] = True
                    with warnings.catch_warnings():
                        warnings.simplefilter("error", RuntimeWarning)
                        try:
                            fn(*args, **kw)
                        except ValueError:
                            pass  # a value outside the input's domain (a probability of inf, say)


def test_ieee_glue_restores_the_error_state_and_nests():
    """The glue's errstate is entered once per outermost call and always left: after a call, and after
    one that raised, NumPy's error state and fastloss's nesting flag are as before."""
    before = np.geterr()

    @_validate.ieee
    def inner():
        assert np.geterr()["invalid"] == "ignore" and _validate._in_ieee.get()
        return np.float64(0.0) / np.float64(0.0)

    @_validate.ieee
    def outer(fail):
        r = inner()
        if fail:
            raise ValueError("boom")
        return r

    with np.errstate(all="raise"):
        raising = np.geterr()
        assert np.isnan(outer(False))
        with pytest.raises(ValueError, match="boom"):
            outer(True)
        assert np.geterr() == raising and not _validate._in_ieee.get()
        with pytest.raises(FloatingPointError):  # the caller's own arithmetic is the caller's
            np.float64(0.0) / np.float64(0.0)
    assert np.geterr() == before


# --------------------------------------------------------------------------------------------------
# NaN, inf and nonsense parameters: the same on both backends, and as PyTorch


def _nan_masks(result):
    return [np.isnan(a) for a in leaves(result)]


def _torch_pairwise_contrastive(torch, x, lab, margin=1.0):
    xt = torch.tensor(x, requires_grad=True)
    d = torch.cdist(xt, xt)
    n = x.shape[0]
    iu = torch.triu_indices(n, n, 1)
    dd = d[iu[0], iu[1]]
    same = torch.tensor(lab)[iu[0]] == torch.tensor(lab)[iu[1]]
    loss = 0.5 * torch.where(same, dd**2, torch.nn.functional.relu(margin - dd) ** 2).mean()
    loss.backward()
    return loss, xt.grad


def test_nan_row_propagates_into_pairwise_contrastive_gradients():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 4))
    x[2, 1] = np.nan
    lab = np.array([0, 1, 0, 1, 0, 1])
    masks = {}
    for be in _backend.BACKENDS if HAVE_CORE else ["numpy"]:
        with fastloss.use_backend(be):
            v, g = fastloss.pairwise_contrastive_loss(x, lab, return_grad=True)
        assert np.isnan(v)
        masks[be] = np.isnan(g)
    for m in masks.values():
        np.testing.assert_array_equal(m, masks["numpy"])
    # Every pair meets the NaN row: every row's gradient is NaN, as PyTorch's autograd gives.
    assert masks["numpy"].all()
    torch = pytest.importorskip("torch")
    _, tg = _torch_pairwise_contrastive(torch, x, lab)
    np.testing.assert_array_equal(masks["numpy"], torch.isnan(tg).numpy())


def test_nan_row_propagates_into_contrastive_gradients(backend):
    rng = np.random.default_rng(10)
    x1, x2 = rng.standard_normal((2, 5, 3))
    x1[1, 0] = np.nan
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    for t in (0.0, 1.0):  # a dissimilar and a similar pair with the NaN row
        y[1] = t
        v, (g1, g2) = fastloss.contrastive_loss(x1, x2, y, return_grad=True)
        assert np.isnan(v)
        assert np.isnan(g1[1]).all() and np.isnan(g2[1]).all()  # the whole row, as torch gives
        assert np.isfinite(np.delete(g1, 1, axis=0)).all()


def test_triplet_gradients_at_zero_components_and_at_1e300(backend):
    rng = np.random.default_rng(11)
    a = rng.standard_normal((4, 3))
    p = a.copy()
    p[:, 0] += 0.5  # two components of a - p are exactly 0
    n = rng.standard_normal((4, 3)) * 0.1 + a
    v, grads = fastloss.triplet_margin_loss(a, p, n, p=0.5, eps=0.0, return_grad=True)
    assert all(np.isfinite(g).all() for g in grads), grads
    big = [rng.standard_normal((4, 3)) * 1e300 for _ in range(3)]
    v, grads = fastloss.triplet_margin_loss(*big, return_grad=True)
    assert all(np.isfinite(g).all() for g in grads)  # PyTorch: 0 where the hinge input is inf - inf
    torch = pytest.importorskip("torch")
    for args, kw in (((a, p, n), {"p": 0.5, "eps": 0.0}), (tuple(big), {})):
        ts = [torch.tensor(z, requires_grad=True) for z in args]
        torch.nn.functional.triplet_margin_loss(*ts, **kw).backward()
        _, grads = fastloss.triplet_margin_loss(*args, return_grad=True, **kw)
        for g, t in zip(grads, ts):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-300)


NONSENSE = [
    ("arcface_loss", {"scale": np.inf}),
    ("arcface_loss", {"margin": np.nan}),
    ("multiple_negatives_ranking_loss", {"scale": np.inf}),
    ("ge2e_loss", {"w": np.inf}),
    ("ge2e_loss", {"b": np.nan}),
    ("info_nce", {"temperature": np.inf}),
    ("nt_xent", {"temperature": np.nan}),
    ("triplet_margin_loss", {"margin": np.nan}),
    ("contrastive_loss", {"margin": np.inf}),
    ("pairwise_contrastive_loss", {"margin": np.inf}),
    ("cosine_embedding_loss", {"margin": np.nan}),
    ("smooth_l1", {"beta": np.inf}),
    ("hinge", {"margin": -np.inf}),
    ("sigmoid_focal_loss", {"gamma": np.inf}),
    ("softmax_focal_loss", {"gamma": np.inf}),
    ("dice_loss", {"smooth_nr": np.inf}),
    ("cross_entropy", {"weight": np.array([1.0, -np.inf, 1.0, 1.0, 1.0])}),
    ("cross_entropy", {"weight": np.array([1.0, np.nan, 1.0, 1.0, 1.0])}),
    ("nll_loss", {"weight": np.array([np.inf, 1.0, 1.0, 1.0, 1.0])}),
]


@pytest.mark.parametrize(("name", "params"), NONSENSE, ids=[f"{n}-{next(iter(p))}" for n, p in NONSENSE])
def test_nonsense_parameters_raise_before_any_work(backend, name, params):
    args, kwargs = CALLS[name](np.random.default_rng(12), np.float64)
    with pytest.raises(ValueError, match=rf"{next(iter(params))} must"):
        getattr(fastloss, name)(*args, **{**kwargs, **params})


OVERFLOWING = [
    ("pairwise_contrastive_loss", "margin"),
    ("contrastive_loss", "margin"),
    ("triplet_margin_loss", "eps"),
    ("hinge", "margin"),
    ("sigmoid_focal_loss", "gamma"),
    ("softmax_focal_loss", "gamma"),
    ("multiclass_hinge", "margin"),
    ("huber", "delta"),
]


@pytest.mark.parametrize(("name", "param"), OVERFLOWING)
def test_a_parameter_beyond_float32_is_refused_for_float32_inputs(backend, name, param):
    # 1e300 is finite, but the float32 kernels would compute with inf: refused as inf itself is, and the
    # message says how to get it (float64 inputs, where the same call is fine).
    args, kwargs = CALLS[name](np.random.default_rng(13), np.float32)
    with pytest.raises(ValueError, match=rf"{param}=1e\+300 overflows float32"):
        getattr(fastloss, name)(*args, **{**kwargs, param: 1e300})
    args64, kwargs64 = CALLS[name](np.random.default_rng(13), np.float64)
    getattr(fastloss, name)(*args64, **{**kwargs64, param: 1e300})


def test_triplet_huge_p_is_the_max_norm_limit(backend):
    rng = np.random.default_rng(14)
    a, p, n = (rng.standard_normal((6, 5)) for _ in range(3))
    v, grads = fastloss.triplet_margin_loss(a, p, n, p=1e300, margin=0.5, reduction="none", return_grad=True)
    d_ap, d_an = np.abs(a - p + 1e-6).max(axis=1), np.abs(a - n + 1e-6).max(axis=1)
    np.testing.assert_allclose(v, np.maximum(d_ap - d_an + 0.5, 0.0), rtol=1e-12)
    assert all(np.isfinite(g).all() for g in grads)
    v100, _ = fastloss.triplet_margin_loss(a, p, n, p=100.0, margin=0.5, reduction="none", return_grad=True)
    np.testing.assert_allclose(v100, v, rtol=0.1)  # p = 100 is already close to the limit


def test_softmax_focal_with_gamma_0_is_cross_entropy_even_beside_an_inf_logit(backend):
    x = np.array([[-0.1, np.inf, -0.7, 0.35], [0.2, 0.1, -0.3, 1.0]])
    y = np.array([3, 0])
    np.testing.assert_array_equal(
        fastloss.softmax_focal_loss(x, y, gamma=0.0, reduction="none"),
        fastloss.cross_entropy(x, y, reduction="none"),
    )
