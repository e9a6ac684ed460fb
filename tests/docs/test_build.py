"""The documentation site builds with Sphinx, warnings as errors (as CI builds it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.docs_build
def test_sphinx_builds_without_warnings(tmp_path):
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    cmd += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "index.html").is_file()
    interruptions = (out / "guides" / "interruptions.html").read_text()
    assert "<svg" in interruptions  # the state diagram, drawn from runengine.states
    assert (out / "api" / "engine.html").is_file()
