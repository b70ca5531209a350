"""The benchmark cases compare like with like.

Every public loss of fastloss has a case, and at a small size each case's fastloss call, its NumPy
formulation and its PyTorch and scikit-learn peers compute the same quantity (on the active backend:
CI runs this file with FASTLOSS_BACKEND=numpy too).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import fastloss
from fastloss import _bench
from fastloss._bench import common

# Public names that are not losses: backend and thread control, the build information.
INFRASTRUCTURE = {
    "info",
    "get_backend",
    "set_backend",
    "use_backend",
    "get_num_threads",
    "set_num_threads",
    "num_threads",
}
SMALL = 5000
TOL = {"float64": 1e-9, "float32": 1e-4}
# Peers that compute a known multiple of the case's quantity: scikit-learn's HalfSquaredError is half
# the squared error.
SCALE = {("mse", "sklearn"): 0.5}
# pairwise_distances is compared on the squared distances: NumPy's and PyTorch's BLAS expansion cancels on
# the diagonal (a distance of sqrt(eps |x|^2) where fastloss gives the exact 0).
TRANSFORM = {"pairwise_distances": np.square}


def public_losses() -> set[str]:
    """The callables of fastloss.__all__ other than the infrastructure; of the classes, Composite."""
    out = set()
    for name in fastloss.__all__:
        obj = getattr(fastloss, name)
        if name.startswith("__") or name in INFRASTRUCTURE or not callable(obj):
            continue
        if isinstance(obj, type) and name != "Composite":
            continue
        out.add(name)
    return out


@functools.cache
def case(name: str, dtype: str):
    return _bench.build(name, SMALL, dtype)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A torch peer sets torch's thread count; leave it as it was."""
    torch = common._torch()
    before = torch.get_num_threads() if torch is not None else None
    yield
    if torch is not None:
        torch.set_num_threads(before)


def parts(name: str, result) -> list[np.ndarray]:
    """What is compared, as float64 arrays: the value and every gradient of a gradient case; else the
    value (the first element of a tuple result, as kmeans_inertia's (inertia, labels))."""
    if isinstance(result, tuple) and not name.endswith("_grad"):
        result = result[0]
    out: list[np.ndarray] = []

    def walk(v):
        if isinstance(v, (tuple, list)):
            for u in v:
                walk(u)
            return
        if hasattr(v, "detach"):  # a torch tensor
            v = v.detach().numpy()
        a = np.asarray(v, dtype=np.float64)
        out.append(TRANSFORM.get(name, lambda z: z)(a))

    walk(result)
    return out


def assert_agree(name: str, dtype: str, got, ref, peer: str) -> None:
    g, r = parts(name, got), parts(name, ref)
    assert len(g) == len(r), f"{name} {dtype}: fastloss gives {len(g)} arrays, {peer} {len(r)}"
    tol = TOL[dtype]
    factor = SCALE.get((name, peer), 1.0)
    for k, (a, b) in enumerate(zip(g, r)):
        assert a.shape == b.shape, f"{name} {dtype} part {k}: shapes {a.shape} and {peer}'s {b.shape}"
        b = b / factor
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        err = float(np.max(np.abs(a - b))) if b.size else 0.0
        assert np.all(np.isfinite(a)), f"{name} {dtype} part {k}: fastloss gives non-finite values"
        assert err <= tol * max(scale, 1e-30), (
            f"{name} {dtype} part {k}: fastloss and {peer} differ by {err:.3g} (relative "
            f"{err / max(scale, 1e-300):.3g}, tolerance {tol:g})"
        )


# --------------------------------------------------------------------------------------------------
# Coverage and the case lists


def test_every_public_loss_has_a_case():
    assert INFRASTRUCTURE <= set(fastloss.__all__), "stale INFRASTRUCTURE list"
    covered = {f for fs in _bench.COVERS.values() for f in fs}
    missing = public_losses() - covered
    assert not missing, f"public losses without a benchmark case: {sorted(missing)}"
    unknown = covered - set(fastloss.__all__)
    assert not unknown, f"COVERS names functions fastloss does not export: {sorted(unknown)}"


def test_covers_lists_every_case_once():
    names = _bench.NAMES + _bench.EXTRA
    assert len(set(names)) == len(names), "a case is listed twice"
    assert set(_bench.COVERS) == set(names)


def test_unknown_case_raises():
    with pytest.raises(ValueError, match="unknown benchmark case"):
        _bench.build("no_such_loss", SMALL, "float64")


def test_pair_rows():
    """N x N cases: N = sqrt(n) rounded to a multiple of 64, at least 64."""
    assert [_bench.pair_rows(n) for n in (1000, 5000, 10**6, 10**7)] == [64, 64, 1024, 3136]


# --------------------------------------------------------------------------------------------------
# Agreement at a small size

DTYPES = ["float64", "float32"]
NAMES = list(_bench.NAMES)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_numpy_agrees(name, dtype):
    c = case(name, dtype)
    assert_agree(name, dtype, c.fastloss(), c.numpy(), "numpy")


@pytest.mark.parametrize("peer, module", [("torch", "torch"), ("sklearn", "sklearn")])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_peer_agrees(name, dtype, peer, module):
    pytest.importorskip(module)
    c = case(name, dtype)
    factory = getattr(c, peer)
    if factory is None:
        pytest.skip(f"no {peer} peer")
    assert_agree(name, dtype, c.fastloss(), factory(1)(), peer)


# --------------------------------------------------------------------------------------------------
# Tiny sizes (dice_3d, in EXTRA, has a fixed shape of 0.5 GB and is left out)


@pytest.mark.parametrize("name", NAMES)
def test_builds_at_tiny_n(name):
    c = _bench.build(name, 1000, "float32")
    assert c.name == name
    assert c.arrays and all(isinstance(a, np.ndarray) and a.size > 0 for a in c.arrays)
    assert c.nbytes > 0
    assert c.flops is None or c.flops > 0
    c.fastloss()
    c.numpy()
