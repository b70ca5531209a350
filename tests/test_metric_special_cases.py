"""Metric-learning special cases: small and one-kind batches, near duplicates, subgradients, the losses by
hand, zero vectors, GE2E methods and speaker chunks, ArcFace branches, k-means ties and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from _pairwise import (
    CASE_BY_ID,
    ce_rows,
    l2_normalize,
    make_problem,
    ref_arcface,
    ref_batch_hard,
    ref_cdist,
    ref_cosine_embedding,
    ref_ge2e,
    ref_info_nce,
    ref_kmeans,
    ref_mnrl,
    ref_nt_xent,
    ref_pairwise_contrastive,
    torch_value_grad,
)
from conftest import (
    DTYPE_IDS,
    DTYPES,
    assert_close,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

import fastloss


def test_empty_similarity_batches(backend):
    """Empty batches of the similarity losses with no column at all (M = 0), and negatives with no row."""
    z = np.zeros((0, 3))
    for call in (
        lambda red: fastloss.multiple_negatives_ranking_loss(z, z, reduction=red, return_grad=True),
        lambda red: fastloss.info_nce(z, z, z, reduction=red, return_grad=True),
        lambda red: fastloss.info_nce(z, z, reduction=red, return_grad=True),
        lambda red: fastloss.nt_xent(z, z, reduction=red, return_grad=True),
    ):
        v, grads = call("sum")
        assert v == 0.0 and all(g.shape == (0, 3) for g in grads)
        assert np.isnan(call("mean")[0])
        assert call("none")[0].shape == (0,)
    # negatives with no row: every query's only logit is its positive -> loss 0, gradient 0
    rng = np.random.default_rng(27)
    q, p = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    v, (gq, gp, gn) = fastloss.info_nce(q, p, z, reduction="none", return_grad=True)
    np.testing.assert_array_equal(v, np.zeros(4))
    np.testing.assert_array_equal(gq, np.zeros_like(q))
    np.testing.assert_array_equal(gp, np.zeros_like(p))
    assert gn.shape == (0, 3)


def test_pairwise_contrastive_small_batches(backend):
    x = np.array([[1.0, 2.0]])
    for lab in ([0], [3]):
        v, g = fastloss.pairwise_contrastive_loss(x, lab, return_grad=True)
        assert np.isnan(v), "N = 1: no pair, mean nan"
        np.testing.assert_array_equal(g.shape, (1, 2))
        v, g = fastloss.pairwise_contrastive_loss(x, lab, reduction="sum", return_grad=True)
        assert v == 0.0
        np.testing.assert_array_equal(g, [[0.0, 0.0]])
    # N = 2 by hand: similar pair 0.5 d^2, dissimilar 0.5 max(0, m - d)^2
    x = np.array([[0.0, 0.0], [0.3, 0.4]])  # d = 0.5
    assert_close(fastloss.pairwise_contrastive_loss(x, [1, 1]), 0.125, rtol=1e-14)
    assert_close(fastloss.pairwise_contrastive_loss(x, [1, 2]), 0.125, rtol=1e-14)
    assert_close(fastloss.pairwise_contrastive_loss(x, [1, 2], margin=2.0), 0.5 * 1.5**2, rtol=1e-14)
    assert fastloss.pairwise_contrastive_loss(x, [1, 2], margin=0.5) == 0.0
    v, g = fastloss.pairwise_contrastive_loss(x, [1, 1], return_grad=True)
    assert_close(g, [[-0.3, -0.4], [0.3, 0.4]], rtol=1e-14)


@pytest.mark.parametrize("labels", ["all_equal", "all_distinct"])
def test_pairwise_contrastive_one_kind_of_pair(backend, labels):
    rng = np.random.default_rng(_seed("pc-one", labels))
    x = rng.normal(0.0, 0.3, (9, 4))
    lab = np.zeros(9, dtype=np.int64) if labels == "all_equal" else np.arange(9) * 7 - 20
    D = ref_cdist(x, x, "euclidean")[np.triu_indices(9, 1)]
    want = np.sum(0.5 * D**2) if labels == "all_equal" else np.sum(0.5 * np.maximum(0.0, 1.0 - D) ** 2)
    ref = ref_pairwise_contrastive((x, lab), {})
    assert_close(want, np.sum(ref.items), rtol=1e-14)
    for reduction, w in (("sum", want), ("mean", want / 36)):
        v, g = fastloss.pairwise_contrastive_loss(x, lab, reduction=reduction, return_grad=True)
        assert_close(v, w, rtol=1e-12)
        assert_close(g, ref.grads[0] / (36 if reduction == "mean" else 1), rtol=1e-10, atol=1e-14)


def test_pairwise_contrastive_near_duplicates(backend):
    """Tiny clusters far from the origin: the similar-pair terms 0.5 d^2 with d ~ 1e-4 keep ~1e-6 relative
    accuracy (exact differences), as do the gradients."""
    rng = np.random.default_rng(16)
    x = 1e3 + 1e-4 * rng.normal(size=(8, 5))
    lab = np.zeros(8, dtype=np.int64)
    ref = ref_pairwise_contrastive((x, lab), {})
    v, g = fastloss.pairwise_contrastive_loss(x, lab, reduction="sum", return_grad=True)
    assert_close(v, np.sum(ref.items), rtol=1e-6)
    assert_close(g, ref.grads[0], rtol=1e-6, atol=1e-6 * scale_of(ref.grads[0]))


def test_pairwise_contrastive_zero_distance_subgradient(backend):
    """A dissimilar pair at distance 0 (duplicate rows) has gradient 0 there; value 0.5 m^2."""
    x = np.array([[1.0, 2.0], [1.0, 2.0], [4.0, 6.0]])
    v, g = fastloss.pairwise_contrastive_loss(x, [0, 1, 0], reduction="sum", margin=1.0, return_grad=True)
    # pairs: (0,1) dissimilar d=0 -> 0.5; (0,2) similar d=5 -> 12.5; (1,2) dissimilar d=5 -> 0
    assert_close(v, 13.0, rtol=1e-14)
    assert_close(g, [[-3.0, -4.0], [0.0, 0.0], [3.0, 4.0]], rtol=1e-14)
    assert np.isfinite(g).all()


def test_contrastive_by_hand(backend):
    x1 = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    x2 = np.array([[0.3, 0.4], [0.3, 0.4], [3.0, 4.0], [1.0, 1.0]])
    t = np.array([1.0, 0.0, 0.0, 0.0])
    v = fastloss.contrastive_loss(x1, x2, t, reduction="none")
    # d = 0.5, 0.5, 5, 0 ; margin 1
    assert_close(v, [0.125, 0.125, 0.0, 0.5], rtol=1e-14)
    _, (g1, g2) = fastloss.contrastive_loss(x1, x2, t, reduction="none", return_grad=True)
    # row 1: -(m - d)/d (x1 - x2) = -(0.5/0.5) * (-0.3, -0.4); row 3: d = 0 -> subgradient 0
    assert_close(g1, [[-0.3, -0.4], [0.3, 0.4], [0.0, 0.0], [0.0, 0.0]], rtol=1e-14, atol=1e-16)
    assert_close(g2, -g1, rtol=0)
    # soft targets interpolate linearly
    vs = fastloss.contrastive_loss(x1[:2], x2[:2], [0.25, 0.25], margin=2.0, reduction="none")
    assert_close(vs, 0.5 * (0.25 * 0.25 + 0.75 * 1.5**2) * np.ones(2), rtol=1e-14)


def test_triplet_by_hand(backend):
    a = np.array([[0.0, 0.0]])
    p = np.array([[3.0, 4.0]])
    n = np.array([[1.0, 0.0]])
    # eps = 0: d_ap = 5, d_an = 1 -> 5 - 1 + 1 = 5 ; with swap d_pn = sqrt(4 + 16) > 1: unchanged
    assert_close(fastloss.triplet_margin_loss(a, p, n, eps=0.0), 5.0, rtol=1e-14)
    assert_close(fastloss.triplet_margin_loss(a, p, n, eps=0.0, swap=True), 5.0, rtol=1e-14)
    assert_close(fastloss.triplet_margin_loss(a, p, n, eps=0.0, p=1.0), 7.0 - 1.0 + 1.0, rtol=1e-14)
    assert fastloss.triplet_margin_loss(a, n, p, eps=0.0) == 0.0  # inactive hinge
    _, g = fastloss.triplet_margin_loss(a, n, p, eps=0.0, return_grad=True)
    for gi in g:
        np.testing.assert_array_equal(gi, np.zeros((1, 2)))
    # swap picks d(p, n) when it is smaller
    p2, n2 = np.array([[3.0, 0.0]]), np.array([[3.5, 0.0]])
    assert_close(fastloss.triplet_margin_loss(a, p2, n2, eps=0.0, swap=True), 3.0 - 0.5 + 1.0, rtol=1e-14)
    assert_close(fastloss.triplet_margin_loss(a, p2, n2, eps=0.0), 3.0 - 3.5 + 1.0, rtol=1e-14)
    # the eps is added to the difference (torch.pairwise_distance), not to the norm
    z = np.zeros((1, 4))
    assert_close(
        fastloss.triplet_margin_loss(z, z, z + 10.0, eps=1e-6, margin=20.0, reduction="sum"),
        np.sqrt(4) * 1e-6 - np.linalg.norm(-10.0 + 1e-6 * np.ones(4)) + 20.0,
        rtol=1e-13,
    )


def test_batch_hard_by_hand(backend):
    x = np.array([[0.0], [1.0], [3.0], [10.0], [4.5]])
    lab = np.array([0, 0, 0, 1, 2])
    v = fastloss.batch_hard_triplet_loss(x, lab, margin=1.0, reduction="none")
    # anchor 0: pos max 3, neg min 4.5 -> 0 ; anchor 1: pos 2, neg 3.5 -> 0 ;
    # anchor 2: pos 3 (row 0), neg 1.5 (row 4) -> 2.5 ; anchors 3, 4: no positive -> 0 (not counted)
    assert_close(v, [0.0, 0.0, 2.5, 0.0, 0.0], rtol=1e-14)
    assert_close(fastloss.batch_hard_triplet_loss(x, lab, margin=1.0), 2.5 / 3, rtol=1e-14)  # 3 valid anchors
    assert_close(fastloss.batch_hard_triplet_loss(x, lab, margin=1.0, reduction="sum"), 2.5, rtol=1e-14)
    _, g = fastloss.batch_hard_triplet_loss(x, lab, margin=1.0, reduction="sum", return_grad=True)
    # l_2 = |x2 - x0| - |x2 - x4| + 1 -> d/dx2 = 1 - (-1) = 2, d/dx0 = -1, d/dx4 = -1
    assert_close(g, [[-1.0], [0.0], [2.0], [0.0], [-1.0]], rtol=1e-14)
    # ties: first index wins for both (distance 2 to rows 1 and 2 / 3 and 4)
    xt = np.array([[0.0], [2.0], [-2.0], [3.0], [-3.0]])
    _, g = fastloss.batch_hard_triplet_loss(
        xt, [0, 0, 0, 1, 1], margin=5.0, reduction="sum", return_grad=True
    )
    # anchor 0: hardest positive row 1 (first of the tie with row 2), hardest negative row 3 (first of
    # the tie with row 4); the other anchors have no ties
    want = np.zeros((5, 1))
    for i, jp, jn in ((0, 1, 3), (1, 2, 3), (2, 1, 4), (3, 4, 1), (4, 3, 2)):
        up, un = np.sign(xt[i] - xt[jp]), np.sign(xt[i] - xt[jn])
        want[i] += up - un
        want[jp] -= up
        want[jn] += un
    assert_close(g, want, rtol=1e-14)
    ref = ref_batch_hard((xt, np.array([0, 0, 0, 1, 1])), {"margin": 5.0})
    assert_close(g, ref.grads[0], rtol=1e-14)


@pytest.mark.parametrize("labels", ["all_equal", "all_distinct", "single"])
def test_batch_hard_no_valid_anchor(backend, labels):
    rng = np.random.default_rng(17)
    n = 1 if labels == "single" else 6
    x = rng.normal(size=(n, 3))
    lab = np.zeros(n, dtype=np.int64) if labels != "all_distinct" else np.arange(n)
    v, g = fastloss.batch_hard_triplet_loss(x, lab, return_grad=True)
    assert np.isnan(v), "no valid anchor: the mean is nan"
    assert g.shape == x.shape
    v, g = fastloss.batch_hard_triplet_loss(x, lab, reduction="sum", return_grad=True)
    assert v == 0.0
    np.testing.assert_array_equal(g, np.zeros_like(x))
    v = fastloss.batch_hard_triplet_loss(x, lab, reduction="none")
    np.testing.assert_array_equal(v, np.zeros(n))


def test_batch_hard_mean_counts_valid_anchors_only(backend):
    rng = np.random.default_rng(18)
    x = rng.normal(0.0, 0.4, (7, 3))
    lab = np.array([0, 0, 1, 1, 1, 5, 9])  # anchors 5 and 6 have no positive
    none = fastloss.batch_hard_triplet_loss(x, lab, margin=2.0, reduction="none")
    assert none[5] == 0.0 and none[6] == 0.0
    assert (none[:5] > 0).all()
    assert_close(fastloss.batch_hard_triplet_loss(x, lab, margin=2.0), np.sum(none) / 5, rtol=1e-13)


def test_cosine_embedding_zero_vectors(backend):
    """Zero rows: cos = 0 thanks to the 1e-12 in the denominator; finite values and gradients."""
    x1 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    x2 = np.array([[1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    t = np.array([1.0, -1.0, 1.0, -1.0])
    v, (g1, g2) = fastloss.cosine_embedding_loss(x1, x2, t, reduction="none", return_grad=True)
    assert_close(v, [1.0, 0.0, 1.0, 0.0], rtol=0, atol=1e-12)
    assert np.isfinite(g1).all() and np.isfinite(g2).all()
    ref = ref_cosine_embedding((x1, x2, t), {})
    assert_close(g1, ref.grads[0], rtol=1e-9)
    assert_close(g2, ref.grads[1], rtol=1e-9)
    vm = fastloss.cosine_embedding_loss(x1, x2, t, margin=-0.5, reduction="none")
    assert_close(vm, [1.0, 0.5, 1.0, 0.5], rtol=0, atol=1e-12)


def test_cosine_embedding_zero_vectors_match_torch(backend, torch):
    x1 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    x2 = np.array([[1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    t = np.array([1.0, -1.0, 1.0])
    case = CASE_BY_ID["cosine_embedding_m-0.4"]
    v, g, _ = case.run((x1, x2, t), "sum")
    want, want_g = torch_value_grad(torch, case, (x1, x2, t), {}, "sum")
    assert_close(v, want, rtol=1e-12)
    for a, b in zip(g, want_g):
        assert_close(a, b, rtol=1e-9, atol=1e-9 * scale_of(b))


def test_info_nce_family_zero_vectors(backend):
    """Zero rows normalise to 0 (x / max(||x||, 1e-12)): finite losses, as the references say."""
    rng = np.random.default_rng(19)
    q = rng.normal(size=(5, 3))
    p = rng.normal(size=(5, 3))
    neg = rng.normal(size=(4, 3))
    q[1] = 0.0
    p[3] = 0.0
    neg[2] = 0.0
    for args, kw, fn, ref in (
        ((q, p), {"temperature": 0.2}, fastloss.info_nce, ref_info_nce),
        ((q, p, neg), {"temperature": 0.2}, fastloss.info_nce, ref_info_nce),
        ((q, p), {"temperature": 0.3}, fastloss.nt_xent, ref_nt_xent),
        ((q, np.concatenate([p, neg])), {"scale": 7.0}, fastloss.multiple_negatives_ranking_loss, ref_mnrl),
    ):
        v, grads = fn(*args, reduction="none", return_grad=True, **kw)
        r = ref(args, kw)
        assert np.isfinite(v).all()
        assert_close(v, r.items, rtol=1e-10, atol=1e-12)
        for g in grads:
            assert np.isfinite(g).all()
    # query 1 is zero: all its logits are 0, so its loss is log(number of logits)
    v = fastloss.info_nce(q, p, reduction="none")
    assert_close(v[1], np.log(5.0), rtol=1e-12)
    v = fastloss.info_nce(q, p, neg, reduction="none")
    assert_close(v[1], np.log(5.0), rtol=1e-12)


def test_info_nce_single_row_and_temperature(backend):
    q = np.array([[1.0, 2.0]])
    p = np.array([[-3.0, 0.5]])
    # one query, in-batch: the only logit is the positive -> loss 0
    assert fastloss.info_nce(q, p) == 0.0
    v, (gq, gp) = fastloss.info_nce(q, p, return_grad=True)
    np.testing.assert_array_equal(gq, np.zeros_like(q))
    np.testing.assert_array_equal(gp, np.zeros_like(p))
    # nt_xent with N = 1: rows 0 and 1 see only each other -> 0
    assert fastloss.nt_xent(q, p) == 0.0
    assert fastloss.nt_xent(q, p, reduction="none").shape == (2,)
    # scale invariance of the rows
    rng = np.random.default_rng(20)
    q, p, n = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    base = fastloss.info_nce(q, p, n, temperature=0.3)
    assert_close(fastloss.info_nce(7.0 * q, 0.01 * p, 3.0 * n, temperature=0.3), base, rtol=1e-12)
    # temperature divides the cosine logits
    qh, ph, nh = l2_normalize(q), l2_normalize(p), l2_normalize(n)
    L = np.concatenate([np.sum(qh * ph, 1, keepdims=True), qh @ nh.T], axis=1) / 0.3
    want = np.mean(np.log(np.sum(np.exp(L), axis=1)) - L[:, 0])
    assert_close(base, want, rtol=1e-12)


def test_mnrl_hard_negatives_and_square(backend):
    rng = np.random.default_rng(21)
    a, p = rng.normal(size=(4, 3)), rng.normal(size=(7, 3))
    v, (ga, gp) = fastloss.multiple_negatives_ranking_loss(a, p, return_grad=True)
    assert gp.shape == (7, 3) and ga.shape == (4, 3)
    assert np.any(gp[4:] != 0), "hard negatives receive gradient"
    assert_close(v, np.mean(ref_mnrl((a, p), {}).items), rtol=1e-12)
    # with M == N it is info_nce with temperature 1 / scale
    assert_close(
        fastloss.multiple_negatives_ranking_loss(a, p[:4], scale=20.0),
        fastloss.info_nce(a, p[:4], temperature=1 / 20.0),
        rtol=1e-12,
    )


def test_ge2e_shapes_and_methods(backend):
    rng = np.random.default_rng(22)
    E = rng.normal(size=(3, 4, 5))
    v = fastloss.ge2e_loss(E, reduction="none")
    assert v.shape == (3, 4)
    assert_close(fastloss.ge2e_loss(E), np.mean(v), rtol=1e-12)
    assert_close(fastloss.ge2e_loss(E, reduction="sum"), np.sum(v), rtol=1e-12)
    for method in ("softmax", "contrast"):
        _, g = fastloss.ge2e_loss(E, method=method, return_grad=True)
        assert isinstance(g, np.ndarray) and g.shape == E.shape
    # the minimum shape S = U = 2
    E2 = rng.normal(size=(2, 2, 3))
    for method in ("softmax", "contrast"):
        r = ref_ge2e((E2,), {"method": method, "w": 2.0, "b": 0.3})
        assert_close(
            fastloss.ge2e_loss(E2, w=2.0, b=0.3, method=method, reduction="none"),
            r.items,
            rtol=1e-9,
            atol=1e-12,
        )
    # a zero utterance has cosine 0 with everything: S = b, finite
    E[1, 2] = 0.0
    for method in ("softmax", "contrast"):
        r = ref_ge2e((E,), {"method": method})
        v, g = fastloss.ge2e_loss(E, method=method, reduction="none", return_grad=True)
        assert np.isfinite(v).all() and np.isfinite(g).all()
        assert_close(v, r.items, rtol=1e-9, atol=1e-12)


def test_sim_ce_row_scale_is_scaled_rows(backend):
    """The sim_ce primitive with row scales (what ge2e_loss uses instead of a normalised copy): the same as
    the scaled rows passed in, the gradient being that of the scaled rows; refused when a is b."""
    from fastloss import _backend

    k = _backend.kernels()
    rng = np.random.default_rng(24)
    a, b = rng.normal(size=(70, 9)), rng.normal(size=(66, 9))
    s = rng.uniform(0.2, 3.0, 70)
    tgt = rng.integers(-1, 66, 70)
    exc = np.where(tgt >= 0, (tgt + 1) % 66, -1)
    extra = rng.normal(size=70)
    s0, a0 = s.copy(), a.copy()
    got = k.sim_ce(a, b, 2.5, tgt, exc, extra, True, 0.1, 0, s)
    want = k.sim_ce(a * s[:, None], b, 2.5, tgt, exc, extra, True, 0.1, 0)
    for x, y in zip(got, want):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="row_scale"):
        k.sim_ce(a, a, 1.0, None, None, extra, False, 1.0, 0, s)
    with pytest.raises(ValueError, match="row_scale"):
        k.sim_ce(a, b, 1.0, None, None, extra, False, 1.0, 0, s[:-1])
    assert np.array_equal(s, s0) and np.array_equal(a, a0)  # the caller's arrays are untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ge2e_speaker_chunks_same_as_whole(backend, dtype, monkeypatch):
    """Wide embeddings go through ge2e's row-local work a chunk of whole speakers at a time (bounded
    memory): the same values and gradients as in one chunk, for both methods and every reduction."""
    from fastloss import _pairwise

    E = np.random.default_rng(23).normal(size=(5, 3, 7)).astype(dtype)
    E[2, 1] = 0.0  # a zero utterance inside a chunk
    calls = [(m, r) for m in ("softmax", "contrast") for r in ("none", "mean", "sum")]
    whole = {c: fastloss.ge2e_loss(E, method=c[0], reduction=c[1], return_grad=True) for c in calls}
    monkeypatch.setattr(_pairwise, "_CHUNK_BYTES", 8 * 7 * 3 * 2)  # two speakers per chunk, three chunks
    tol = {"rtol": 2e-6, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    for c in calls:
        v, g = fastloss.ge2e_loss(E, method=c[0], reduction=c[1], return_grad=True)
        assert g.dtype == dtype and np.shape(v) == np.shape(whole[c][0])
        np.testing.assert_allclose(v, whole[c][0], **tol, err_msg=str(c))
        np.testing.assert_allclose(g, whole[c][1], **tol, err_msg=str(c))


def test_arcface_branches(backend):
    """The margin branch and InsightFace's fallback (cos_y <= cos(pi - m)) by hand, C = 2."""
    W = np.array([[1.0, 0.0], [0.0, 1.0]])
    m, s = 0.5, 4.0
    for theta in (0.3, 1.2, 2.0, 2.9, np.pi):  # angle between the embedding and class 0
        e = np.array([[np.cos(theta), np.sin(theta)]]) * 3.0
        cy = np.cos(theta)
        c1 = np.clip(np.sin(theta), -1, 1)
        phi = np.cos(theta + m) if cy > np.cos(np.pi - m) else cy - np.sin(np.pi - m) * m
        want = np.logaddexp(s * phi, s * c1) - s * phi
        got = fastloss.arcface_loss(e, W, [0], scale=s, margin=m)
        assert_close(got, want, rtol=1e-12, atol=1e-14, what=f"theta={theta}")
    # margin 0: plain normalised softmax cross-entropy
    rng = np.random.default_rng(23)
    e, W, y = rng.normal(size=(6, 4)), rng.normal(size=(5, 4)), rng.integers(0, 5, 6)
    L = 10.0 * l2_normalize(e) @ l2_normalize(W).T
    want = np.mean(ce_rows(L, y)[0])
    assert_close(fastloss.arcface_loss(e, W, y, scale=10.0, margin=0.0), want, rtol=1e-12)
    # zero embedding: all cosines 0
    e[2] = 0.0
    v = fastloss.arcface_loss(e, W, y, reduction="none")
    assert np.isfinite(v).all()
    assert_close(v, ref_arcface((e, W, y), {}).items, rtol=1e-10, atol=1e-12)


