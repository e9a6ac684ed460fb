"""Run bluesky's own RunEngine tests on runengine's engine and on bluesky's, and compare.

    .venv/bin/python -m tests.bluesky_suite.run [--engine ours|bluesky|both] [--files F ...] [-j N]

Every file runs in its own pytest subprocess (see :mod:`tests.bluesky_suite.suite`). With
``--engine ours`` the tests that fail on ours are run again on bluesky's engine, so that the
ones failing there too are told apart as ``environment``. The exit status is 1 when a test
fails on ours only and is not in ``deviations.json``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from .deviations import DEFAULT_PATH, Classification, classify, load_deviations
from .suite import FILES, SLOW_FILES, FileResult, Outcome, run_file

STATUSES = ("passed", "failed", "error", "skipped")


@dataclass
class SuiteReport:
    """Per-file results by engine, and the classification of our failures."""

    files: list[str]
    results: dict[str, dict[str, FileResult]] = field(default_factory=dict)
    classification: Classification | None = None
    seconds: float = 0.0

    def outcomes(self, engine: str) -> dict[str, Outcome]:
        """Every outcome of ``engine``, by node id."""
        merged: dict[str, Outcome] = {}
        for result in self.results.get(engine, {}).values():
            merged.update(result.outcomes)
        return merged


def run_suite(
    engine: str = "ours",
    files: list[str] | None = None,
    jobs: int = 2,
    workdir: Path | None = None,
    deviations_path: Path = DEFAULT_PATH,
    file_timeout: float = 900.0,
    per_test_timeout: float = 60.0,
) -> SuiteReport:
    """Run ``files`` (default: all of :data:`FILES`) on ``engine`` (ours, bluesky or both)."""
    files = [normalize_file(f) for f in files or FILES]
    engines = ["ours", "bluesky"] if engine == "both" else [engine]
    report = SuiteReport(files, {e: {} for e in engines})
    own_dir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bluesky-suite-")) if own_dir else workdir
    start = time.monotonic()
    try:
        options = {"file_timeout": file_timeout, "per_test_timeout": per_test_timeout}
        # The slowest files first, so that they do not end the run alone.
        ordered = sorted(files, key=lambda f: SLOW_FILES.index(f) if f in SLOW_FILES else 99)
        tasks = [(f, e, None) for f in ordered for e in engines]
        _run_tasks(tasks, jobs, workdir, options, report.results)
        if engine == "bluesky":
            return report
        baseline = report.outcomes("bluesky")
        if engine == "ours":
            rerun = _failed_nodes(report.outcomes("ours"))
            found: dict[str, dict[str, FileResult]] = {"bluesky": {}}
            _run_tasks([(f, "bluesky", n) for f, n in rerun.items()], jobs, workdir, options, found)
            baseline = {n: o for r in found["bluesky"].values() for n, o in r.outcomes.items()}
        deviations = load_deviations(deviations_path)
        report.classification = classify(report.outcomes("ours"), baseline, deviations, files)
    finally:
        report.seconds = time.monotonic() - start
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def normalize_file(name: str) -> str:
    """``test_run_engine.py`` from ``run_engine``, ``test_run_engine`` or a path."""
    name = Path(name).name
    name = name if name.startswith("test_") else f"test_{name}"
    return name if name.endswith(".py") else f"{name}.py"


def _run_tasks(tasks, jobs: int, workdir: Path, options: dict, into: dict) -> None:
    def one(task):
        file, engine, nodes = task
        return run_file(file, engine, workdir, nodes=nodes, **options)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(one, tasks):
            into[result.engine][result.file] = result


def _failed_nodes(outcomes: dict[str, Outcome]) -> dict[str, list[str]]:
    """The failed node ids by file; a failure of the whole file reruns the file."""
    nodes: dict[str, list[str]] = defaultdict(list)
    for node, outcome in outcomes.items():
        if outcome.bad:
            file = node.split("::", 1)[0]
            nodes[file].append(node if "::" in node else file)
    return dict(nodes)


def counts_line(label: str, outcomes: dict[str, Outcome]) -> str:
    """``label: N passed, N failed, N error, N skipped``."""
    n = {s: sum(o.status == s for o in outcomes.values()) for s in STATUSES}
    return f"{label}: " + ", ".join(f"{n[s]} {s}" for s in STATUSES)


def format_report(report: SuiteReport) -> str:
    """The human-readable report: per-file counts, totals, then the classified failures."""
    engines = list(report.results)
    names = {"ours": "runengine", "bluesky": "bluesky"}
    lines = [f"bluesky {version('bluesky')} tests, {len(report.files)} files", ""]
    header = f"{'file':<38}" + "".join(f"{names[e] + ' pass/fail/err/skip':>30}" for e in engines)
    lines += [header, "-" * len(header)]
    early = []
    for file in report.files:
        row = f"{file:<38}"
        for engine in engines:
            result = report.results[engine].get(file)
            row += f"{'/'.join(str(result.count(s)) for s in STATUSES) if result else '-':>30}"
            early += [f"  {names[engine]}: {w}" for w in getattr(result, "early_ends", [])]
        lines.append(row)
    lines += ["", *(counts_line(names[e], report.outcomes(e)) for e in engines)]
    if early:
        lines += ["", "sessions that ended early (restarted on the tests they had not reached):"]
        lines += early
    if report.classification:
        lines += ["", *_classified(report.classification)]
    lines.append(f"\n{report.seconds:.0f} s")
    return "\n".join(lines)


def _classified(c: Classification) -> list[str]:
    lines = [f"environment (fails on bluesky's engine too): {len(c.environment)}"]
    for ours, theirs in c.environment:
        lines.append(f"  {ours.node}: {theirs.message[:110]}")
        if ours.message != theirs.message:
            lines.append(f"    (on ours: {ours.message[:100]})")
    lines.append(f"expected deviations (listed): {len(c.expected)}")
    lines += [f"  {o.node}  [{d.category}]" for o, d in c.expected]
    lines.append(f"regressions (failing on ours only, not listed): {len(c.regressions)}")
    lines += [f"  {o.node} ({o.status}): {o.message[:110]}" for o in c.regressions]
    lines.append(f"stale deviation entries: {len(c.stale)}")
    lines += [f"  {d.test}: {why}" for d, why in c.stale]
    lines.append(f"passing on ours, failing on bluesky's: {len(c.ours_only)}")
    lines += [f"  {node}" for node in c.ours_only]
    return lines


def main(argv: list[str] | None = None) -> int:
    """The command line; returns 1 if there are regressions."""
    parser = argparse.ArgumentParser(prog="python -m tests.bluesky_suite.run", description=__doc__)
    parser.add_argument("--engine", choices=("ours", "bluesky", "both"), default="both")
    parser.add_argument("--files", nargs="+", metavar="FILE", help="default: all of suite.FILES")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel files (default 2)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep JUnit XML and logs here")
    parser.add_argument("--deviations", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--file-timeout", type=float, default=900.0, metavar="S")
    parser.add_argument("--test-timeout", type=float, default=60.0, metavar="S")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    report = run_suite(
        args.engine, args.files, args.jobs, args.keep, args.deviations,
        args.file_timeout, args.test_timeout,
    )  # fmt: skip
    print(format_report(report))
    return 1 if report.classification and report.classification.regressions else 0


if __name__ == "__main__":
    raise SystemExit(main())
