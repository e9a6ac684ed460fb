"""Ctrl+C in a real IPython (``runengine shell``) under a pseudo-terminal, pressed as a person
presses it: twice in quick succession, at the prompt, during ``%mov``."""

from __future__ import annotations

import io
import os
import sys
import time

import pytest

from runengine.callbacks.catalog import Catalog
from runengine.sigint import GRACE

pexpect = pytest.importorskip("pexpect")  # a test dependency: `make test` installs it
pytestmark = pytest.mark.interactive

PROMPT = r"In \[\d+\]: "
# prompt_toolkit's prompt: colour codes around the number
STYLED_PROMPT = r"In \[(?:\x1b\[[0-9;]*m)*\d+(?:\x1b\[[0-9;]*m)*\]: "
POINTS = 30
ROW = r"\|\s+\d+ \| \d\d:\d\d:"  # a row of the live table
SECOND_PRESS_DELAYS = (0.1, 0.2, 0.3)  # after a first press that pauses at once


def spawn_shell(tmp_path, simple: bool = True):
    """``runengine shell --sim`` in a pty, everything it prints kept in ``child.logfile_read``.

    ``simple``: IPython's plain line input (no escape codes to match around); otherwise the
    prompt_toolkit prompt a person gets.
    """
    env = {
        **os.environ,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "RUNENGINE_STORE": str(tmp_path / "runs"),
        "TERM": "dumb" if simple else "xterm",
    }
    if simple:
        env["IPY_TEST_SIMPLE_PROMPT"] = "1"
    else:
        env.pop("IPY_TEST_SIMPLE_PROMPT", None)
        env["PROMPT_TOOLKIT_NO_CPR"] = "1"  # pexpect does not answer cursor position requests
    child = pexpect.spawn(
        sys.executable,
        ["-m", "runengine.cli.main", "shell", "--sim"],
        env=env,
        encoding="utf-8",
        use_poll=True,  # select() refuses fds past 1023
        timeout=60,
        dimensions=(50, 200),
    )
    child.logfile_read = io.StringIO()
    prompt = PROMPT if simple else STYLED_PROMPT
    child.expect(prompt)
    child.sendline("import threading; m1.delay = 0.1")  # ~0.1 s a point: time for a Ctrl+C
    child.expect(prompt)
    return child


def close_shell(child) -> None:
    child.sendline("exit")
    child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=10)
    child.close(force=True)


@pytest.fixture
def shell(tmp_path):
    """``runengine shell --sim`` in a pty; yields (child, store directory)."""
    child = spawn_shell(tmp_path)
    yield child, tmp_path / "runs"
    close_shell(child)


def screen(child) -> str:
    """Everything the shell has printed so far."""
    return child.logfile_read.getvalue()


def assert_no_traceback(child) -> None:
    out = screen(child)
    assert "Traceback" not in out, out[out.find("Traceback") - 2000 :]
    assert "Custom TB Handler failed" not in out


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


def quick_pause_and_press_again(child, delay: float) -> None:
    """A first press that pauses at once (the next checkpoint is 0.1 s away), and the second
    press of "twice: pause now" ``delay`` s later: it lands while IPython prints the pause, or
    at the prompt just after it."""
    child.expect(ROW)
    child.sendintr()
    time.sleep(delay)
    child.sendintr()


@pytest.mark.parametrize("delay", SECOND_PRESS_DELAYS)
def test_a_second_press_just_after_a_quick_pause_prints_no_traceback(shell, delay):
    """Each delay in a fresh shell: IPython's first rendering of an error is the slow one."""
    child, store = shell
    child.sendline(f"RE(scan([det], m1, -1, 1, {POINTS}))")
    quick_pause_and_press_again(child, delay)
    assert_paused(child)
    child.sendline("m1.delay = 0.01; get_ipython().custom_exceptions")  # display still there
    child.expect("RunEngineInterrupted")
    child.expect(PROMPT)
    resume_to_the_end(child)
    assert_no_traceback(child)
    assert_every_point_once(store)


