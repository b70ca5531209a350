"""The docstring examples of the public modules, run with doctest on both backends."""

from __future__ import annotations

import doctest
import io
from contextlib import redirect_stdout

import pytest

import fastloss._info
import fastloss.activations
import fastloss.classification
import fastloss.composite
import fastloss.metric
import fastloss.regression
import fastloss.segmentation
import fastloss.toolbox

MODULES = [
    fastloss.regression,
    fastloss.classification,
    fastloss.metric,
    fastloss.activations,
    fastloss.segmentation,
    fastloss.composite,
    fastloss.toolbox,
    fastloss._info,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_doctests(backend, module):
    report = io.StringIO()
    with redirect_stdout(report):  # doctest prints its failure reports to stdout
        result = doctest.testmod(module, report=True, verbose=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module.__name__} has no doctests"
    assert result.failed == 0, report.getvalue()
