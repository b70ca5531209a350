"""What holds for every public function, parametrised over the specs (``fastloss._specs``), the way
scikit-learn's ``sklearn/_loss/tests/test_loss.py`` runs every invariant over ``LOSS_INSTANCES``.

A function is called through ``tests/_calls.py`` (one valid call per function, scalable), and its spec
says which inputs it differentiates, which inputs have a domain to violate and which parameters it has.
Family files keep what only their family means (a loss's formula against a reference, its edge cases).
"""

from __future__ import annotations

import threading
import zlib

import numpy as np
import pytest
from _calls import CALLS, leaves, scaled
from conftest import HAVE_CORE, LAYOUTS, relayout

import fastloss
from fastloss._specs import FUNCTIONS, SPECS, Integers, Interval, Values

NAMES = sorted(SPECS)
DTYPES = [np.float32, np.float64]
cpp_only = pytest.mark.skipif(not HAVE_CORE, reason="the compiled module is not built")


def _seed(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def _call(name: str, args: tuple, kwargs: dict) -> list[np.ndarray]:
    return leaves(FUNCTIONS[name](*args, **kwargs))


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
        for x, y in zip(a, b)
    )


def _arrays(args: tuple) -> list[int]:
    return [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
@cpp_only
def test_backends_agree(name, dtype):
    args, kwargs = CALLS[name](_seed(name, "backends"), dtype)
    with fastloss.use_backend("cpp"):
        got = _call(name, args, kwargs)
    with fastloss.use_backend("numpy"):
        want = _call(name, args, kwargs)
    assert len(got) == len(want)
    rtol = 2e-5 if dtype == np.float32 else 1e-10
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        scale = float(np.max(np.abs(w), initial=0.0)) if w.dtype.kind == "f" else 0.0
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
@cpp_only
def test_bitwise_identical_for_any_thread_count(name, dtype):
    args, kwargs = scaled(name, _seed(name, "threads"), dtype, 1 << 17)  # large enough to run in parallel
    with fastloss.use_backend("cpp"):
        results = []
        for n in (1, 2, 3):
            with fastloss.num_threads(n):
                results.append(_call(name, args, kwargs))
    assert _same(results[0], results[1]) and _same(results[0], results[2]), name


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", NAMES)
def test_layouts_give_the_contiguous_result(backend, name, layout):
    args, kwargs = CALLS[name](_seed(name, "layouts"), np.float64)
    want = _call(name, args, kwargs)
    for i in _arrays(args):
        moved = list(args)
        moved[i] = relayout(args[i], layout)
        assert _same(_call(name, tuple(moved), kwargs), want), f"{name}: argument {i} {layout}"


@pytest.mark.parametrize("name", NAMES)
def test_two_python_threads_get_the_sequential_results(backend, name):
    calls = [scaled(name, _seed(name, "py-threads", k), np.float64, 1 << 15) for k in range(2)]
    want = [_call(name, *c) for c in calls]
    got: list[list] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(k: int) -> None:
        try:
            start.wait()
            with fastloss.use_backend(backend):  # a new thread starts from the process-wide backend
                for _ in range(3):
                    got[k].append(_call(name, *calls[k]))
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(2):
        for r in got[k]:
            if backend == "cpp":
                assert _same(r, want[k]), f"{name}: thread {k}"
            else:  # NumPy's BLAS splits a product by the threads it has free: the last bits may differ
                for x, y in zip(r, want[k]):
                    np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15, err_msg=f"{name}: thread {k}")


def _domain_cases() -> list[tuple[str, int, object]]:
    """(function, argument position, a value outside the input's domain) for every checked input."""
    out = []
    for name, spec in SPECS.items():
        checked = {n for k in spec.kernels[:1] for _, n in _checked_names(spec, k)}
        for pos, inp in enumerate(spec.inputs):
            d = inp.domain
            if isinstance(d, (Interval, Values)) and d.checked and inp.name in checked:
                out += [(name, pos, v) for v in d.outside()]
            elif isinstance(d, Integers) and (d.classes is not None or d.permutation):
                out += [(name, pos, "too large"), (name, pos, "negative")]
    return out


