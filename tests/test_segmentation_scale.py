"""Segmentation at scale and against the peer: the backends' primitives and their formulas, MONAI (values
and torch autograd), bitwise identical across threads, many channels, batch chunks, concurrent Python
threads, the backends agree, hypothesis properties."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _segmentation import (
    ACT_IDS,
    ACTIVATIONS,
    DEFAULTS,
    LOSSES,
    SHAPES,
    TARGETS,
    call,
    check_against_reference,
    is_labels,
    kind_variants,
    make_problem,
    one_hot,
    ref_activation,
)
from conftest import (
    DTYPE_IDS,
    DTYPES,
    HAVE_CORE,
    LAYOUTS,
    REDUCTIONS,
    assert_close,
    f64,
    hypothesis_settings,
    needs_core,
    optional_module,
    relayout,
    run_concurrently,
    scale_of,
)
from conftest import (
    seed_of as _seed,
)

import fastloss
from fastloss import _backend

# ==================================================================================================
# 5. The backend primitives (exact signatures, both backends)


def test_backends_expose_the_primitives():
    from fastloss import _numpy

    for name in ("overlap_sums", "overlap_grad"):
        assert callable(getattr(_numpy, name)), name
        if HAVE_CORE:
            assert callable(getattr(_backend._core, name)), name


def _prim_ref_sums(x, g, activation, squared):
    p = ref_activation(f64(x), [None, "sigmoid", "softmax"][activation])
    inter = np.sum(p * g, axis=2)
    P = np.sum(p * p if squared else p, axis=2)
    G = np.sum(g * g if squared else g, axis=2)
    return np.stack([inter, P, G], axis=-1), p


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("activation", [0, 1, 2], ids=ACT_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_primitives_match_formulas(backend, dtype, activation, squared):
    k = _backend.kernels()
    th = _backend.thread_arg()
    rng = np.random.default_rng(_seed("prim", activation, squared))
    B, C, S = 3, 4, 23
    x = (rng.uniform(0, 1, (B, C, S)) if activation == 0 else rng.normal(0, 2, (B, C, S))).astype(dtype)
    labels = rng.integers(0, C, (B, S)).astype(np.int64)
    dense = rng.uniform(0, 1, (B, C, S)).astype(dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for target, lab, g in ((dense, None, f64(dense)), (None, labels, one_hot(labels, C))):
        sums, first_bad = k.overlap_sums(x, target, lab, activation, squared, th)
        sums = np.asarray(sums)
        assert first_bad == -1
        assert sums.shape == (B, C, 3) and sums.dtype == np.float64
        want, p = _prim_ref_sums(x, g, activation, squared)
        assert_close(sums, want, rtol, 1e-12)
        ci, cp = rng.normal(0, 1, (B, C)), rng.normal(0, 1, (B, C))
        grad = k.overlap_grad(x, target, lab, activation, squared, ci, cp, th)
        assert grad.shape == (B, C, S) and grad.dtype == dtype
        dp = ci[..., None] * g + cp[..., None] * (2.0 * p if squared else 1.0)
        if activation == 1:
            want_g = dp * p * (1 - p)
        elif activation == 2:
            want_g = p * (dp - np.sum(dp * p, axis=1, keepdims=True))
        else:
            want_g = dp
        assert_close(grad, want_g, rtol, rtol * scale_of(want_g))
    # the first bad label in C order, as a flat index b * S + s
    bad = labels.copy()
    bad[1, 7], bad[1, 9], bad[2, 0] = C, -1, C + 5
    _, first_bad = k.overlap_sums(x, None, bad, activation, squared, th)
    assert first_bad == 1 * S + 7
    bad[0, 22] = -3
    _, first_bad = k.overlap_sums(x, None, bad, activation, squared, th)
    assert first_bad == 22
    # dense targets are not checked
    _, first_bad = k.overlap_sums(x, dense * 7 - 3, None, activation, squared, th)
    assert first_bad == -1
    # S = 0 and B = 0
    for shape in ((B, C, 0), (0, C, S)):
        z = np.zeros(shape, dtype)
        sums, first_bad = k.overlap_sums(
            z, None, np.zeros((shape[0], shape[2]), np.int64), activation, squared, th
        )
        assert np.asarray(sums).shape == shape[:2] + (3,) and first_bad == -1
        np.testing.assert_array_equal(sums, 0.0)


# ==================================================================================================
# 6. External references: MONAI (when importable), MONAI's forward in PyTorch with autograd


def test_matches_monai(backend):
    monai = optional_module("monai")
    torch = optional_module("torch")
    if monai is None or torch is None:
        pytest.skip("monai is not importable")
    from monai.losses import DiceLoss, TverskyLoss

    for kind in LOSSES:
        for shape in SHAPES:
            C = shape[1]
            for activation in ACTIVATIONS:
                for target_kind in TARGETS:
                    # MONAI ignores softmax, to_onehot_y and include_background=False for C = 1 (warning)
                    if C == 1 and (activation == "softmax" or target_kind == "labels"):
                        continue
                    x, t = make_problem(
                        _seed("monai", kind, shape, activation, target_kind), shape, activation, target_kind
                    )
                    tt = torch.as_tensor(t[:, None] if target_kind == "labels" else t)
                    for batch in (False, True):
                        for include_background in (True,) if C == 1 else (True, False):
                            for variant in kind_variants(kind):
                                for reduction in REDUCTIONS:
                                    common = {
                                        "include_background": include_background,
                                        "to_onehot_y": target_kind == "labels",
                                        "sigmoid": activation == "sigmoid",
                                        "softmax": activation == "softmax",
                                        "reduction": reduction,
                                        "smooth_nr": 1e-4,
                                        "smooth_dr": 2e-4,
                                        "batch": batch,
                                    }
                                    if kind == "tversky":
                                        m = TverskyLoss(
                                            alpha=variant["alpha"], beta=variant["beta"], **common
                                        )
                                    else:
                                        m = DiceLoss(
                                            squared_pred=variant["squared"],
                                            jaccard=kind == "jaccard",
                                            **common,
                                        )
                                    want = m(torch.as_tensor(x), tt).detach().numpy()
                                    kw = {
                                        "activation": activation,
                                        "batch": batch,
                                        "include_background": include_background,
                                        "reduction": reduction,
                                        "smooth_nr": 1e-4,
                                        "smooth_dr": 2e-4,
                                        **variant,
                                    }
                                    got = call(kind, x, t, **kw)
                                    if reduction == "none":
                                        want = want.reshape(np.shape(got))
                                    assert_close(got, want, 1e-10, 1e-12, what=f"{kind} {shape} {kw}")


def _torch_monai_forward(torch, kind, x, target, labels, o):
    """MONAI's DiceLoss / TverskyLoss forward, transcribed (C > 1)."""
    inp = x
    if o["activation"] == "sigmoid":
        inp = torch.sigmoid(inp)
    elif o["activation"] == "softmax":
        inp = torch.softmax(inp, 1)
    if labels:
        target = torch.nn.functional.one_hot(target.long(), inp.shape[1]).movedim(-1, 1).to(inp.dtype)
    if not o["include_background"]:
        target, inp = target[:, 1:], inp[:, 1:]
    axes = list(range(2, inp.ndim))
    if o["batch"]:
        axes = [0] + axes
    nr, dr = o["smooth_nr"], o["smooth_dr"]
    if kind == "tversky":
        tp = torch.sum(inp * target, axes)
        fp = o["alpha"] * torch.sum(inp * (1 - target), axes)
        fn = o["beta"] * torch.sum((1 - inp) * target, axes)
        f = 1.0 - (tp + nr) / (tp + fp + fn + dr)
    else:
        inter = torch.sum(target * inp, axes)
        if o["squared"]:
            ground, pred = torch.sum(target**2, axes), torch.sum(inp**2, axes)
        else:
            ground, pred = torch.sum(target, axes), torch.sum(inp, axes)
        den = ground + pred
        if kind == "jaccard":
            den = 2.0 * (den - inter)
        f = 1.0 - (2.0 * inter + nr) / (den + dr)
    return {"mean": torch.mean, "sum": torch.sum, "none": lambda z: z}[o["reduction"]](f)


