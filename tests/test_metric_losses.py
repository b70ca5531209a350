"""The metric-learning losses (tests/_pairwise.py's CASES) against their NumPy references and PyTorch:
values and gradients, wide rows, finite differences, float32 against float64, narrow and integer
inputs, the reductions, empty batches."""

from __future__ import annotations

import numpy as np
import pytest
from _pairwise import (
    CASES,
    ONE_IDS,
    ONE_PER_FN,
    PCase,
    cast_args,
    make_problem,
    reduce_ref,
    torch_value_grad,
    value_atol,
)
from conftest import (
    DTYPE_IDS,
    DTYPES,
    assert_close,
    f64,
    fd_grad,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

CASE_IDS = [c.id for c in CASES]


def expected_none_shape(case: PCase, args):
    if case.fn == "nt_xent":
        return (2 * len(args[0]),)
    if case.fn == "ge2e_loss":
        return np.shape(args[0])[:2]
    return (len(args[0]),)


# ==================================================================================================
# 2. The losses: values against the references, gradients, reductions


VALUE_SIZES = [(1, 3), (2, 2), (6, 4), (37, 7)]


@pytest.mark.parametrize("nd", VALUE_SIZES, ids=lambda s: f"n{s[0]}d{s[1]}")
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_values_and_gradients_match_numpy_reference(backend, case, nd):
    n, d = nd
    args, kw = make_problem(case, n, d, _seed("val", case.id, nd))
    ref = case.reference(args, kw)
    for reduction in case.reductions:
        v, grads, lab = case.run(args, reduction, kw)
        want, want_g = reduce_ref(ref, reduction)
        what = f"{case.id} reduction={reduction}"
        if reduction == "none":
            assert isinstance(v, np.ndarray) and v.shape == expected_none_shape(case, args), what
            assert v.dtype == np.float64
        else:
            assert isinstance(v, np.float64), (
                f"{what}: a reduced value is a NumPy float64 scalar, got {type(v)}"
            )
        assert_close(v, want, rtol=1e-10, atol=value_atol(ref, reduction, 1e-12), what=what)
        for k, (g, wg) in enumerate(zip(grads, want_g)):
            a = np.asarray(args[case.float_args[k]])
            assert g.shape == a.shape and g.dtype == np.float64, f"{what}: gradient {k}"
            if wg is not None:
                assert_close(g, wg, rtol=1e-9, atol=1e-11 * max(scale_of(wg), 1.0), what=f"{what} grad {k}")
        if lab is not None:
            np.testing.assert_array_equal(lab, ref.labels)
        # the value does not depend on whether the gradient is asked for
        np.testing.assert_array_equal(case.value(args, reduction, kw), v, err_msg=what)


# Rows so wide that the column panels would take more than 16 MiB and are packed a k-chunk at a time
# (pairwise.hpp, kMaxPackBytes), and the gradient rows run on fewer threads: 3 rows, 70 rows.
@pytest.mark.parametrize("nd", [(3, 40000), (70, 40000)], ids=lambda s: f"n{s[0]}d{s[1]}")
@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_wide_rows_match_numpy_reference(backend, case, nd):
    n, d = nd
    args, kw = make_problem(case, n, d, _seed("wide", case.id, nd), kink_min=0)
    ref = case.reference(args, kw)
    v, grads, lab = case.run(args, "mean", kw)
    want, want_g = reduce_ref(ref, "mean")
    assert_close(v, want, rtol=1e-10, atol=value_atol(ref, "mean", 1e-12), what=case.id)
    for k, (g, wg) in enumerate(zip(grads, want_g)):
        if wg is not None:
            assert_close(g, wg, rtol=1e-9, atol=1e-11 * max(scale_of(wg), 1.0), what=f"{case.id} grad {k}")
    if lab is not None:
        np.testing.assert_array_equal(lab, ref.labels)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradients_finite_differences(backend, case):
    """Central differences of the public function itself, every reduction ('none': of the sum)."""
    n, d = (4, 3) if case.fn == "ge2e_loss" else (5, 3)
    args, kw = make_problem(case, n, d, _seed("fd", case.id), kink_min=1e-3)
    for reduction in case.reductions:
        _, grads, _ = case.run(args, reduction, kw)
        for k, g in zip(case.float_args, grads):

            def f(z, k=k, reduction=reduction):
                a = list(args)
                a[k] = z
                return float(np.sum(case.value(tuple(a), reduction, kw)))

            want = fd_grad(f, f64(args[k]))
            assert_close(
                g,
                want,
                rtol=1e-5,
                atol=1e-7 * max(1.0, scale_of(want)),
                what=f"{case.id} {reduction} input {k}",
            )


@pytest.mark.parametrize("nd", [(1, 3), (7, 4), (29, 6)], ids=lambda s: f"n{s[0]}d{s[1]}")
@pytest.mark.parametrize("case", [c for c in CASES if c.torch], ids=[c.id for c in CASES if c.torch])
def test_values_and_gradients_match_torch(backend, torch, case, nd):
    n, d = nd
    args, kw = make_problem(case, n, d, _seed("torch", case.id, nd))
    for reduction in case.reductions:
        if case.fn == "batch_hard_triplet_loss" and reduction == "mean" and n == 1:
            continue  # no valid anchor: covered by test_batch_hard_no_valid_anchor
        v, grads, _ = case.run(args, reduction, kw)
        want, want_g = torch_value_grad(torch, case, args, kw, reduction)
        what = f"{case.id} reduction={reduction}"
        assert_close(v, want, rtol=1e-10, atol=1e-12 * max(1.0, scale_of(want)) * max(1, n), what=what)
        for k, (g, wg) in enumerate(zip(grads, want_g)):
            assert_close(g, wg, rtol=1e-9, atol=1e-11 * max(scale_of(wg), 1.0), what=f"{what} grad {k}")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_float32_close_to_float64(backend, case):
    """float32 inputs: float32 results within ~1e-5 relative of the float64 reference on the same values."""
    args, kw = make_problem(case, 23, 5, _seed("f32", case.id), kink_min=1e-2)
    a32, kw32 = cast_args(case, args, kw, np.float32)
    ref = case.reference(a32, kw32)  # f64() of the float32 values
    for reduction in case.reductions:
        v, grads, lab = case.run(a32, reduction, kw32)
        want, want_g = reduce_ref(ref, reduction)
        what = f"{case.id} reduction={reduction}"
        if reduction == "none":
            assert v.dtype == np.float32, what
        else:
            assert isinstance(v, np.float32), (
                f"{what}: a reduced value is a NumPy float32 scalar, got {type(v)}"
            )
        assert_close(v, want, rtol=1e-5, atol=value_atol(ref, reduction, 1e-5), what=what)
        for k, (g, wg) in enumerate(zip(grads, want_g)):
            assert g.dtype == np.float32, f"{what} grad {k}"
            if wg is None:  # ge2e: the float64 gradient on the same values (checked against torch and FD)
                wg = case.run(
                    tuple(f64(a) if i in case.float_args else a for i, a in enumerate(a32)), reduction, kw
                )[1][k]
                if wg is None:
                    continue
            assert_close(g, wg, rtol=1e-5, atol=1e-5 * scale_of(wg), what=f"{what} grad {k}")
        if lab is not None:
            np.testing.assert_array_equal(lab, ref.labels)


@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_float16_integer_and_list_inputs(backend, case):
    args, kw = make_problem(case, 6, 3, _seed("f16", case.id))
    a16, kw16 = cast_args(case, args, kw, np.float16)
    a32, kw32 = cast_args(
        case,
        tuple(f64(a) if a.dtype == np.float16 else a for a in a16),
        {k: (f64(v) if isinstance(v, np.ndarray) and v.dtype == np.float16 else v) for k, v in kw16.items()},
        np.float32,
    )
    for reduction in case.reductions:
        v16, g16, _ = case.run(a16, reduction, kw16)
        v32, g32, _ = case.run(a32, reduction, kw32)
        assert np.asarray(v16).dtype == np.float32
        np.testing.assert_array_equal(v16, v32)
        for a, b in zip(g16, g32):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a, b)
    # integer embeddings compute in float64; nested lists work like arrays
    ai = tuple(np.round(4 * a).astype(np.int64) if i in case.float_args else a for i, a in enumerate(args))
    af = tuple(f64(a) if i in case.float_args else a for i, a in enumerate(ai))
    red = case.reductions[0]
    vi = case.value(ai, red, kw)
    assert np.asarray(vi).dtype == np.float64
    np.testing.assert_array_equal(vi, case.value(af, red, kw))
    al = tuple(a.tolist() for a in af)
    kwl = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    np.testing.assert_array_equal(case.value(al, red, kwl), case.value(af, red, kw))


