"""Run one file of bluesky's installed test suite in pytest subprocesses and read its outcomes.

Each session runs in its own process group, from the file's scratch directory, with a
per-test timeout (pytest-timeout, after a faulthandler dump of every thread) and a per-session
timeout (the group is killed). Outcomes come from the JUnit XML pytest writes at the end, and
for a session killed before writing it, from its ``-v`` progress lines. A session that ends
early (a stray Ctrl+C from a SIGINT test, a crash, a hang) gives the test it was in an
``error`` and is restarted on the tests it did not reach; a test a stray Ctrl+C ended is run
again alone. Nothing is written outside the scratch directory (no cache, no bytecode).
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SWAP_PLUGIN = "tests.bluesky_suite.swap"

# The files of bluesky/tests whose tests run plans on a RunEngine: the ``RE`` fixture of
# bluesky's conftest or a ``RunEngine(...)`` of their own. Left out: files that never run a
# plan (test_buffering, test_cli, test_consolidators, test_generators, test_json_writer,
# test_legacy_plans, test_logging, test_plan_patterns, test_protocols, test_snaking,
# test_transformer, test_zmq_proxy_cli).
FILES = (
    # the engine itself
    "test_run_engine.py",
    "test_examples.py",
    "test_new_examples.py",
    "test_suspenders.py",
    "test_event_loop_funcs.py",
    "test_multi_runs.py",
    "test_metadata.py",
    "test_seq_num_indices_in_sync.py",
    "test_flyer.py",
    "test_external_assets_and_paging.py",
    "test_streams.py",
    "test_devices.py",
    # plans and preprocessors run on it
    "test_plans.py",
    "test_scans.py",
    "test_preprocessors.py",
    "test_supplemental_data.py",
    "test_ramp_plan.py",
    "test_simulators.py",
    "test_scientific.py",
    "test_simple_api.py",
    "test_documents.py",
    "test_utils.py",
    # callbacks and integrations fed by it
    "test_callbacks.py",
    "test_bec.py",
    "test_progress_bar.py",
    "test_magics.py",
    "test_olog_cb.py",
    "test_persistent_dict.py",
    "test_tracing.py",
    "test_vertical_integration.py",
    "test_tiled_writer.py",
    "test_zmq.py",
)

# The files that take a minute or more, slowest first (test_simple_api: BestEffortCallback
# plots of Fermat spirals, more than a minute each).
SLOW_FILES = ("test_simple_api.py", "test_run_engine.py", "test_plans.py", "test_tiled_writer.py",
              "test_callbacks.py", "test_bec.py", "test_suspenders.py")  # fmt: skip

# pytest, with Python's own SIGINT handler even if the harness was started ignoring SIGINT
# (a background job is): the SIGINT tests send themselves Ctrl+C.
_BOOTSTRAP = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import pytest; sys.exit(pytest.main())"
)
_RANK = {"passed": 0, "skipped": 1, "error": 2, "failed": 3}
_VERBOSE_LINE = re.compile(r"^(\S+\.py::.+?) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_VERBOSE_STATUS = {"PASSED": "passed", "XPASS": "passed", "FAILED": "failed", "ERROR": "error"}


@dataclass(frozen=True)
class Outcome:
    """One test's result: ``status`` is passed, failed, error or skipped."""

    node: str
    status: str
    message: str = ""
    details: str = ""

    @property
    def bad(self) -> bool:
        """True for failed and error."""
        return self.status in ("failed", "error")


@dataclass
class FileResult:
    """The outcomes of one file on one engine, by node id, and how its process ended."""

    file: str
    engine: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: float = 0.0
    early_ends: list[str] = field(default_factory=list)  # sessions that ended early: where, why

    def count(self, status: str) -> int:
        """How many tests ended with ``status``."""
        return sum(o.status == status for o in self.outcomes.values())


def bluesky_tests_dir() -> Path:
    """The installed ``bluesky/tests`` folder, found without importing bluesky."""
    spec = importlib.util.find_spec("bluesky")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("bluesky is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations))) / "tests"


def pytest_command(
    engine: str, targets: list[str], scratch: Path, per_test_timeout: float, *extra: str
) -> list[str]:
    """The pytest command line for ``targets`` (files or node ids) on ``engine``."""
    tests = bluesky_tests_dir()
    cmd = [sys.executable, "-c", _BOOTSTRAP, *(str(tests / t) for t in targets)]
    cmd += ["-c", str(scratch / "pytest.ini"), "--rootdir", str(tests), "--confcutdir", str(tests)]
    cmd += ["-p", "no:cacheprovider", "-o", "junit_family=xunit1"]
    # A test over its time fails (pytest-timeout), after a dump of every thread's stack.
    for option in ("timeout", "faulthandler_timeout"):
        cmd += ["-o", f"{option}={per_test_timeout:g}"]
    if engine == "ours":
        cmd += ["-p", SWAP_PLUGIN]
    return [*cmd, *extra]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MPLBACKEND"] = "Agg"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_file(
    file: str,
    engine: str,
    workdir: Path,
    *,
    nodes: list[str] | None = None,
    file_timeout: float = 900.0,
    per_test_timeout: float = 60.0,
    retries: int = 2,
) -> FileResult:
    """Run ``file`` (or only its ``nodes``) on ``engine`` in subprocesses under ``workdir``.

    A session that ends early (a stray Ctrl+C, a crash, a hang past ``file_timeout``) gives
    the test it was in an ``error`` and is restarted on the tests it did not reach. A test
    in which a KeyboardInterrupt ended the session is run again alone, up to ``retries``
    times, and keeps the first outcome of a session that completes.
    """
    scratch = workdir / engine / Path(file).stem
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "pytest.ini").write_text("[pytest]\n")
    result = FileResult(file, engine)
    sessions = itertools.count()
    start = time.monotonic()

    def session(targets: list[str]) -> tuple[dict[str, Outcome], str, str | None]:
        cmd = pytest_command(engine, targets, scratch, per_test_timeout)
        # A few chosen tests need not wait out the file's timeout if one hangs in teardown
        # (past pytest-timeout, which fires once per test).
        bound = file_timeout if targets == [file] else 60 + (per_test_timeout + 10) * len(targets)
        return _session(cmd, scratch, next(sessions), file, min(file_timeout, bound))

    targets = nodes or [file]
    while targets:
        found, why, ended_in = session(targets)
        result.outcomes.update(found)
        if not why or not found:
            break
        if ended_in and "KeyboardInterrupt" in why:
            for _ in range(retries):
                alone, again, _ = session([ended_in])
                if not again and ended_in in alone:
                    result.outcomes[ended_in] = alone[ended_in]
                    why += f" (alone: {alone[ended_in].status})"
                    break
        result.early_ends.append(f"{ended_in or 'before any test'}: {why}")
        collected = _collect(engine, targets, scratch, per_test_timeout, file)
        targets = [n for n in collected if n not in result.outcomes]
    result.seconds = time.monotonic() - start
    log.info("%s on %s: %.0f s %s", file, engine, result.seconds, "; ".join(result.early_ends))
    return result


