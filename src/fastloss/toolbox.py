"""A toolbox of composite losses built from fastloss kernels: style, perceptual, temporal consistency,
graph matching, flow matching and DreamBooth prior preservation, and the Gram matrix behind style.

Each loss is a thin composition of the compiled elementwise kernels (:func:`fastloss.mse`,
:func:`fastloss.mae`) and, for the Gram matrix, NumPy's BLAS matrix product; so it runs on either
backend and follows the library's conventions: anything ``np.asarray`` accepts, float32/float64
computed natively, float16 as float32, integers and booleans as float64; identical shapes where two
arrays are compared (``ValueError`` naming both); reduced values are NumPy scalars of the compute dtype;
``return_grad=True`` returns ``(value, grads)`` with one gradient per differentiable array input, in
argument order (a tuple, or a single array when there is one). Inputs are never modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fastloss import _toolbox
from fastloss._specs import ReductionName, api

__all__ = [
    "flow_matching_loss",
    "gram_matrix",
    "graph_matching_loss",
    "perceptual_loss",
    "prior_preservation_loss",
    "style_loss",
    "temporal_consistency_loss",
]


# --------------------------------------------------------------------------------------------------
# Helpers


# --------------------------------------------------------------------------------------------------
# Style and perceptual losses


@api
def gram_matrix(features: ArrayLike, *, normalize: bool = True) -> np.ndarray:
    """Gram matrix of a feature map, ``G = F F^T / (C H W)`` (Gatys et al., 2016).

    ``F`` is the feature map with its spatial axes flattened: ``(C, H, W)`` becomes ``(C, H W)``; a
    ``(C, N)`` input is used as it is (normaliser ``C N``); a batch ``(B, C, H, W)`` gives a ``(B, C, C)``
    stack, each normalised by ``C H W``. ``G_ij = sum_k F_ik F_jk / (C H W)``: the normalisation of Gatys,
    Ecker and Bethge, "Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016), as in the
    PyTorch neural-style tutorial. With ``normalize=False`` it is the plain ``F F^T``.

    Computed by NumPy's BLAS matrix product in the compute dtype (float32 stays float32). With no spatial
    elements (``H W = 0``) the normalised matrix is ``0 / 0 = nan``. Not a loss: there is no
    ``return_grad`` (:func:`style_loss` differentiates through it).

    >>> import numpy as np
    >>> from fastloss.toolbox import gram_matrix
    >>> gram_matrix(np.array([[1.0, 2.0], [3.0, 4.0]]), normalize=False)
    array([[ 5., 11.],
           [11., 25.]])
    >>> gram_matrix(np.ones((2, 3, 3))).shape
    (2, 2)
    """
    return _toolbox.gram_matrix(features, normalize=normalize)


@api
def style_loss(features_a: ArrayLike, features_b: ArrayLike, *, return_grad: bool = False) -> Any:
    """Style loss: the mean squared difference of the two normalised Gram matrices.

    ``L = mean_{(b,) i, j} (G_a - G_b)_ij^2`` with ``G = F F^T / (C H W)`` (see :func:`gram_matrix`), the
    mean over the ``C x C`` (``x B`` for a batch) entries: the style loss of Gatys et al. (2016) in the
    form of the PyTorch neural-style tutorial (``mse_loss(gram(a), gram(b))``). Both feature maps must
    have the same shape, ``(C, N)``, ``(C, H, W)`` or ``(B, C, H, W)``; the feature extractor is the
    caller's.

    With ``return_grad=True`` returns ``(value, (grad_a, grad_b))``: by the chain rule through
    ``G = F F^T / K``, ``dL/dF = (dL/dG + dL/dG^T) F / K`` with ``dL/dG_a = 2 (G_a - G_b) / n_entries =
    -dL/dG_b``.

    >>> import numpy as np
    >>> from fastloss.toolbox import style_loss
    >>> a = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> float(style_loss(a, np.zeros((2, 2))))  # G_a = I / 4, so mean(G_a^2) = (2 / 16) / 4
    0.03125
    """
    return _toolbox.style_loss(features_a, features_b, return_grad=return_grad)


@api
def perceptual_loss(
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Perceptual (feature reconstruction) loss: the MSE between two feature maps of the same shape.

    ``l = (features_a - features_b)^2``, reduced by ``reduction`` (``"mean"``, ``"sum"`` or ``"none"``):
    the feature reconstruction loss of Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style
    Transfer and Super-Resolution" (ECCV 2016). The feature extractor (e.g. a VGG layer applied to the two
    images) is the caller's: pass its outputs here.

    With ``return_grad=True`` returns ``(value, (grad_a, grad_b))`` with ``grad_b = -grad_a`` (with
    ``"none"``, the elementwise derivatives).

    >>> from fastloss.toolbox import perceptual_loss
    >>> float(perceptual_loss([[1.0, 2.0]], [[1.0, 4.0]]))
    2.0
    """
    return _toolbox.perceptual_loss(features_a, features_b, reduction=reduction, return_grad=return_grad)


