"""Ctrl+C on a real terminal (a pseudo-terminal): a press never erases what answered the last.

A terminal that gets Ctrl+C throws away, unless NOFLSH is set, the output it has not displayed
yet and the input nobody has read. The engine goes on after a press and answers it (a status
line, then the prompt); a second press that arrived before the terminal had read that answer
erased it, and ``runengine run`` sat at a prompt nobody could see. These tests make the
terminal read late on purpose: more output than its reader holds is written first, so what
follows waits in the terminal when the press comes.
"""

import signal
import sys
import textwrap
import time

import pytest

pexpect = pytest.importorskip("pexpect")

HEADER = textwrap.dedent(
    """
    import atexit, sys, termios, time
    from runengine.sigint import SigintHandler

    class Engine:  # what SigintHandler asks of a RunEngine
        state = "running"

        def _request_pause(self, *args, **kwargs):
            pass

    def noflsh():
        return bool(termios.tcgetattr(0)[3] & termios.NOFLSH)
    """
)

ANSWER_SURVIVES = HEADER + textwrap.dedent(
    """
    with SigintHandler(Engine()) as handler:
        print("READY", flush=True)
        time.sleep(0.3)
        sys.stdout.write("x" * 5000 + "\\n")  # more than the terminal's reader holds
        sys.stdout.flush()
        time.sleep(0.3)
        sys.stdout.write("ANSWER> ")  # waits in the terminal for the reader
        sys.stdout.flush()
        deadline = time.monotonic() + 10
        while not handler.presses and time.monotonic() < deadline:
            time.sleep(0.02)
    print("PRESSES", handler.presses, flush=True)
    """
)

TYPEAHEAD = HEADER + textwrap.dedent(
    """
    with SigintHandler(Engine()) as handler:
        print("READY", flush=True)
        deadline = time.monotonic() + 10
        while not handler.presses and time.monotonic() < deadline:
            time.sleep(0.02)
        print("PRESSED", flush=True)
    print("LINE", repr(sys.stdin.readline()), flush=True)
    """
)

RESTORED = HEADER + textwrap.dedent(
    """
    before = noflsh()
    with SigintHandler(Engine()):
        during = noflsh()
    after = noflsh()
    atexit._run_exitfuncs()
    print("NOFLSH", before, during, after, noflsh(), flush=True)
    """
)


def spawn(tmp_path, code):
    script = tmp_path / "child.py"
    script.write_text(code)
    return pexpect.spawn(
        sys.executable,
        [str(script)],
        encoding="utf-8",
        use_poll=True,  # select() refuses fds past 1023
        timeout=20,
        dimensions=(24, 80),
        # Ctrl+C as for a program started at a prompt, even from a background job.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_a_press_never_erases_what_was_written_before_it(tmp_path):
    child = spawn(tmp_path, ANSWER_SURVIVES)
    try:
        child.expect("READY")
        time.sleep(1.5)  # not reading: the child writes its answer meanwhile
        child.sendintr()
        child.expect("ANSWER> ")  # was thrown away by the terminal, for good
        child.expect(r"PRESSES (\d+)")
        assert child.match.group(1) == "1"
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_a_press_still_throws_away_what_was_typed_before_it(tmp_path):
    child = spawn(tmp_path, TYPEAHEAD)
    try:
        child.expect("READY")
        child.send("abc")  # typed, never entered: not an answer to what comes next
        child.expect("abc")  # the terminal has it (its echo)
        child.sendintr()
        child.expect("PRESSED")
        child.sendline("r")
        child.expect(r"LINE '(.*)'")
        assert child.match.group(1) == r"r\n"
    finally:
        child.close(force=True)


def test_the_terminal_is_given_back_as_it_was_at_exit(tmp_path):
    child = spawn(tmp_path, RESTORED)
    try:
        child.expect(r"NOFLSH (\w+) (\w+) (\w+) (\w+)")
        # Set by the first call and kept after it (a press may come while the answer to the
        # last one is printed), until the process ends.
        assert child.match.groups() == ("False", "True", "True", "False")
    finally:
        child.close(force=True)
