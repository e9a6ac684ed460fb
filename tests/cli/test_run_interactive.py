"""Ctrl+C in ``runengine run`` under a pseudo-terminal: a press at the prompt never decides."""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import time

import pytest

from runengine.callbacks.catalog import Catalog
from runengine.cli.main import EXIT_ABORTED, EXIT_OK
from runengine.cli.runner import CTRL_C_AT_PROMPT, END_OF_INPUT
from runengine.sigint import FIRST_PRESS, GRACE

pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.interactive

POINTS = 15
ASK = r"\[h\]alt\? "
DEFERRED = "Deferred pause acknowledged. Continuing to checkpoint."
ROW = r"\|\s+{n} \| \d\d:\d\d:"  # row n of the live table


def ctrl_c_as_at_a_terminal() -> None:
    """In the child: Ctrl+C does what it does for a program started at a prompt, even when the
    tests run in a background job (which starts with SIGINT ignored, and hands that down)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def run(tmp_path):
    """Start ``runengine run --sim`` on a count of POINTS points 0.1 s apart, in a pty."""
    children = []

    def start():
        env = {**os.environ, "RUNENGINE_STORE": str(tmp_path / "runs"), "TERM": "xterm"}
        child = pexpect.spawn(
            sys.executable,
            ["-m", "runengine.cli.main", "run", "--sim", f"count([det], {POINTS}, delay=0.1)"],
            env=env,
            encoding="utf-8",
            use_poll=True,  # select() refuses fds past 1023
            timeout=30,
            dimensions=(40, 120),
            preexec_fn=ctrl_c_as_at_a_terminal,
        )
        child.logfile_read = io.StringIO()
        children.append(child)
        return child

    yield start
    for child in children:
        child.close(force=True)


def ended(child) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def assert_starts_its_own_line(out: str, text: str) -> None:
    """``text`` follows a line end, a carriage return or an erase-line, and ends its line.

    (Or the ``^C`` the terminal itself echoes for a press landing as the line is written:
    the tty driver's echo races with our write, which no program can order.)
    """
    at = out.find(text)
    assert re.search(r"(\r|\n|\x1b\[K|\^C)" + re.escape(text) + r"\r?\n", out), (
        text,
        out[max(0, at - 80) : at + len(text) + 20],
    )


@pytest.mark.parametrize("delay", [0.1, 0.2, 0.3])
def test_presses_after_a_quick_pause_never_abort_and_only_an_answer_decides(run, tmp_path, delay):
    child = run()
    child.expect(ROW.format(n=3))
    child.sendintr()  # pauses at the next checkpoint, 0.1 s away
    time.sleep(delay)
    child.sendintr()  # "twice: pause now", arriving when the run is already paused
    child.expect(ASK)
    time.sleep(GRACE + 0.2)
    child.sendintr()  # at the prompt: explained, and asked again
    child.expect(re.escape(CTRL_C_AT_PROMPT))
    child.expect(ASK)
    child.sendline("r")
    assert ended(child) == EXIT_OK
    out = child.logfile_read.getvalue()
    assert "aborting" not in out and "Traceback" not in out
    run_ = Catalog(tmp_path / "runs")[-1]
    assert run_.metadata["stop"]["exit_status"] == "success"
    assert list(run_.primary.read()["seq_num"].values) == list(range(1, POINTS + 1))
    # The status lines, each on a line of its own (not glued onto the bar), in order.
    for text in (FIRST_PRESS, DEFERRED, "Pausing..."):
        assert_starts_its_own_line(out, text)
    assert out.index(FIRST_PRESS) < out.index(DEFERRED)


def test_end_of_input_at_the_prompt_aborts(run, tmp_path):
    child = run()
    child.expect(ROW.format(n=3))
    child.sendintr()
    child.expect(ASK)
    child.sendeof()  # stdin closed: nobody can answer
    child.expect(re.escape(END_OF_INPUT))
    assert ended(child) == EXIT_ABORTED
    assert Catalog(tmp_path / "runs")[-1].metadata["stop"]["exit_status"] == "abort"


def test_a_press_at_the_prompt_throws_away_what_was_typed_before_it(run, tmp_path):
    """The terminal keeps its output on Ctrl+C (NOFLSH, so that no press erases the prompt);
    what was typed before the press must still go: "a", Ctrl+C, "r" resumes, never aborts."""
    child = run()
    child.expect(ROW.format(n=3))
    child.sendintr()
    child.expect(ASK)
    time.sleep(GRACE + 0.2)
    child.send("a")  # typed, not entered
    child.expect("a")  # the terminal's echo: it has the key
    child.sendintr()
    child.expect(re.escape(CTRL_C_AT_PROMPT))
    child.expect(ASK)
    child.sendline("r")
    assert ended(child) == EXIT_OK
    assert Catalog(tmp_path / "runs")[-1].metadata["stop"]["exit_status"] == "success"