@pytest.mark.parametrize(
    "case", [c for c in CASES if "none" in c.reductions], ids=[c.id for c in CASES if "none" in c.reductions]
)
def test_reductions_consistent(backend, case):
    """sum == sum(none); mean == sum / count; gradients likewise (the count of the spec for each loss)."""
    args, kw = make_problem(case, 11, 4, _seed("red", case.id))
    vn, gn, _ = case.run(args, "none", kw)
    vs, gs, _ = case.run(args, "sum", kw)
    vm, gm, _ = case.run(args, "mean", kw)
    denom = case.reference(args, kw).denom
    assert_close(vs, np.sum(vn), rtol=1e-12, atol=1e-14 * np.sum(np.abs(vn)))
    assert_close(vm, np.sum(vn) / denom, rtol=1e-12, atol=1e-14 * np.sum(np.abs(vn)))
    for a, b, c in zip(gn, gs, gm):
        assert_close(a, b, rtol=1e-12, atol=1e-14 * scale_of(b))
        assert_close(c, b / denom, rtol=1e-12, atol=1e-14 * scale_of(b))


# ==================================================================================================
# 3. Per-function behaviour: edge cases the generic tests do not reach


def empty_problem(case: PCase, d=3):
    """Inputs of `case` with an empty batch (N = 0)."""
    z = np.zeros((0, d))
    fn = case.fn
    if fn in ("contrastive_loss", "cosine_embedding_loss"):
        return (z, z, np.zeros(0)), {}
    if fn in ("pairwise_contrastive_loss", "batch_hard_triplet_loss"):
        return (z, np.zeros(0, dtype=np.int64)), {}
    if fn == "triplet_margin_loss":
        return (z, z, z), {}
    if fn == "info_nce":
        return ((z, z) if len(case.float_args) == 2 else (z, z, np.ones((4, d)))), {}
    if fn == "nt_xent":
        return (z, z), {}
    if fn == "multiple_negatives_ranking_loss":
        return (z, np.ones((2, d))), {}  # M = 2 >= N = 0
    if fn == "arcface_loss":
        return (z, np.ones((4, d)), np.zeros(0, dtype=np.int64)), {}
    if fn == "kmeans_inertia":
        return (z, np.ones((3, d))), ({"sample_weight": np.zeros(0)} if case.id == "kmeans_w" else {})
    raise KeyError(fn)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "case",
    [c for c in ONE_PER_FN if c.fn != "ge2e_loss"],
    ids=[c.id for c in ONE_PER_FN if c.fn != "ge2e_loss"],
)
def test_empty_batch(backend, case, dtype):
    args, kw = empty_problem(case)
    args, kw = cast_args(case, args, kw, dtype)
    for reduction in case.reductions:
        v, grads, lab = case.run(args, reduction, kw)
        for k, g in zip(case.float_args, grads):
            assert g.shape == np.shape(args[k]) and g.dtype == dtype
            if reduction != "mean":
                np.testing.assert_array_equal(g, np.zeros_like(g))
        if reduction == "mean":
            assert np.isnan(v) and isinstance(v, np.dtype(dtype).type), f"{case.id}: empty mean is nan"
        elif reduction in ("sum", None):
            assert v == 0 and isinstance(v, np.dtype(dtype).type), f"{case.id}: empty sum is 0"
        else:
            assert isinstance(v, np.ndarray) and v.shape == (0,), case.id
        if lab is not None:
            assert lab.shape == (0,) and lab.dtype.kind in "iu"