@pytest.mark.parametrize("kind", LOSSES)
def test_matches_monai_forward_in_torch_autograd(backend, kind):
    torch = optional_module("torch")
    if torch is None:
        pytest.skip("torch is not importable")
    i = 0
    for activation in ACTIVATIONS:
        for target_kind in TARGETS:
            for batch in (False, True):
                for include_background in (True, False):
                    shape = [(2, 3, 9, 10), (3, 4, 4, 5, 3), (2, 2, 33)][i % 3]
                    x, t = make_problem(_seed("torch", kind, i), shape, activation, target_kind)
                    o = {
                        **DEFAULTS,
                        **kind_variants(kind)[i % len(kind_variants(kind))],
                        "activation": activation,
                        "batch": batch,
                        "include_background": include_background,
                        "reduction": REDUCTIONS[i % 3],
                        "smooth_nr": [1e-5, 0.1, 0.0][i % 3],
                        "smooth_dr": [1e-5, 0.3, 1e-3][i % 3],
                    }
                    i += 1
                    xt = torch.tensor(x, requires_grad=True)
                    f = _torch_monai_forward(torch, kind, xt, torch.as_tensor(t), target_kind == "labels", o)
                    f.sum().backward()
                    v, g = call(kind, x, t, return_grad=True, **{k: o[k] for k in o})
                    what = f"{shape} {o}"
                    want = f.detach().numpy()
                    assert_close(v, want, 1e-10, 1e-12, what=what)
                    wg = xt.grad.numpy()
                    assert_close(g, wg, 1e-9, 1e-11 * scale_of(wg), what=what)