# --------------------------------------------------------------------------------------------------
# Temporal consistency


@api
def temporal_consistency_loss(frames: ArrayLike, *, p: int = 1, return_grad: bool = False) -> Any:
    """Temporal consistency of a sequence of frames: the mean size of the frame-to-frame change.

    ``L = 1/(T-1) sum_t mean |y_{t+1} - y_t|^p`` for ``frames`` of shape ``(T, ...)`` (frame ``t`` is
    ``frames[t]``), ``T >= 2``, ``p`` 1 (mean absolute difference) or 2 (mean squared difference).
    Every frame pair has the same number of elements, so this equals the mean over all elements of the
    ``T - 1`` difference frames, which is how it is computed (one :func:`fastloss.mae` /
    :func:`fastloss.mse` pass over ``frames[1:]`` and ``frames[:-1]``). This is the unwarped temporal
    loss of video style transfer and video super-resolution (no optical flow: warp the frames yourself
    first if you need one).

    With ``return_grad=True`` returns ``(value, grad)``, ``grad`` of ``frames``' shape: frame ``t``
    receives ``+dl`` from the pair ``(t-1, t)`` and ``-dl`` from ``(t, t+1)``; for ``p = 1`` the
    derivative of ``|0|`` is 0 (the subgradient).

    >>> import numpy as np
    >>> from fastloss.toolbox import temporal_consistency_loss
    >>> frames = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    >>> float(temporal_consistency_loss(frames))  # mean of |1|, |0|, |0|, |2|
    0.75
    >>> float(temporal_consistency_loss(frames, p=2))
    1.25
    """
    return _toolbox.temporal_consistency_loss(frames, p=p, return_grad=return_grad)


# --------------------------------------------------------------------------------------------------
# Graph matching


@api
def graph_matching_loss(a1: ArrayLike, a2: ArrayLike, perm: ArrayLike, *, return_grad: bool = False) -> Any:
    """Graph matching loss ``||A1 - P A2 P^T||_F^2`` for a node correspondence ``P``.

    ``a1`` and ``a2`` are square adjacency (or weight) matrices of the same shape ``(n, n)``. ``perm``
    is the correspondence, either

    - an ``(n, n)`` permutation matrix ``P`` (0/1 entries, exactly one 1 in each row and column), or
    - an integer index vector ``pi`` of length ``n``, a permutation of ``0..n-1``, with
      ``P[i, pi[i]] = 1``, so that ``(P A2 P^T)_ij = A2[pi[i], pi[j]]``: node ``i`` of graph 1 is
      matched to node ``pi[i]`` of graph 2.

    The value is the sum (no mean) of the squared entries of ``A1 - P A2 P^T``: the quadratic-assignment
    (Koopmans-Beckmann) objective of graph matching, e.g. Umeyama (1988), as a sum of
    :func:`fastloss.mse` terms with ``reduction="sum"``. Anything else as ``perm`` raises ``ValueError``.

    With ``return_grad=True`` returns ``(value, (grad_a1, grad_a2))``: ``grad_a1 = 2 R`` with
    ``R = A1 - P A2 P^T`` and ``grad_a2 = -2 P^T R P``. ``perm`` is discrete: no gradient.

    >>> import numpy as np
    >>> from fastloss.toolbox import graph_matching_loss
    >>> a2 = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # path 0-1-2
    >>> a1 = a2[np.ix_([1, 0, 2], [1, 0, 2])]                             # path 1-0-2
    >>> float(graph_matching_loss(a1, a2, [1, 0, 2]))
    0.0
    >>> float(graph_matching_loss(a1, a2, np.eye(3)))
    4.0
    """
    return _toolbox.graph_matching_loss(a1, a2, perm, return_grad=return_grad)


