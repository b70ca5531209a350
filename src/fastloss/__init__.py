"""fastloss: fast, exact machine-learning losses and their gradients on multicore CPUs."""

from fastloss._backend import (
    get_backend,
    get_num_threads,
    num_threads,
    set_backend,
    set_num_threads,
    use_backend,
)
from fastloss._info import __version__, info
from fastloss.activations import log_softmax, logsumexp, sigmoid, softmax
from fastloss.classification import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    hinge,
    kl_div,
    multiclass_hinge,
    nll_loss,
    poly1_cross_entropy,
    sigmoid_focal_loss,
    softmax_focal_loss,
)
from fastloss.metric import margin_ranking_loss
from fastloss.regression import huber, log_cosh, mae, mse, pinball, pseudo_huber, rmse, smooth_l1

__all__ = [
    "__version__",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "get_backend",
    "get_num_threads",
    "hinge",
    "huber",
    "info",
    "kl_div",
    "log_cosh",
    "log_softmax",
    "logsumexp",
    "mae",
    "margin_ranking_loss",
    "mse",
    "multiclass_hinge",
    "nll_loss",
    "num_threads",
    "pinball",
    "poly1_cross_entropy",
    "pseudo_huber",
    "rmse",
    "set_backend",
    "set_num_threads",
    "sigmoid",
    "sigmoid_focal_loss",
    "smooth_l1",
    "softmax",
    "softmax_focal_loss",
    "use_backend",
]