def test_arcface_label_dtypes(backend):
    rng = np.random.default_rng(24)
    e, W, y = rng.normal(size=(6, 4)), rng.normal(size=(5, 4)), rng.integers(0, 5, 6)
    want = fastloss.arcface_loss(e, W, y, return_grad=True)
    for dt in (np.int8, np.int32, np.uint8, np.uint64):
        got = fastloss.arcface_loss(e, W, y.astype(dt), return_grad=True)
        np.testing.assert_array_equal(got[0], want[0])
        for a, b in zip(got[1], want[1]):
            np.testing.assert_array_equal(a, b)
    assert_close(fastloss.arcface_loss(e, W, list(y)), want[0], rtol=0)


def test_kmeans_by_hand_and_ties(backend):
    c = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0]])  # center 2 duplicates center 0
    x = np.array([[1.0, 0.0], [1.0, 5.0], [0.1, 0.0], [2.5, 0.0], [-1.0, 0.0]])
    inertia, lab = fastloss.kmeans_inertia(x, c)
    # rows 0 and 1 are equidistant to centers 0 and 1: lowest index wins; row 2 ties 0 and 2
    np.testing.assert_array_equal(lab, [0, 0, 0, 1, 0])
    assert lab.dtype.kind in "iu" and lab.shape == (5,)
    assert isinstance(inertia, np.float64)
    assert_close(inertia, 1.0 + 26.0 + 0.01 + 0.25 + 1.0, rtol=1e-14)
    w = np.array([1.0, 0.0, 2.0, 0.5, 3.0])
    inertia, lab, (gx, gc) = fastloss.kmeans_inertia(x, c, sample_weight=w, return_grad=True)
    assert_close(inertia, 1.0 + 0.02 + 0.125 + 3.0, rtol=1e-14)
    r = ref_kmeans((x, c), {"sample_weight": w})
    assert_close(gx, r.grads[0], rtol=1e-14)
    assert_close(gc, r.grads[1], rtol=1e-14)
    np.testing.assert_array_equal(gc[2], [0.0, 0.0])  # never the argmin
    # sample_weight=None is all ones
    assert fastloss.kmeans_inertia(x, c)[0] == fastloss.kmeans_inertia(x, c, sample_weight=np.ones(5))[0]
    # one center
    inertia, lab = fastloss.kmeans_inertia(x, c[:1])
    np.testing.assert_array_equal(lab, np.zeros(5))
    assert_close(inertia, np.sum(x * x), rtol=1e-14)


