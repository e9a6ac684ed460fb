"""Scripts leave nothing behind: every descendant ends with the run, whatever session it is in.

Each fixture script (``tree`` in kit.py) starts one descendant that leaves its process group
(a ``start_new_session=True`` child, a double-forked ``setsid()`` daemon, or a child in its own
session that shrugs off SIGINT and SIGTERM), and writes the pids to a file. After every way a
run ends (engine abort, stop, halt, a timeout, the script exiting, the engine process dying),
no pid of the run may exist any more: dead *and* reaped, checked in /proc.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bluesky.utils import RunEngineInterrupted

from runengine.scripts import ScriptRunner
from tests.conftest import fresh_engine, leave_idle
from tests.runengine.scripts.kit import (
    QUICK_ABORT,
    alive,
    gone,
    kill_leftovers,
    stat_fields,
    wait_for_file,
    write_script,
)
from tests.runengine.scripts.test_commands import in_run, script_msg

pytestmark = pytest.mark.timeout(60)

KINDS = ["new_session", "daemon", "stubborn"]
_REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def RE():
    engine = fresh_engine(call_returns_result=True)
    yield engine
    leave_idle(engine)


@pytest.fixture
def tree(tmp_path):
    """(script path, pid file, a function reading the pids); kills what is left at the end."""
    pidfile = tmp_path / "tree.pids"
    seen: dict[str, int] = {}

    def pids() -> dict[str, int]:
        seen.update(json.loads(pidfile.read_text()))
        return dict(seen)

    yield write_script(tmp_path, "tree"), pidfile, pids
    kill_leftovers([pid for pid in seen.values() if not gone(pid)])


def check_escaped(pids: dict[str, int], kind: str) -> None:
    """The descendant is out of the script's process group and session: killpg misses it."""
    script, desc = stat_fields(pids["script"]), stat_fields(pids["descendant"])
    assert desc["pgrp"] != script["pgrp"] and desc["session"] != script["session"]
    if kind == "daemon":  # its parent exited: re-parented to the run's supervisor
        assert desc["ppid"] == pids["supervisor"]


def check_all_gone(
    pids: dict[str, int], kind: str, pidfile: Path, caught: tuple = ("SIGINT", "SIGTERM")
) -> None:
    """Nothing of the run exists: not alive, not a zombie; the stubborn one needed SIGKILL."""
    left = {role: stat_fields(pid)["state"] for role, pid in pids.items() if not gone(pid)}
    assert left == {}, f"still there (state letters): {left}"
    if kind == "stubborn":  # it caught both, so only the SIGKILL after their graces ended it
        signals = pidfile.with_name(pidfile.name + ".signals").read_text().split()
        assert signals == list(caught)


def when_ready(pidfile: Path, action, *args) -> threading.Thread:
    """Call ``action(*args)`` from another thread once the tree is up (its pids written)."""
    th = threading.Thread(target=lambda: (wait_for_file(pidfile, 20), action(*args)))
    th.start()
    return th


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("verb", ["abort", "stop", "halt"])
def test_engine_interruptions_end_every_descendant(RE, tree, kind, verb):
    path, pidfile, pids = tree
    checked = {}

    def interrupt():
        checked["pids"] = pids()
        check_escaped(checked["pids"], kind)
        checked["t0"] = time.monotonic()
        getattr(RE, verb)()

    th = when_ready(pidfile, interrupt)
    try:
        with pytest.raises(RunEngineInterrupted):
            RE(in_run(script_msg(path, [kind, pidfile, "stay"], abort_sequence=QUICK_ABORT)))
    finally:
        th.join(20)
    took = time.monotonic() - checked["t0"]
    check_all_gone(checked["pids"], kind, pidfile)  # at once: the step ends after them
    assert RE.state == "idle"
    if kind == "stubborn":
        assert took >= QUICK_ABORT[0][1] + QUICK_ABORT[1][1]


@pytest.mark.parametrize("kind", KINDS)
def test_a_timeout_ends_every_descendant(RE, tree, kind):
    path, pidfile, pids = tree
    out = []
    msg = script_msg(
        path, [kind, pidfile, "stay"], abort_sequence=QUICK_ABORT, timeout=2.0, check=False
    )
    RE(in_run(msg, out=out))
    assert pidfile.exists(), "the tree was not up before the timeout"
    assert out[0].timed_out and out[0].signal == signal.SIGINT
    check_all_gone(pids(), kind, pidfile)