# ==================================================================================================
# 7. Backends and threads


def _big(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, (4, 3, 64, 64)).astype(dtype)
    labels = rng.integers(0, 3, (4, 64, 64))
    dense = np.where(rng.random(x.shape) < 0.3, rng.random(x.shape), one_hot(labels, 3)).astype(dtype)
    return x, labels, dense


def _bits(result):
    v, g = result
    return np.asarray(v).tobytes(), g.tobytes()


@pytest.mark.cpp_only
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bitwise_identical_across_threads(core, dtype):
    x, labels, dense = _big(_seed("threads"), dtype)
    xp = np.clip(x * 0.25 + 0.5, 0.0, 1.0)  # probabilities for activation None
    with fastloss.use_backend("cpp"):
        for kind in LOSSES:
            for activation in ACTIVATIONS:
                xx = xp if activation is None else x
                for target_kind, t in (("dense", dense), ("labels", labels)):
                    for j, (batch, red) in enumerate([(False, "none"), (True, "mean")]):
                        kw = {
                            "activation": activation,
                            "batch": batch,
                            "reduction": red,
                            "include_background": j == 0,
                            **kind_variants(kind)[j],
                        }
                        runs = {}
                        for n in (1, 2, 3):
                            with fastloss.num_threads(n):
                                runs[n] = _bits(call(kind, xx, t, return_grad=True, **kw))
                        what = f"{kind} {target_kind} {kw}"
                        assert runs[1] == runs[2], f"{what}: 1 vs 2 threads"
                        assert runs[1] == runs[3], f"{what}: 1 vs 3 threads"
        # the label check reports the same first bad position whatever the thread count
        bad = labels.copy()
        bad[2, 40, 7], bad[3, 1, 1] = 9, -1
        msgs = set()
        for n in (1, 2, 3):
            with fastloss.num_threads(n), pytest.raises(ValueError) as e:
                fastloss.dice_loss(x, bad, activation="softmax")
            msgs.add(str(e.value))
        assert len(msgs) == 1, msgs


@pytest.mark.parametrize(
    "shape", [(2, 3000, 5), (3, 2049, 300), (5, 4, 1), (2, 70, 3)], ids=["C3000", "C2049", "S1", "C70_S3"]
)
def test_many_channels_and_short_maps(backend, shape):
    """Thousands of channels (a softmax unit of few positions, its buffer near 4 MiB) and maps shorter than a
    unit (one unit per batch item, its sums written in place): the reference, bitwise across threads."""
    for target_kind in TARGETS:
        x, t = make_problem(_seed("wide", shape, target_kind), shape, "softmax", target_kind)
        opts = {"activation": "softmax", "batch": False, "include_background": True, "reduction": "mean"}
        check_against_reference("dice", x, t, opts, what=f"{shape} {target_kind}")
        runs = []
        for n in (1, 2, 3):
            with fastloss.num_threads(n):
                runs.append(
                    _bits(fastloss.dice_loss(x, t, activation="softmax", reduction="none", return_grad=True))
                )
        assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("kind", LOSSES)
