"""The harness's own parsing and sorting, without running bluesky's suite (fast)."""

from __future__ import annotations

from pathlib import Path

from tests.bluesky_suite.deviations import Deviation, classify, load_deviations
from tests.bluesky_suite.run import normalize_file
from tests.bluesky_suite.suite import Outcome, node_id, parse_junit, parse_verbose_log

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="test_a" name="test_ok[False]" file="test_a.py" line="1" time="0.1" />
<testcase time="0.002" />
<testcase classname="test_a" name="test_bad" file="test_a.py" line="2" time="0.1">
  <failure message="AssertionError: 1 != 2&#10;more">traceback</failure></testcase>
<testcase classname="test_a" name="test_bad" file="test_a.py" line="2" time="0.1">
  <error message="failed on teardown">teardown</error></testcase>
<testcase classname="test_a.TestK" name="test_m" file="test_a.py" line="3" time="0.1">
  <skipped type="pytest.skip" message="no zmq">why</skipped></testcase>
</testsuite></testsuites>"""


def test_parse_junit_keeps_the_worst_entry_per_test(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    outcomes = parse_junit(path, "test_a.py")
    assert {n: o.status for n, o in outcomes.items()} == {
        "test_a.py::test_ok[False]": "passed",
        "test_a.py::test_bad": "failed",
        "test_a.py::TestK::test_m": "skipped",
    }
    assert outcomes["test_a.py::test_bad"].message == "AssertionError: 1 != 2"


def test_node_id_of_a_collection_error() -> None:
    assert node_id("test_zmq.py", "", "test_zmq") == "test_zmq.py"


def test_verbose_log_finds_the_test_that_never_ended() -> None:
    text = (
        "../x/bluesky/tests/test_a.py::test_one[True] PASSED [ 50%]\n"
        "../x/bluesky/tests/test_a.py::test_two[True] some output\n"
    )
    outcomes, ended_in = parse_verbose_log(text)
    assert {n: o.status for n, o in outcomes.items()} == {"test_a.py::test_one[True]": "passed"}
    assert ended_in == "test_a.py::test_two[True]"


def test_deviation_patterns() -> None:
    entry = Deviation("test_a.py::test_panic", "panic", "why")
    assert entry.matches("test_a.py::test_panic[False]")
    assert not entry.matches("test_a.py::test_panic_trap[False]")
    assert Deviation("test_a.py::test_panic*", "p", "w").matches("test_a.py::test_panic_trap[1]")


def test_classify_sorts_failures_and_finds_stale_entries() -> None:
    def o(node: str, status: str) -> Outcome:
        return Outcome(node, status, f"{status} message")

    ours = {
        n: o(n, s)
        for n, s in [
            ("f.py::env", "error"),
            ("f.py::dev", "failed"),
            ("f.py::new", "failed"),
            ("f.py::fixed", "passed"),
        ]
    }
    theirs = {"f.py::env": o("f.py::env", "error"), "f.py::fixed": o("f.py::fixed", "failed")}
    listed = [
        Deviation("f.py::dev", "c", "w"),
        Deviation("f.py::fixed", "c", "w"),
        Deviation("g.py::other", "c", "w"),
    ]
    result = classify(ours, theirs, listed, ["f.py"])
    assert [a.node for a, _ in result.environment] == ["f.py::env"]
    assert [a.node for a, _ in result.expected] == ["f.py::dev"]
    assert [a.node for a in result.regressions] == ["f.py::new"]
    assert [(d.test, why) for d, why in result.stale] == [("f.py::fixed", "now passes")]
    assert result.ours_only == ["f.py::fixed"]


def test_the_deviations_file_loads() -> None:
    assert all(d.file.startswith("test_") for d in load_deviations())


def test_normalize_file() -> None:
    assert normalize_file("run_engine") == normalize_file("test_run_engine.py")


def test_every_listed_deviation_is_in_the_migration_guide() -> None:
    """The docs' table names every test of deviations.json (a ``*`` pattern by its stem)."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text()
    for entry in load_deviations():
        name = entry.test.split("::")[-1].split("*")[0]
        assert f"`{entry.file}::{name}" in guide or f"`{name}" in guide, entry.test
