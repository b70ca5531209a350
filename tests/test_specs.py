"""The specs (fastloss._specs) against what they describe: the public functions' signatures, the
compiled and NumPy kernel tables, and the parameter checks generated from their bounds."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from _calls import CALLS
from conftest import HAVE_CORE

import fastloss
from fastloss import _numpy, _specs
from fastloss._specs import FUNCTIONS, SPECS, Interval, Reduction

NOT_LOSSES = {
    "Composite",
    "CompositeResult",
    "MAX_THREADS",
    "__version__",
    "get_backend",
    "get_num_threads",
    "info",
    "num_threads",
    "set_backend",
    "set_num_threads",
    "use_backend",
}
PUBLIC = sorted(set(fastloss.__all__) - NOT_LOSSES)


def test_every_public_function_has_a_spec_and_is_registered():
    assert sorted(SPECS) == PUBLIC
    assert sorted(FUNCTIONS) == PUBLIC
    for name in PUBLIC:
        assert getattr(fastloss, name) is FUNCTIONS[name]
        assert FUNCTIONS[name].spec is SPECS[name]


def test_every_public_function_has_a_test_call():
    assert sorted(CALLS) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_docstring_has_numpydoc_sections(name):
    doc = inspect.getdoc(FUNCTIONS[name])
    for section in ("Parameters\n----------", "Returns\n-------", "Raises\n------", "Examples\n--------"):
        assert section in doc, f"{name}: no {section.splitlines()[0]} section"
    for p in SPECS[name].params:
        assert f"\n{p.name} : " in doc


def test_reduction_is_one_enum():
    assert [int(r) for r in (Reduction.NONE, Reduction.SUM, Reduction.MEAN)] == [0, 1, 2]
    if HAVE_CORE:  # the C++ enum the kernels take
        assert fastloss._backend._core.REDUCTIONS == {"none": 0, "sum": 1, "mean": 2}
    assert _specs.reduction("mean") is Reduction.MEAN
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum', 'none'; got 'meen'"):
        _specs.reduction("meen")
    with pytest.raises(ValueError, match="rmse supports only reduction='mean', got 'sum'"):
        _specs.reduction("sum", "rmse", ("mean",))
    with pytest.raises(TypeError, match="reduction must be a string"):
        _specs.reduction(2)


def test_interval():
    unit = Interval(0.0, 1.0, True, True)
    x = np.array([-0.1, 0.0, 0.5, 1.0, 1.5, np.nan])
    assert unit.includes(x).tolist() == [False, True, True, True, False, True]  # NaN propagates
    assert unit.describe() == "in [0, 1]" and unit.message == "must lie in [0, 1]"
    pos = Interval(0.0, math.inf)
    assert pos.describe() == "> 0" and not pos.contains(0.0) and not pos.contains(math.inf)
    assert Interval(0.0, math.inf, False, True).contains(math.inf)
    for domain in (unit, pos, Interval(high=1.0, high_inclusive=True)):
        assert all(domain.contains(v) for v in domain.inside())
        assert not any(domain.contains(v) for v in domain.outside())


def _kernel_specs(family_of_table):
    out = []
    for spec in SPECS.values():
        for k in spec.kernels:
            if family_of_table(spec):
                out.append((spec, k))
    return out


ELEMENTWISE = _kernel_specs(lambda s: s.family == "elementwise")
CLASSWISE = _kernel_specs(lambda s: s.family in ("classwise", "activation"))
ROWWISE = _kernel_specs(lambda s: s.family == "rowwise")


@pytest.mark.skipif(not HAVE_CORE, reason="the compiled module is not built")
def test_compiled_kernel_table_matches_the_specs():
    traits = fastloss._backend._core.KERNEL_TRAITS
    for spec, k in ELEMENTWISE:
        t = traits["elementwise"][k.key]
        args = k.args or tuple(i.name for i in spec.inputs)
        assert t["arity"] == len(args), k.key
        assert t["grads"] == max(1, spec.grads), k.key
        assert t["checks"] == bool(spec.domains(k)), k.key
        assert t["float_compute"] == spec.float32_lanes, k.key
    for spec, k in CLASSWISE:
        t = traits["classwise"][k.key]
        assert t["loss"] == (spec.family == "classwise"), k.key
        assert t["index_target"] == (k.target == "index"), k.key
        assert t["prob_target"] == (k.target == "prob"), k.key
    for spec, k in ROWWISE:
        assert traits["rowwise"][k.key]["inputs"] == sum(i.name != "target" for i in spec.inputs), k.key
    # no kernel that no spec runs
    for table, claimed in (("elementwise", ELEMENTWISE), ("classwise", CLASSWISE), ("rowwise", ROWWISE)):
        assert set(traits[table]) == {k.key for _, k in claimed}, table


def test_numpy_kernel_tables_match_the_specs():
    assert set(_numpy.ELEMENTWISE_LOSSES) == {k.key for _, k in ELEMENTWISE}
    assert set(_numpy.CLASSWISE_KERNELS) == {k.key for _, k in CLASSWISE}
    assert set(_numpy.pairwise.ROWWISE_KERNELS) == {k.key for _, k in ROWWISE}


def test_signature_drift_is_refused_at_import():
    def huber(pred, target, *, delta=2.0, weight=None, reduction="mean", return_grad=False):
        """x"""

    with pytest.raises(TypeError, match="does not match its spec"):
        _specs.api(huber)


BAD = [
    (name, p.name, value, exc)
    for name, spec in SPECS.items()
    for p in spec.params
    for value, exc in p.bad_values()
]


@pytest.mark.parametrize(("name", "param", "value", "exc"), BAD, ids=[f"{n}-{p}-{v!r}" for n, p, v, _ in BAD])
def test_bad_parameters_from_the_bounds_raise_naming_the_parameter(backend, name, param, value, exc):
    args, kwargs = CALLS[name](np.random.default_rng(0), np.float64)
    kwargs = {**kwargs, param: value}
    with pytest.raises(exc, match=param):
        FUNCTIONS[name](*args, **kwargs)


def test_package_is_marked_typed():
    from importlib.resources import files

    assert files("fastloss").joinpath("py.typed").is_file()


def test_every_spec_has_a_bench_case_of_its_name():
    from fastloss import _bench

    assert set(SPECS) <= set(_bench.BUILDERS), sorted(set(SPECS) - set(_bench.BUILDERS))


@pytest.mark.parametrize("name", [n for n in PUBLIC if "return_grad" in SPECS[n].by_name])
def test_gradients_returned_match_the_spec(name):
    spec = SPECS[name]
    args, kwargs = CALLS[name](np.random.default_rng(1), np.float64)
    grads = FUNCTIONS[name](*args, **{**kwargs, "return_grad": True})[-1]
    got = len(grads) if isinstance(grads, tuple) else 1
    if spec.inputs[0].name == "arrays":  # the penalties: one gradient per array
        assert got == len(args)
    else:  # one per differentiable input given (info_nce's negatives are optional)
        given = sum(a is not None for a in args[: spec.grads])
        assert got == min(spec.grads, given) and (got == 1) == (not isinstance(grads, tuple))


@pytest.mark.parametrize("module", _specs.STUB_MODULES)
def test_type_stubs_are_generated_from_the_specs(module):
    from importlib.resources import files

    stub = files("fastloss").joinpath(f"{module}.pyi").read_text()
    assert stub == _specs.stub_source(module), "stale stub: run python -m fastloss._specs --write-stubs"


USER_CODE = """\
import numpy as np
import fastloss

