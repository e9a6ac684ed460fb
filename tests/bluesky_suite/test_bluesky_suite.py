"""bluesky's own RunEngine tests on our engine: no failure that is not a listed deviation.

Slow (minutes): deselected from the default run by the ``bluesky_suite`` marker (setup.cfg
addopts); ``make bluesky-suite`` runs it.
"""

from __future__ import annotations

import pytest

from tests.bluesky_suite.run import format_report, run_suite


@pytest.mark.bluesky_suite
@pytest.mark.timeout(3600)
def test_no_unlisted_failures(capsys: pytest.CaptureFixture[str]) -> None:
    """Every failure on ours fails on bluesky's engine too or is in deviations.json."""
    report = run_suite(engine="ours")
    with capsys.disabled():
        print(f"\n{format_report(report)}")
    assert report.classification is not None
    assert not report.classification.regressions, "failing on ours only, not listed"
