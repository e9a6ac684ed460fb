"""Sphinx configuration: MyST markdown pages, autodoc for the API reference.

Build: ``.venv/bin/python -m sphinx -W -b html docs docs/_build/html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "runengine"
author = "the runengine developers"
copyright = "2026, the runengine developers"

import runengine  # noqa: E402

release = version = runengine.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "statediagram",
    "plaindocstrings",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The API reference documents what each module exports; signatures keep their annotations
# as written (many name classes from other libraries).
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_numpy_docstring = True
napoleon_google_docstring = False

# Cross-references to classes of other libraries (ophyd, asyncio, ...) are not resolved: no
# intersphinx (the build must not need the network), so do not warn about them.
nitpicky = False
suppress_warnings = ["myst.xref_missing"]

html_theme = "alabaster"
html_title = f"runengine {release}"
html_theme_options = {"description": "A fast, interruption-correct run engine for bluesky plans"}