a = np.zeros(3)
value = fastloss.huber(a, a)
pair = fastloss.huber(a, a, return_grad=True)
reveal_type(value)
reveal_type(pair[1])
reveal_type(fastloss.margin_ranking_loss(a, a, a, return_grad=True)[1])
fastloss.mse(a, a, reduction="meen")
"""


def test_mypy_strict_on_user_code_knows_the_results_and_flags_a_bad_reduction(tmp_path):
    pytest.importorskip("mypy")
    import subprocess
    import sys

    (tmp_path / "user.py").write_text(USER_CODE)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "c"),
            "user.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = r.stdout
    revealed = {
        int(line.split(":")[1]): line.split("Revealed type is ")[1]
        for line in out.splitlines()
        if "Revealed type is" in line
    }
    assert revealed[7].startswith('"numpy.floating[Any] | numpy.ndarray'), out  # a value
    assert revealed[8].startswith('"numpy.ndarray'), out  # the gradient: an array, not a pair
    assert revealed[9].startswith('"tuple[numpy.ndarray'), out  # two gradients
    assert "user.py:10: error" in out and "reduction: Literal['mean', 'sum', 'none']" in out, out
    assert "Found 1 error" in out, out


@pytest.mark.parametrize(
    "name", sorted(NOT_LOSSES - {"MAX_THREADS", "__version__", "CompositeResult", "Composite"})
)
def test_the_other_public_functions_have_numpydoc_sections_too(name):
    doc = inspect.getdoc(getattr(fastloss, name))
    for section in ("Returns\n-------", "Raises\n------", "Examples\n--------"):
        assert section in doc, f"{name}: no {section.splitlines()[0]} section"


def test_every_spec_is_checked_against_an_independent_reference():
    import importlib

    import _pairwise
    import conftest
    import references

    where = dict(references.REFERENCES)
    where.update({c.fn.__name__: references.ELEMENTWISE for c in conftest.CASES})
    where.update({c.fn: references.METRIC for c in _pairwise.CASES})
    missing = sorted(set(SPECS) - set(where))
    assert not missing, (
        f"specs without a reference test (add one, and its entry in tests/references.py): {missing}"
    )
    assert set(where) <= set(SPECS), sorted(set(where) - set(SPECS))
    for name, test in where.items():
        module, func = test.split("::")
        assert hasattr(importlib.import_module(module.removesuffix(".py")), func), f"{name}: no {test}"