def test_batch_chunks_same_as_whole(backend, kind, monkeypatch):
    """Many (batch, channel) pairs go through the kernels a chunk of batch items at a time (bounded
    memory): the same values and gradients as in one piece, and a bad label in a later chunk is reported
    at its own position."""
    from fastloss import _overlap

    x, t = make_problem(_seed("chunks", kind), (7, 5, 3), "softmax", "labels")
    whole = {}
    cases = [(bt, red, bg) for bt in (False, True) for red in REDUCTIONS for bg in (True, False)]
    for bt, red, bg in cases:
        kw = {"activation": "softmax", "batch": bt, "reduction": red, "include_background": bg}
        whole[bt, red, bg] = call(kind, x, t, return_grad=True, **kw)
    monkeypatch.setattr(_overlap, "_CHUNK_PAIRS", 10)  # two batch items per chunk
    for bt, red, bg in cases:
        kw = {"activation": "softmax", "batch": bt, "reduction": red, "include_background": bg}
        v, g = call(kind, x, t, return_grad=True, **kw)
        w_v, w_g = whole[bt, red, bg]
        assert np.shape(v) == np.shape(w_v) and g.shape == w_g.shape
        np.testing.assert_allclose(v, w_v, rtol=1e-14, atol=1e-15, err_msg=f"{kw}")
        np.testing.assert_allclose(g, w_g, rtol=1e-13, atol=1e-15, err_msg=f"{kw}")
    bad = t.copy()
    bad[5, 2] = 99
    with pytest.raises(ValueError, match=re.escape("found target[5, 2] = 99")):
        call(kind, x, bad)


def test_overlap_grad_out_is_checked(backend):
    """overlap_grad's out (a slice of the caller's gradient): written in place when it fits, refused with
    a TypeError when its dtype or shape does not match x."""
    from fastloss import _backend

    k = _backend.kernels()
    rng = np.random.default_rng(25)
    x, lab = rng.normal(size=(2, 3, 5)), rng.integers(0, 3, (2, 5))
    ci, cp = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    want = k.overlap_grad(x, None, lab, 2, False, ci, cp, 0)
    out = np.full_like(x, np.nan)
    k.overlap_grad(x, None, lab, 2, False, ci, cp, 0, out)
    np.testing.assert_array_equal(out, want)
    for bad in (np.empty((2, 3, 4)), np.empty((2, 3, 5), np.float32)):
        with pytest.raises(TypeError, match="out"):
            k.overlap_grad(x, None, lab, 2, False, ci, cp, 0, bad)


@pytest.mark.cpp_only
def test_two_python_threads_get_correct_results(core):
    x, labels, dense = _big(_seed("python-threads"))
    jobs = {
        "dice": lambda: _bits(fastloss.dice_loss(x, labels, activation="softmax", return_grad=True)),
        "jaccard": lambda: _bits(fastloss.jaccard_loss(x, dense, activation="sigmoid", return_grad=True)),
        "tversky": lambda: _bits(fastloss.tversky_loss(x, labels, alpha=0.3, beta=0.7, return_grad=True)),
    }
    with fastloss.use_backend("cpp"):
        want = {k: fn() for k, fn in jobs.items()}
        results = run_concurrently(jobs)
    for name, runs in results.items():
        assert len(runs) == 3 and all(r == want[name] for r in runs), name


@needs_core
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_backends_agree_at_scale(dtype):
    x, labels, dense = _big(_seed("agree"), dtype)
    x, labels, dense = x[:3, :, :40], labels[:3, :40], dense[:3, :, :40]
    for kind in LOSSES:
        for activation in ACTIVATIONS:
            for t in (dense, labels):
                kw = {"activation": activation, "reduction": "none", "include_background": False}
                with fastloss.use_backend("cpp"):
                    c = call(kind, x, t, return_grad=True, **kw)
                with fastloss.use_backend("numpy"):
                    n = call(kind, x, t, return_grad=True, **kw)
                rtol = 1e-5 if dtype == np.float32 else 1e-11
                assert c[0].dtype == n[0].dtype == dtype and c[1].dtype == n[1].dtype == dtype
                assert_close(c[0], n[0], rtol, 1e-6 if dtype == np.float32 else 1e-13)
                assert_close(c[1], n[1], rtol, rtol * scale_of(n[1]))