@pytest.mark.parametrize("delay", SECOND_PRESS_DELAYS)
def test_a_second_press_just_after_a_quick_pause_in_prompt_toolkit(tmp_path, delay):
    """The same with the prompt a person gets (prompt_toolkit, colours, a real TERM)."""
    child = spawn_shell(tmp_path, simple=False)
    try:
        child.sendline(f"RE(scan([det], m1, -1, 1, {POINTS}))")
        quick_pause_and_press_again(child, delay)
        child.expect(r"RE\.resume\(\)")
        child.expect(STYLED_PROMPT)
        child.sendline("RE.state")
        child.expect("'paused'")
        child.expect(STYLED_PROMPT)
        child.sendline("m1.delay = 0.01; RE.resume()")
        child.expect(f"success: {POINTS} rows")
        child.expect(STYLED_PROMPT)
        assert_no_traceback(child)
    finally:
        close_shell(child)
    assert_every_point_once(tmp_path / "runs")


def test_presses_at_the_prompt_after_a_pause_print_no_traceback(shell):
    child, store = shell
    start_scan(child)
    child.sendintr()
    assert_paused(child)
    for _ in range(2):
        time.sleep(GRACE + 0.2)
        child.sendintr()  # at the prompt: IPython's own one-line reply, the plan stays paused
        child.expect(r"\[paused\] " + PROMPT)
    resume_to_the_end(child)
    assert_no_traceback(child)
    out = screen(child)
    assert "exit_stats" not in out and "Mark exit_status='abort'" in out
    assert_every_point_once(store)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_mov_stops_the_move_and_says_so(shell, presses):
    child, _ = shell
    child.sendline("m1.delay = 5")  # a long move
    child.expect(PROMPT)
    child.sendline("%mov m1 1")
    time.sleep(1.0)
    child.sendintr()
    if presses == 2:
        time.sleep(0.3)
        child.sendintr()
    child.expect("stopping the move")
    child.expect(r"Move stopped \(Ctrl\+C\): m1 at ")
    child.expect(PROMPT)
    child.sendline("RE.state")
    child.expect("'idle'")
    child.expect(PROMPT)
    out = screen(child)
    mov = out[out.rfind("%mov") :]
    assert "RE.resume()" not in mov and "paused" not in mov
    assert_no_traceback(child)


def test_a_panic_while_running_shows_the_panic_help_not_resume(shell):
    child, _ = shell
    child.sendline(f"threading.Timer(0.5, RE.panic).start(); RE(scan([det], m1, -1, 1, {POINTS}))")
    child.expect(r"panicked \(RE\.panic\(\)\): the plan is aborted")
    child.expect(r"\[panicked\] " + PROMPT)
    out = screen(child)
    assert "RE.resume()" not in out[out.rfind("RE(scan") :]
    assert "RE.all_is_well()" in out[out.rfind("RE(scan") :]
    child.sendline("RE.all_is_well(); RE.state")
    child.expect("'idle'")
    child.expect(PROMPT)
    assert_no_traceback(child)


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        ("RE.resume()", "Cannot resume: the RunEngine is idle; only a paused plan resumes."),
        ("RE.abort()", "RunEngine is already idle."),
    ],
)
def test_a_refused_control_call_is_one_line_not_a_traceback(shell, call, reason):
    child, _ = shell
    child.sendline(call)
    child.expect(PROMPT)
    out = screen(child)
    answer = out[out.rfind(call) + len(call) :].splitlines()[1:-1]  # between echo and prompt
    assert [line for line in answer if line.strip()] == [f"TransitionError: {reason}"]
    child.sendline("RE.state")  # the refusal changed nothing
    child.expect("'idle'")
    child.expect(PROMPT)
    assert_no_traceback(child)