def test_kmeans_near_duplicates(backend):
    """Points within 1e-6 of centers far from the origin: exact differences keep the tiny inertia."""
    rng = np.random.default_rng(25)
    c = 1e3 + rng.normal(size=(4, 6))
    lab = rng.integers(0, 4, 30)
    x = c[lab] + 1e-6 * rng.normal(size=(30, 6))
    inertia, got_lab = fastloss.kmeans_inertia(x, c)
    np.testing.assert_array_equal(got_lab, lab)
    assert_close(inertia, np.sum((x - c[lab]) ** 2), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_kmeans_matches_sklearn(backend, dtype, weighted):
    cluster = pytest.importorskip("sklearn.cluster")
    case = CASE_BY_ID["kmeans_w" if weighted else "kmeans"]
    args, kw = make_problem(case, 40, 5, _seed("sk", weighted), kink_min=1e-2)
    x, c = (np.asarray(a, dtype) for a in args)
    w = kw.get("sample_weight")
    w = None if w is None else w.astype(dtype)
    km = cluster.KMeans(n_clusters=len(c), init=c, n_init=1, max_iter=1).fit(x, sample_weight=w)
    km.cluster_centers_ = c.copy()
    inertia, lab = fastloss.kmeans_inertia(x, c, sample_weight=w)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    assert_close(inertia, -km.score(x, sample_weight=w), rtol=rtol)
    np.testing.assert_array_equal(lab, km.predict(x))