@pytest.mark.parametrize("kind", LOSSES)
def test_values_at_scale_match_reference(backend, kind):
    """Many blocks on both backends (the other reference tests are small): B = 24, S = 4096."""
    rng = np.random.default_rng(_seed("scale", kind))
    x = rng.normal(0.0, 2.0, (24, 3, 64, 64))
    labels = rng.integers(0, 3, (24, 64, 64))
    dense = rng.uniform(0.0, 1.0, x.shape)
    for t in (labels, dense):
        for activation in ACTIVATIONS:
            check_against_reference(
                kind, x, t, {"activation": activation, "reduction": "none"}, what=str(activation)
            )


# ==================================================================================================
# 8. Properties (hypothesis)


hypothesis = optional_module("hypothesis")


if hypothesis is None:

    def test_properties_need_hypothesis():
        pytest.skip("hypothesis is not importable")

else:
    st = hypothesis.strategies
    SETTINGS = hypothesis_settings(20)

    @st.composite
    def problems(draw):
        kind = draw(st.sampled_from(LOSSES))
        batch = draw(st.booleans())
        B = draw(st.integers(1 if batch else 0, 3))
        C = draw(st.integers(1, 4))
        spatial = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=3)))
        shape = (B, C) + spatial
        dtype = draw(st.sampled_from(DTYPES))
        activation = draw(st.sampled_from(ACTIVATIONS))
        target_kind = draw(st.sampled_from(TARGETS))
        opts = {
            "activation": activation,
            "batch": batch,
            "include_background": draw(st.booleans()),
            "reduction": draw(st.sampled_from(REDUCTIONS)),
            "smooth_nr": draw(st.sampled_from([0.0, 1e-5, 0.5])),
            "smooth_dr": draw(st.sampled_from([1e-5, 1e-3, 1.0])),
        }
        if kind == "tversky":
            opts["alpha"] = draw(st.floats(0.0, 2.0))
            opts["beta"] = draw(st.floats(0.0, 2.0))
        else:
            opts["squared"] = draw(st.booleans())
        layout = draw(st.sampled_from(["c"] + LAYOUTS))
        seed = draw(st.integers(0, 2**32 - 1))
        x, t = make_problem(seed, shape, activation, target_kind, dtype)
        return kind, x, t, opts, layout

    @SETTINGS
    @hypothesis.given(problem=problems())
    def test_property_matches_reference(backend, problem):
        kind, x, t, opts, layout = problem
        xl, tl = (x, t) if layout == "c" else (relayout(x, layout), relayout(t, layout))
        check_against_reference(kind, xl, tl, opts, what=f"{kind} {x.shape} {x.dtype} {opts} {layout}")

    @SETTINGS
    @hypothesis.given(problem=problems())
    def test_property_labels_equal_one_hot_and_reductions(backend, problem):
        kind, x, t, opts, _ = problem
        C = x.shape[1]
        labels = t if is_labels(x, t) else np.argmax(t, axis=1)
        dense = one_hot(labels, C, x.dtype)
        opts = {**opts, "reduction": "none"}
        vl, gl = call(kind, x, labels, return_grad=True, **opts)
        vd, gd = call(kind, x, dense, return_grad=True, **opts)
        rtol = 3e-7 if x.dtype == np.float32 else 1e-12
        assert_close(vl, vd, rtol, 1e-30)
        assert_close(gl, gd, rtol, 0.1 * rtol * max(scale_of(gd), 1e-30))
        s, gs = call(kind, x, labels, return_grad=True, **{**opts, "reduction": "sum"})
        m = call(kind, x, labels, **{**opts, "reduction": "mean"})
        tol = 1e-5 if x.dtype == np.float32 else 1e-12
        assert float(s) == pytest.approx(float(np.sum(f64(vl))), rel=tol, abs=tol)
        if vl.size:
            assert float(m) == pytest.approx(float(np.mean(f64(vl))), rel=tol, abs=tol)
        else:
            assert np.isnan(m) and s == 0
        assert_close(gs, gl, rtol, 0.1 * rtol * max(scale_of(gl), 1e-30))