# --------------------------------------------------------------------------------------------------
# Generative-model training losses


@api
def flow_matching_loss(
    v_pred: ArrayLike,
    x0: ArrayLike,
    x1: ArrayLike,
    *,
    reduction: ReductionName = "mean",
    return_grad: bool = False,
) -> Any:
    """Conditional flow matching loss with the straight (optimal-transport) path.

    For samples along axis 0, ``l_i = sum_{other axes} (v_pred_i - (x1_i - x0_i))^2``: the regression of
    the predicted velocity ``v_pred = v_theta(x_t, t)`` at ``x_t = (1 - t) x0 + t x1`` onto the
    conditional target velocity ``x1 - x0`` of the linear path (Lipman et al., "Flow Matching for
    Generative Modeling", ICLR 2023, with ``sigma_min = 0``; Liu et al.'s rectified flow). ``x0`` is the
    noise and ``x1`` the data sample; evaluating ``v_theta`` is the caller's. All three arrays have the
    same shape ``(B, ...)``.

    ``reduction``: ``"mean"`` (default) averages ``l_i`` over the ``B`` samples (not over elements),
    ``"sum"`` adds them, ``"none"`` returns the ``(B,)`` vector.

    With ``return_grad=True`` returns ``(value, grad)``, the gradient with respect to ``v_pred`` only:
    ``x0`` and ``x1`` are data, not differentiated. ``grad = 2 (v_pred - (x1 - x0))``, divided by ``B``
    for ``"mean"`` (with ``"none"``, the gradient of the sum of the outputs).

    >>> import numpy as np
    >>> from fastloss.toolbox import flow_matching_loss
    >>> x0, x1 = np.zeros((2, 2)), np.array([[1.0, 1.0], [2.0, 0.0]])
    >>> flow_matching_loss(np.ones((2, 2)), x0, x1, reduction="none")
    array([0., 2.])
    >>> float(flow_matching_loss(np.ones((2, 2)), x0, x1))
    1.0
    """
    return _toolbox.flow_matching_loss(v_pred, x0, x1, reduction=reduction, return_grad=return_grad)


@api
def prior_preservation_loss(
    pred: ArrayLike,
    target: ArrayLike,
    prior_pred: ArrayLike,
    prior_target: ArrayLike,
    *,
    prior_weight: float = 1.0,
    return_grad: bool = False,
) -> Any:
    """DreamBooth prior preservation: ``mse(pred, target) + prior_weight * mse(prior_pred, prior_target)``.

    The instance term fits the subject images; the prior term keeps the model's outputs on images of the
    class prior (generated by the frozen model) unchanged, against language drift and overfitting (Ruiz
    et al., "DreamBooth: Fine Tuning Text-to-Image Diffusion Models for Subject-Driven Generation", CVPR
    2023, as in the diffusers ``train_dreambooth.py`` script). Both MSEs are means over their elements;
    ``pred``/``target`` and ``prior_pred``/``prior_target`` must each have one shape (the two pairs may
    differ). ``prior_weight`` (lambda) must be >= 0.

    With ``return_grad=True`` returns ``(value, (grad_pred, grad_prior_pred))``: the targets are not
    differentiated.

    >>> from fastloss.toolbox import prior_preservation_loss
    >>> float(prior_preservation_loss([1.0, 3.0], [1.0, 1.0], [2.0], [0.0], prior_weight=0.5))
    4.0
    """
    return _toolbox.prior_preservation_loss(
        pred, target, prior_pred, prior_target, prior_weight=prior_weight, return_grad=return_grad
    )