def _checked_names(spec, kernel):
    args = kernel.args or tuple(i.name for i in spec.inputs)
    return [(i, args[i]) for i, _ in spec.domains(kernel)]


DOMAIN_CASES = _domain_cases()


@pytest.mark.parametrize(
    ("name", "pos", "bad"), DOMAIN_CASES, ids=[f"{n}-{p}-{b}" for n, p, b in DOMAIN_CASES]
)
def test_inputs_outside_their_domain_raise_naming_the_input(backend, name, pos, bad):
    args, kwargs = CALLS[name](_seed(name, "domain"), np.float64)
    args = list(args)
    a = np.array(args[pos], copy=True)
    flat = a.reshape(-1)
    if bad == "too large":
        flat[-1] = a.size + 10 if SPECS[name].inputs[pos].domain.permutation else 10**6
    elif bad == "negative":
        flat[0] = -5
    else:
        flat[-1] = bad
    args[pos] = a
    with pytest.raises(ValueError, match=SPECS[name].inputs[pos].name):
        FUNCTIONS[name](*args, **kwargs)


GRAD_NAMES = [n for n in NAMES if "return_grad" in SPECS[n].by_name]


@pytest.mark.parametrize("name", GRAD_NAMES)
def test_gradients_match_finite_differences(backend, name):
    spec = SPECS[name]
    rng = _seed(name, "fd")
    args, kwargs = CALLS[name](rng, np.float64)
    kwargs = {**kwargs, "return_grad": False}
    result = FUNCTIONS[name](*args, **{**kwargs, "return_grad": True})
    grads = result[-1] if isinstance(result[-1], tuple) else (result[-1],)
    names = [i.name for i in spec.inputs]
    wrt = range(len(args)) if names == ["arrays"] else [names.index(w) for w in spec.differentiable]
    given = [p for p in wrt if p < len(args) and args[p] is not None]
    assert len(grads) == len(given)

    def value(moved: list) -> float:
        return float(leaves(FUNCTIONS[name](*moved, **kwargs))[0].sum())

    h = 1e-6
    for g, p in zip(grads, given):
        x = np.asarray(args[p], dtype=np.float64)
        for j in rng.choice(x.size, size=min(4, x.size), replace=False):
            up, down = x.copy().reshape(-1), x.copy().reshape(-1)
            up[j] += h
            down[j] -= h
            moved_up, moved_down = list(args), list(args)
            moved_up[p], moved_down[p] = up.reshape(x.shape), down.reshape(x.shape)
            fd = (value(moved_up) - value(moved_down)) / (2 * h)
            assert np.isclose(g.reshape(-1)[j], fd, rtol=1e-5, atol=1e-7), f"{name}: d/d{names[p]}[{j}]"


# Functions that refuse empty input by their definition, with the message.
EMPTY_REFUSED = {
    "ge2e_loss": "at least 2 speakers",
    "temporal_consistency_loss": "T >= 2",
    "softmax": "the axis has length 0",  # the call normalises over its empty axis 0
}
NOT_SCALED = {"graph_matching_loss"}  # its call has fixed shapes


@pytest.mark.parametrize("name", sorted(set(NAMES) - NOT_SCALED))
def test_empty_inputs_give_nan_means_zero_sums_and_empty_arrays(backend, name):
    args, kwargs = CALLS[name](_seed(name, "empty"), np.float64, 0)
    spec = SPECS[name]
    if name in EMPTY_REFUSED:
        with pytest.raises(ValueError, match=EMPTY_REFUSED[name]):
            FUNCTIONS[name](*args, **kwargs)
        return
    for reduction in spec.reductions or (None,):
        kw = kwargs if reduction is None else {**kwargs, "reduction": reduction}
        out = _call(name, args, kw)
        value = out[0]
        if reduction in ("mean", "batchmean"):
            assert value.shape == () and np.isnan(value), (name, reduction)
        elif reduction == "sum":
            assert value.shape == () and value == 0, (name, reduction)
        for leaf in out[1:] if reduction is not None else out:
            # a gradient of an empty sum is 0, also with respect to inputs that are not empty
            empty = leaf.size == 0 or (leaf.shape == () and np.isnan(leaf)) or not np.any(leaf)
            assert empty, (name, reduction)
