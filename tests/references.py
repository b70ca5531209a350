"""Where each public function is checked against an independent reference (a closed form, a NumPy
formulation written for the test, or a peer library): the test that does it, as ``file::test``.

``test_specs.py`` fails for a spec without an entry here, and for an entry naming a test that does not
exist, so a new loss cannot land without its reference test. The elementwise and metric-learning
entries are read from those families' case tables (``conftest.CASES``, ``_pairwise.CASES``): a case
there is the reference check.
"""

from __future__ import annotations

ELEMENTWISE = "test_elementwise_values.py::test_matches_closed_form"  # every conftest.CASES entry
# every _pairwise.CASES entry
METRIC = "test_metric_losses.py::test_values_and_gradients_match_numpy_reference"

REFERENCES: dict[str, str] = {
    "rmse": "test_elementwise_values.py::test_rmse_closed_form",
    "kl_div": "test_classwise_losses.py::test_kl_values_numpy_ref",
    "cross_entropy": "test_classwise.py::test_cross_entropy_matches_numpy_formulation",
    "nll_loss": "test_classwise.py::test_nll_loss_matches_numpy_formulation",
    "softmax_focal_loss": "test_classwise_losses.py::test_focal_values_numpy_ref",
    "poly1_cross_entropy": "test_classwise_losses.py::test_poly1_values_numpy_ref",
    "multiclass_hinge": "test_classwise_losses.py::test_hinge_values_numpy_ref",
    "softmax": "test_activations.py::test_activations_match_scipy",
    "log_softmax": "test_activations.py::test_activations_match_scipy",
    "logsumexp": "test_activations.py::test_activations_match_scipy",
    "sigmoid": "test_activations.py::test_activations_match_scipy",
    "pairwise_distances": "test_pairwise_distances.py::test_pairwise_distances_matches_reference",
    "dice_loss": "test_segmentation.py::test_all_options_match_reference",
    "jaccard_loss": "test_segmentation.py::test_all_options_match_reference",
    "tversky_loss": "test_segmentation.py::test_all_options_match_reference",
    "l1_penalty": "test_composite.py::test_penalty_values_and_gradients",
    "l2_penalty": "test_composite.py::test_penalty_values_and_gradients",
    "gram_matrix": "test_toolbox.py::test_gram_matrix",
    "style_loss": "test_toolbox.py::test_style_loss",
    "perceptual_loss": "test_toolbox.py::test_perceptual_loss",
    "temporal_consistency_loss": "test_toolbox.py::test_temporal_consistency_loss",
    "graph_matching_loss": "test_toolbox.py::test_graph_matching_loss",
    "flow_matching_loss": "test_toolbox.py::test_flow_matching_loss",
    "prior_preservation_loss": "test_toolbox.py::test_prior_preservation_loss",
}
