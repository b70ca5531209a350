"""Metric-learning inputs: layouts, inputs never modified, NaN and inf, errors, shape mismatches naming both
shapes, bad labels naming position and value."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _pairwise import (
    ONE_IDS,
    ONE_PER_FN,
    _all_outputs,
    cast_args,
    make_problem,
)
from conftest import (
    DTYPES,
    LAYOUTS,
    relayout,
)
from conftest import (
    seed_of as _seed,
)

import fastloss

# ==================================================================================================
# 4. Inputs: layouts, read-only, never modified, NaN


def _relayout_all(args, kw, kind):
    return tuple(relayout(a, kind) for a in args), {k: relayout(v, kind) for k, v in kw.items()}


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_layouts_same_as_contiguous(backend, case, kind):
    for dtype in DTYPES:
        args, kw = make_problem(case, 9, 4, _seed("layout", case.id))
        args, kw = cast_args(case, args, kw, dtype)
        want = _all_outputs(case, args, kw)
        la, lkw = _relayout_all(args, kw, kind)
        got = _all_outputs(case, la, lkw)
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(a, b, err_msg=f"{case.id} {np.dtype(dtype).name} output {i}")
            assert a.dtype == b.dtype


@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_inputs_never_modified(backend, case):
    args, kw = make_problem(case, 8, 3, _seed("nomod", case.id))
    for dtype in DTYPES:
        a, k = cast_args(case, args, kw, dtype)
        a0 = [np.array(x, copy=True) for x in a]
        k0 = {key: np.array(v, copy=True) for key, v in k.items() if isinstance(v, np.ndarray)}
        outs = _all_outputs(case, a, k)
        for x, x0 in zip(a, a0):
            np.testing.assert_array_equal(x, x0)
            assert x.dtype == x0.dtype
        for key, v0 in k0.items():
            np.testing.assert_array_equal(k[key], v0)
        for o in outs:  # results never alias the inputs
            for x in a:
                assert not np.shares_memory(o, x)


@pytest.mark.parametrize("case", ONE_PER_FN, ids=ONE_IDS)
def test_nan_propagates(backend, case):
    """A NaN in one embedding entry makes every reduced result NaN: it is never silently dropped."""
    args, kw = make_problem(case, 8, 3, _seed("nan", case.id))
    a = [np.array(x, copy=True) for x in args]
    first = a[case.float_args[0]]
    first[(1,) + (0,) * (first.ndim - 1)] = np.nan  # row 1 (row 0 of kmeans_w has weight 0)
    a = tuple(a)
    with np.errstate(invalid="ignore"):
        for reduction in case.reductions:
            if reduction == "none":
                v = np.asarray(case.value(a, "none", kw))
                assert np.isnan(v).any(), f"{case.id}: no NaN in the per-row losses"
                if case.fn not in ("batch_hard_triplet_loss", "ge2e_loss"):
                    assert np.isnan(v[1]), f"{case.id}: the NaN row's loss"
            else:
                v = case.value(a, reduction, kw)
                assert np.isnan(v), f"{case.id} reduction={reduction}: got {v} from a NaN input"


def test_inf_propagates(backend):
    x1 = np.array([[np.inf, 0.0], [1.0, 2.0]])
    x2 = np.zeros((2, 2))
    v = fastloss.contrastive_loss(x1, x2, [1.0, 1.0], reduction="none")
    assert v[0] == np.inf and np.isfinite(v[1])
    v = fastloss.triplet_margin_loss(x2, x1, x2, reduction="none")
    assert v[0] == np.inf
    inertia, _ = fastloss.kmeans_inertia(x1, np.zeros((1, 2)))
    assert inertia == np.inf


# ==================================================================================================
# 5. Errors


def _shapes_in(msg, *shapes):
    return all(str(tuple(s)) in msg for s in shapes)


NDIM = r"(?i)2-?d|3-?d|ndim|dimension"


o = np.ones


ERROR_CASES = [
    # wrong ndim
    ("contrastive_1d", lambda: fastloss.contrastive_loss(o(3), o(3), o(3)), ValueError, NDIM),
    (
        "pairwise_contrastive_1d",
        lambda: fastloss.pairwise_contrastive_loss(o(3), [0, 1, 2]),
        ValueError,
        NDIM,
    ),
    (
        "triplet_3d",
        lambda: fastloss.triplet_margin_loss(o((2, 3, 1)), o((2, 3, 1)), o((2, 3, 1))),
        ValueError,
        NDIM,
    ),
    ("batch_hard_1d", lambda: fastloss.batch_hard_triplet_loss(o(4), [0, 0, 1, 1]), ValueError, NDIM),
    ("cosine_1d", lambda: fastloss.cosine_embedding_loss(o(3), o(3), [1, 1, 1]), ValueError, NDIM),
    ("info_nce_1d", lambda: fastloss.info_nce(o(3), o(3)), ValueError, NDIM),
    ("info_nce_neg_1d", lambda: fastloss.info_nce(o((2, 3)), o((2, 3)), o(3)), ValueError, NDIM),
    ("nt_xent_3d", lambda: fastloss.nt_xent(o((2, 3, 1)), o((2, 3, 1))), ValueError, NDIM),
    ("mnrl_1d", lambda: fastloss.multiple_negatives_ranking_loss(o(3), o(3)), ValueError, NDIM),
    ("ge2e_2d", lambda: fastloss.ge2e_loss(o((4, 3))), ValueError, NDIM),
    ("ge2e_4d", lambda: fastloss.ge2e_loss(o((2, 2, 3, 1))), ValueError, NDIM),
    ("arcface_1d_weight", lambda: fastloss.arcface_loss(o((2, 3)), o(3), [0, 0]), ValueError, NDIM),
    ("kmeans_1d", lambda: fastloss.kmeans_inertia(o(3), o((2, 3))), ValueError, NDIM),
    ("kmeans_centers_1d", lambda: fastloss.kmeans_inertia(o((4, 3)), o(3)), ValueError, NDIM),
    # labels / targets
    (
        "contrastive_target_len",
        lambda: fastloss.contrastive_loss(o((3, 2)), o((3, 2)), o(4)),
        ValueError,
        r"target|\(3,\)|\(4,\)",
    ),
    (
        "contrastive_target_2d",
        lambda: fastloss.contrastive_loss(o((3, 2)), o((3, 2)), o((3, 1))),
        ValueError,
        r"target|shape",
    ),
    (
        "cosine_target_len",
        lambda: fastloss.cosine_embedding_loss(o((3, 2)), o((3, 2)), [1, 1]),
        ValueError,
        r"target|\(3,\)|\(2,\)",
    ),
    (
        "pairwise_labels_len",
        lambda: fastloss.pairwise_contrastive_loss(o((3, 2)), [0, 1]),
        ValueError,
        r"labels|\(2,\)",
    ),
    (
        "batch_hard_labels_len",
        lambda: fastloss.batch_hard_triplet_loss(o((3, 2)), [0, 1, 1, 0]),
        ValueError,
        r"labels|\(4,\)",
    ),
    (
        "arcface_labels_len",
        lambda: fastloss.arcface_loss(o((3, 2)), o((4, 2)), [0, 1]),
        ValueError,
        r"labels|\(2,\)",
    ),
    (
        "pairwise_labels_float",
        lambda: fastloss.pairwise_contrastive_loss(o((3, 2)), [0.0, 1.5, 1.0]),
        (ValueError, TypeError),
        r"(?i)labels|integer",
    ),
    (
        "batch_hard_labels_float",
        lambda: fastloss.batch_hard_triplet_loss(o((3, 2)), np.array([0.5, 1.0, 1.0])),
        (ValueError, TypeError),
        r"(?i)labels|integer",
    ),
    (
        "arcface_labels_float",
        lambda: fastloss.arcface_loss(o((3, 2)), o((4, 2)), [0.0, 1.5, 2.0]),
        (ValueError, TypeError),
        r"(?i)labels|integer",
    ),
    (
        "pairwise_labels_str",
        lambda: fastloss.pairwise_contrastive_loss(o((2, 2)), ["a", "b"]),
        (ValueError, TypeError),
        r"(?i)labels|integer|dtype",
    ),
    (
        "arcface_label_negative",
        lambda: fastloss.arcface_loss(o((3, 2)), o((4, 2)), [0, -1, 2]),
        ValueError,
        r"-1",
    ),
    (
        "cosine_target_nan",
        lambda: fastloss.cosine_embedding_loss(o((2, 2)), o((2, 2)), [1.0, np.nan]),
        ValueError,
        r"(?i)target|nan",
    ),
    # parameters
    (
        "contrastive_margin_neg",
        lambda: fastloss.contrastive_loss(o((2, 2)), o((2, 2)), [1, 0], margin=-0.1),
        ValueError,
        "margin",
    ),
    (
        "contrastive_margin_nan",
        lambda: fastloss.contrastive_loss(o((2, 2)), o((2, 2)), [1, 0], margin=np.nan),
        ValueError,
        "margin",
    ),
    (
        "contrastive_margin_str",
        lambda: fastloss.contrastive_loss(o((2, 2)), o((2, 2)), [1, 0], margin="1"),
        TypeError,
        "margin",
    ),
    (
        "triplet_p0",
        lambda: fastloss.triplet_margin_loss(o((2, 2)), o((2, 2)), o((2, 2)), p=0.0),
        ValueError,
        r"\bp\b",
    ),
    (
        "triplet_p_neg",
        lambda: fastloss.triplet_margin_loss(o((2, 2)), o((2, 2)), o((2, 2)), p=-2.0),
        ValueError,
        r"\bp\b",
    ),
    (
        "triplet_swap_type",
        lambda: fastloss.triplet_margin_loss(o((2, 2)), o((2, 2)), o((2, 2)), swap="yes"),
        TypeError,
        "swap",
    ),
    (
        "info_nce_T0",
        lambda: fastloss.info_nce(o((2, 2)), o((2, 2)), temperature=0.0),
        ValueError,
        "temperature",
    ),
    (
        "info_nce_T_neg",
        lambda: fastloss.info_nce(o((2, 2)), o((2, 2)), o((3, 2)), temperature=-1.0),
        ValueError,
        "temperature",
    ),
    (
        "info_nce_T_nan",
        lambda: fastloss.info_nce(o((2, 2)), o((2, 2)), temperature=np.nan),
        ValueError,
        "temperature",
    ),
    ("nt_xent_T0", lambda: fastloss.nt_xent(o((2, 2)), o((2, 2)), temperature=0), ValueError, "temperature"),
    (
        "nt_xent_T_neg",
        lambda: fastloss.nt_xent(o((2, 2)), o((2, 2)), temperature=-0.5),
        ValueError,
        "temperature",
    ),
    ("ge2e_w0", lambda: fastloss.ge2e_loss(o((2, 2, 3)), w=0.0), ValueError, r"\bw\b"),
    ("ge2e_w_neg", lambda: fastloss.ge2e_loss(o((2, 2, 3)), w=-3.0), ValueError, r"\bw\b"),
    (
        "ge2e_method",
        lambda: fastloss.ge2e_loss(o((2, 2, 3)), method="triplet"),
        ValueError,
        r"method|softmax|contrast",
    ),
    (
        "ge2e_method_type",
        lambda: fastloss.ge2e_loss(o((2, 2, 3)), method=1),
        (TypeError, ValueError),
        r"method",
    ),
    ("ge2e_S1", lambda: fastloss.ge2e_loss(o((1, 3, 3))), ValueError, r"(?i)speaker|\bS\b|2"),
    ("ge2e_U1", lambda: fastloss.ge2e_loss(o((3, 1, 3))), ValueError, r"(?i)utterance|\bU\b|2"),
    (
        "pairwise_none",
        lambda: fastloss.pairwise_contrastive_loss(o((3, 2)), [0, 1, 0], reduction="none"),
        ValueError,
        r"pairwise_distances|matrix|none",
    ),
    (
        "mnrl_M_lt_N",
        lambda: fastloss.multiple_negatives_ranking_loss(o((4, 2)), o((3, 2))),
        ValueError,
        r"positives|anchors|M >= N|M < N|rows",
    ),
    (
        "reduction_unknown",
        lambda: fastloss.info_nce(o((2, 2)), o((2, 2)), reduction="avg"),
        ValueError,
        "reduction",
    ),
    (
        "reduction_type",
        lambda: fastloss.triplet_margin_loss(o((2, 2)), o((2, 2)), o((2, 2)), reduction=None),
        TypeError,
        "reduction",
    ),
    (
        "return_grad_type",
        lambda: fastloss.nt_xent(o((2, 2)), o((2, 2)), return_grad="yes"),
        TypeError,
        "return_grad",
    ),
    (
        "kmeans_weight_neg",
        lambda: fastloss.kmeans_inertia(o((3, 2)), o((2, 2)), sample_weight=[1.0, -1.0, 1.0]),
        ValueError,
        "sample_weight",
    ),
    (
        "kmeans_weight_len",
        lambda: fastloss.kmeans_inertia(o((3, 2)), o((2, 2)), sample_weight=[1.0, 1.0]),
        ValueError,
        "sample_weight",
    ),
    (
        "kmeans_no_centers",
        lambda: fastloss.kmeans_inertia(o((3, 2)), np.zeros((0, 2))),
        ValueError,
        r"(?i)centers|K",
    ),
    # complex / strings
    (
        "complex",
        lambda: fastloss.triplet_margin_loss(o((2, 2)) * 1j, o((2, 2)), o((2, 2))),
        TypeError,
        r"complex|real",
    ),
    (
        "string",
        lambda: fastloss.nt_xent(np.array([["a", "b"]]), np.array([["a", "b"]])),
        TypeError,
        r"real|dtype",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "pattern"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors(backend, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


SHAPE_MISMATCHES = [
    ("contrastive_d", lambda: fastloss.contrastive_loss(o((5, 3)), o((5, 4)), o(5)), [(5, 3), (5, 4)]),
    ("contrastive_N", lambda: fastloss.contrastive_loss(o((5, 3)), o((4, 3)), o(5)), [(5, 3), (4, 3)]),
    ("triplet_d", lambda: fastloss.triplet_margin_loss(o((5, 3)), o((5, 3)), o((5, 2))), [(5, 3), (5, 2)]),
    ("triplet_N", lambda: fastloss.triplet_margin_loss(o((5, 3)), o((6, 3)), o((5, 3))), [(5, 3), (6, 3)]),
    ("cosine_d", lambda: fastloss.cosine_embedding_loss(o((5, 3)), o((5, 4)), o(5)), [(5, 3), (5, 4)]),
    ("info_nce_positive", lambda: fastloss.info_nce(o((5, 3)), o((4, 3))), [(5, 3), (4, 3)]),
    ("info_nce_negatives_d", lambda: fastloss.info_nce(o((5, 3)), o((5, 3)), o((6, 4))), [(5, 3), (6, 4)]),
    ("nt_xent", lambda: fastloss.nt_xent(o((5, 3)), o((4, 3))), [(5, 3), (4, 3)]),
    ("mnrl_d", lambda: fastloss.multiple_negatives_ranking_loss(o((5, 3)), o((6, 4))), [(5, 3), (6, 4)]),
    ("arcface_d", lambda: fastloss.arcface_loss(o((5, 3)), o((4, 4)), [0, 1, 2, 3, 0]), [(5, 3), (4, 4)]),
    ("kmeans_d", lambda: fastloss.kmeans_inertia(o((5, 3)), o((2, 4))), [(5, 3), (2, 4)]),
    ("pairwise_distances_d", lambda: fastloss.pairwise_distances(o((5, 3)), o((2, 4))), [(5, 3), (2, 4)]),
]


@pytest.mark.parametrize(
    ("call", "shapes"), [c[1:] for c in SHAPE_MISMATCHES], ids=[c[0] for c in SHAPE_MISMATCHES]
)
def test_shape_mismatch_names_both_shapes(backend, call, shapes):
    with pytest.raises(ValueError) as e:
        call()
    assert _shapes_in(str(e.value), *shapes), f"the message should name {shapes}: {e.value}"


BAD_LABELS = [
    # (id, call, bad position, bad value as printed)
    (
        "cosine_half",
        lambda: fastloss.cosine_embedding_loss(o((6, 2)), o((6, 2)), [1, -1, 1, 0.25, 2, 1]),
        3,
        "0.25",
    ),
    ("cosine_zero", lambda: fastloss.cosine_embedding_loss(o((4, 2)), o((4, 2)), [1, -1, -1, 0]), 3, "0"),
    ("cosine_two", lambda: fastloss.cosine_embedding_loss(o((4, 2)), o((4, 2)), [1, 2, -1, 0]), 1, "2"),
    (
        "contrastive_above",
        lambda: fastloss.contrastive_loss(o((5, 2)), o((5, 2)), [0, 1, 0.5, 1.25, -1]),
        3,
        "1.25",
    ),
    (
        "contrastive_below",
        lambda: fastloss.contrastive_loss(o((5, 2)), o((5, 2)), [0, 1, 0.5, 1.0, -0.75]),
        4,
        "-0.75",
    ),
    ("arcface_high", lambda: fastloss.arcface_loss(o((5, 2)), o((5, 2)), [0, 1, 4, 5, 7]), 3, "5"),
    ("arcface_negative", lambda: fastloss.arcface_loss(o((4, 2)), o((3, 2)), [0, 2, -3, 1]), 2, "-3"),
]


@pytest.mark.parametrize(
    ("call", "pos", "value"), [c[1:] for c in BAD_LABELS], ids=[c[0] for c in BAD_LABELS]
)
def test_bad_labels_name_position_and_value(backend, call, pos, value):
    with pytest.raises(ValueError) as e:
        call()
    msg = str(e.value)
    assert re.search(rf"(?<![\d.]){re.escape(value)}(?![\d])", msg), (
        f"the message should name the value {value}: {msg}"
    )
    assert re.search(rf"(?<![\d.]){pos}(?![\d.])", msg), f"the message should name the position {pos}: {msg}"
