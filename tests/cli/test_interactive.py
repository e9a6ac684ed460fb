"""Ctrl+C in a real IPython (``runengine shell``) under a pseudo-terminal."""

from __future__ import annotations

import os
import sys
import time

import pytest

from runengine.callbacks.catalog import Catalog

pexpect = pytest.importorskip("pexpect")  # a test dependency: `make test` installs it
pytestmark = pytest.mark.interactive

PROMPT = r"In \[\d+\]: "
POINTS = 30


@pytest.fixture
def shell(tmp_path):
    """``runengine shell --sim`` in a pty; yields (child, store directory)."""
    store = tmp_path / "runs"
    env = {
        **os.environ,
        "IPY_TEST_SIMPLE_PROMPT": "1",  # plain line input: no escape codes to match around
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "RUNENGINE_STORE": str(store),
        "TERM": "dumb",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "runengine.cli.main", "shell", "--sim"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
    )
    child.expect(PROMPT)
    child.sendline("import threading; m1.delay = 0.1")  # ~0.1 s a point: time for a Ctrl+C
    child.expect(PROMPT)
    yield child, store
    child.sendline("exit")
    child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=10)
    child.close(force=True)


def press_ctrl_c_again(child) -> None:
    time.sleep(0.3)  # two presses closer than 0.1 s count as one (a key can send two)
    child.sendintr()


def start_scan(child, before: str = "") -> None:
    child.sendline(f"{before}RE(scan([det], m1, -1, 1, {POINTS}))")
    child.expect(r"\|\s+3 \|")  # the third point is in the live table


def assert_paused(child) -> None:
    child.expect("RE.resume()")  # the reminder of what to do next
    child.expect(r"\[paused\] " + PROMPT)  # the prompt shows the state
    child.sendline("RE.state")
    child.expect("'paused'")
    child.expect(PROMPT)


def resume_to_the_end(child) -> None:
    child.sendline("RE.resume()")
    child.expect(f"success: {POINTS} rows")
    child.expect(PROMPT)


def assert_every_point_once(store) -> None:
    run = Catalog(store)[-1]
    assert run.metadata["stop"]["exit_status"] == "success"
    assert list(run.primary.read()["seq_num"].values) == list(range(1, POINTS + 1))


def test_ctrl_c_once_pauses_at_the_next_checkpoint(shell):
    child, store = shell
    start_scan(child)
    child.sendintr()
    child.expect("pausing at the next checkpoint")
    child.expect("Pausing...")
    assert_paused(child)
    resume_to_the_end(child)
    assert_every_point_once(store)


def test_ctrl_c_twice_pauses_now(shell):
    child, store = shell
    start_scan(child, before="threading.Timer(0.2, setattr, (m1, 'delay', 5)).start(); ")
    child.sendintr()  # the move under way takes 5 s: the next checkpoint is far
    child.expect("pausing at the next checkpoint")
    press_ctrl_c_again(child)
    child.expect("pausing now")
    assert_paused(child)
    child.sendline("m1.delay = 0.1")
    child.expect(PROMPT)
    resume_to_the_end(child)
    assert_every_point_once(store)


def test_ctrl_c_during_resume_pauses_again(shell):
    child, store = shell
    start_scan(child)
    child.sendintr()
    assert_paused(child)
    child.sendline("RE.resume()")
    child.expect(r"\|\s+1[0-9] \|")  # well into the second half
    child.sendintr()
    child.expect("pausing at the next checkpoint")
    assert_paused(child)
    resume_to_the_end(child)
    assert_every_point_once(store)


def test_ctrl_c_during_a_suspension_pauses_and_resume_waits_for_the_beam(shell):
    child, store = shell
    child.sendline(
        "from ophyd import Signal; from bluesky.suspenders import SuspendBoolLow; "
        "beam = Signal(name='beam', value=1); "
        "RE.install_suspender(SuspendBoolLow(beam, sleep=0.2))"
    )
    child.expect(PROMPT)
    start_scan(child, before="threading.Timer(0.5, beam.put, (0,)).start(); ")
    child.expect("Suspending")
    child.sendintr()
    press_ctrl_c_again(child)
    child.expect("pausing now")
    assert_paused(child)
    child.sendline("threading.Timer(1.0, beam.put, (1,)).start()")  # the beam comes back
    child.expect(PROMPT)
    resume_to_the_end(child)
    assert_every_point_once(store)


def test_ctrl_c_during_a_script_run_lets_it_finish_then_pauses(shell, tmp_path):
    child, store = shell
    marks = tmp_path / "marks.txt"
    script = tmp_path / "slow.py"
    script.write_text(
        "import sys, time\n"
        "with open(sys.argv[1], 'a') as f:\n"
        "    f.write('started\\n'); f.flush(); time.sleep(2); f.write('finished\\n')\n"
    )
    child.sendline(
        f"RE(bpp.pchain(run_script({str(script)!r}, [{str(marks)!r}]), "
        f"scan([det], m1, -1, 1, {POINTS})))"
    )
    deadline = time.monotonic() + 30
    while "started" not in (marks.read_text() if marks.exists() else ""):
        assert time.monotonic() < deadline, "the script never started"
        time.sleep(0.05)
    child.sendintr()  # the script is running: it finishes, then the engine pauses
    child.expect("pausing at the next checkpoint")
    assert_paused(child)
    assert marks.read_text() == "started\nfinished\n"
    resume_to_the_end(child)
    assert marks.read_text() == "started\nfinished\n"  # never run again
    assert_every_point_once(store)
