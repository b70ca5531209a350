"""Sphinx configuration of fastloss's API reference (numpydoc docstrings; every example runs as a doctest).

Build: ``python -m sphinx -W -b html docs docs/_build/html``; doctests: ``python -m sphinx -W -b doctest docs
docs/_build/doctest``. The public functions' Parameters, Returns and Raises sections are written by
``fastloss._specs`` at import, so what is documented here is what the code checks.
"""

import fastloss

project = "fastloss"
author = "the fastloss developers"
release = version = fastloss.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.doctest", "numpydoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures carry them; numpydoc's sections say the rest
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
doctest_global_setup = "import numpy as np\nimport fastloss"
