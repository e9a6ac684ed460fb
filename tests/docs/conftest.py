"""Markers of the documentation tests (registered here: they belong to this folder)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "docs_build: builds the documentation site with Sphinx -W (deselect with "
        "-m 'not docs_build')",
    )