@pytest.mark.parametrize("kind", KINDS)
def test_what_a_script_leaves_behind_when_it_exits_is_ended(tree, kind):
    path, pidfile, pids = tree
    runner = ScriptRunner(abort_sequence=QUICK_ABORT, logger=logging.getLogger("test.scripts"))
    result = runner.run(path, [kind, pidfile, "exit"], publisher=False)
    assert result.success and result.leftovers_killed == 1 and result.survivors == []
    check_all_gone(pids(), kind, pidfile, caught=("SIGTERM",))  # LEFTOVER_SEQUENCE


def test_a_chain_that_keeps_respawning_itself_is_ended(tmp_path, caplog):
    """Each process forks its successor and exits, ignoring SIGINT and SIGTERM: a snapshot
    always misses the newest one, so the last step looks again until none is left."""
    pids = tmp_path / "chain.pids"
    path = tmp_path / "chain.py"
    path.write_text(
        "import os, signal, subprocess, sys, time\n"
        "if sys.argv[1] == 'start':\n"
        "    subprocess.Popen([sys.executable, sys.argv[0], 'link'], start_new_session=True)\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"log = {str(pids)!r}\n"
        "while True:\n"
        "    with open(log, 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    time.sleep(0.01)\n"
        "    if os.fork():\n"
        "        os._exit(0)\n"
    )
    caplog.set_level(logging.INFO, "test.scripts")
    runner = ScriptRunner(abort_sequence=QUICK_ABORT, logger=logging.getLogger("test.scripts"))
    seen: list[int] = []

    def links() -> int:
        return len(pids.read_text().split()) if pids.exists() else 0

    async def main():
        run = await runner.start(path, ["start"], publisher=False)
        deadline = time.monotonic() + 20
        while links() < 5:
            assert time.monotonic() < deadline, "the chain never got going"
            await asyncio.sleep(0.02)
        return await run.abort("enough")

    try:
        result = asyncio.run(main())
        seen = [int(pid) for pid in pids.read_text().split()]
        assert result.aborted and result.survivors == []
        assert len(seen) > 10  # it went on respawning through the SIGINT and SIGTERM graces
        assert [pid for pid in seen if not gone(pid)] == []
        assert any("sending SIGKILL" in r.getMessage() for r in caplog.records)
    finally:
        kill_leftovers([pid for pid in seen if not gone(pid)])


_ENGINE = """
import sys
from runengine import RunEngine
from runengine.plans.scripts import run_script
from tests.runengine.scripts.kit import QUICK_ABORT
RE = RunEngine({})
RE(run_script(sys.argv[1], sys.argv[2:], abort_sequence=QUICK_ABORT, log=False))
"""


@pytest.mark.parametrize("kind", KINDS)
def test_an_engine_that_dies_leaves_nothing_behind(tree, tmp_path, kind):
    """SIGKILL the engine's process mid-script: the run's supervisor sees the engine go and
    ends every descendant with the run's abort sequence by itself."""
    path, pidfile, pids = tree
    env = dict(os.environ, RUNENGINE_STORE=str(tmp_path / "runs"))
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    engine = subprocess.Popen(
        [sys.executable, "-c", _ENGINE, str(path), kind, str(pidfile), "stay"],
        cwd=_REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_file(pidfile, 30)
        found = pids()
        assert stat_fields(found["supervisor"])["ppid"] == engine.pid
        check_escaped(found, kind)
        engine.kill()
        engine.wait(10)
        # The supervisor is now init's child, so its own zombie is init's to reap: it only has
        # to be dead. Everything below it must be gone, reaped by it.
        deadline = time.monotonic() + sum(grace for _, grace in QUICK_ABORT) + 5
        below = {role: pid for role, pid in found.items() if role != "supervisor"}
        while not all(gone(pid) for pid in below.values()) or alive(found["supervisor"]):
            assert time.monotonic() < deadline, "the run outlived its engine"
            time.sleep(0.02)
        check_all_gone(below, kind, pidfile)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait(10)


def test_a_supervisor_that_is_killed_still_ends_the_script(tree, caplog):
    """A limit, tested so it stays bounded: with its supervisor SIGKILLed, the run ends the
    script's own process group (the descendants that left it are the test's to clean up)."""
    path, pidfile, pids = tree
    caplog.set_level(logging.INFO, "test.scripts")
    runner = ScriptRunner(abort_sequence=QUICK_ABORT, logger=logging.getLogger("test.scripts"))

    async def main():
        run = await runner.start(path, ["new_session", pidfile, "stay"], publisher=False)
        await asyncio.get_running_loop().run_in_executor(None, wait_for_file, pidfile, 20)
        os.kill(run.supervisor_pid, signal.SIGKILL)
        return await asyncio.wait_for(run.wait(), 20)

    result = asyncio.run(main())
    found = pids()
    assert result.returncode is None and not result.success
    assert not alive(found["script"])
    assert any("is gone or mute" in r.getMessage() for r in caplog.records)
