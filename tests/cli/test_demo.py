"""``make demo`` runs a real scan over the IOCs, pauses, resumes and cleans up."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_the_demo_scans_over_the_iocs_pauses_resumes_stores_and_plots(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "runengine.cli.demo", "--points", "7", "--store", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "IOCs up and devices connected" in out
    assert "The engine is 'paused'. Resuming" in out
    assert "exit_status 'success'" in out
    assert "Events 7 of 7; seq_nums 1..7, no duplicates: True" in out
    assert "Peak at m1 = 0.00" in out  # the detector IOC's peak is at m1 = 0
    assert out.index("IOCs stopped.") < out.index("Done:")
    (run_file,) = tmp_path.glob("*.msgpack")
    assert f"Stored in {run_file}" in out
    (png,) = tmp_path.glob("scan_*.png")
    assert f"Plot saved to {png}" in out and png.read_bytes()[:4] == b"\x89PNG"