def _session(
    cmd: list[str], scratch: Path, number: int, file: str, timeout: float
) -> tuple[dict[str, Outcome], str, str | None]:
    """One pytest session: its outcomes, why it ended early ("" if it did not) and in which
    test (None if unknown)."""
    junit, logfile = scratch / f"junit-{number}.xml", scratch / f"pytest-{number}.log"
    why = ""
    with logfile.open("w") as out:
        proc = subprocess.Popen(
            [*cmd, "-v", "--junitxml", str(junit)], cwd=scratch, env=_environment(),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            code, why = None, f"killed after {timeout:g} s"
    text = logfile.read_text(errors="replace")
    outcomes = parse_junit(junit, file) if junit.exists() else {}
    if code in (0, 1, 5) or file in outcomes:  # complete, or a collection error
        return outcomes, "", None
    why = why or _ending(code, text)
    logged, ended_in = parse_verbose_log(text)
    outcomes = {**logged, **outcomes}
    if ended_in and ended_in not in outcomes:
        outcomes[ended_in] = Outcome(ended_in, "error", f"session ended here: {why}", text[-3000:])
    return outcomes, why, ended_in


def _ending(code: int | None, text: str) -> str:
    if "KeyboardInterrupt" in text[-3000:]:
        return "a KeyboardInterrupt ended the session"
    return f"pytest exited with code {code}"


def _collect(
    engine: str, targets: list[str], scratch: Path, timeout: float, file: str
) -> list[str]:
    """The node ids ``targets`` select, in order (``--collect-only``)."""
    cmd = pytest_command(engine, targets, scratch, timeout, "--collect-only", "-q")
    done = subprocess.run(
        cmd, cwd=scratch, env=_environment(), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=300, start_new_session=True,
    )  # fmt: skip
    nodes = (_short_node(line.strip()) for line in done.stdout.splitlines())
    return [n for n in nodes if n.startswith(f"{file}::")]


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group the harness started, then SIGKILL it."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def node_id(file: str, classname: str, name: str) -> str:
    """``file::Class::name`` from a JUnit ``classname`` (module path, then classes)."""
    if not classname:  # a collection error names the module
        return file if name == Path(file).stem else f"{file}::{name}"
    module = Path(file).with_suffix("").as_posix().replace("/", ".")
    classes = classname[len(module) + 1 :].split(".") if classname != module else []
    return "::".join([file, *filter(None, classes), name])


def parse_junit(path: Path, file: str) -> dict[str, Outcome]:
    """Outcomes by node id; a test with several entries (call, teardown) keeps its worst."""
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        if not case.get("name"):
            continue  # the test a KeyboardInterrupt ended: an empty entry
        node = node_id(case.get("file") or file, case.get("classname", ""), case.get("name", ""))
        status, message, details = "passed", "", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or "").strip().splitlines()[:1]
                message, details = (message[0] if message else ""), child.text or ""
                break
        old = outcomes.get(node)
        if old is None or _RANK[status] > _RANK[old.status]:
            outcomes[node] = Outcome(node, status, message, details)
    return outcomes


def parse_verbose_log(text: str) -> tuple[dict[str, Outcome], str | None]:
    """Outcomes from pytest's ``-v`` lines, and the test started last and never ended."""
    outcomes: dict[str, Outcome] = {}
    last_started = None
    for line in text.splitlines():
        match = _VERBOSE_LINE.match(line)
        if match:
            node, word = _short_node(match.group(1)), match.group(2)
            outcomes[node] = Outcome(node, _VERBOSE_STATUS.get(word, "skipped"), word)
            last_started = None
        elif re.match(r"^\S+\.py::\S+", line):
            last_started = _short_node(line.split()[0])
    return outcomes, last_started


def _short_node(node: str) -> str:
    """``test_x.py::name`` from the ``-v`` form, which is relative to the working directory."""
    path, sep, rest = node.partition(".py::")
    return f"{path.rsplit('/', 1)[-1]}{sep}{rest}"
