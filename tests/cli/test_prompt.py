"""The prompt of ``runengine run`` on a real terminal: a Ctrl+C is never left unanswered."""

from __future__ import annotations

import signal
import sys
import textwrap

import pytest

pexpect = pytest.importorskip("pexpect")

# A Ctrl+C whose C handler ran while the main thread was not in a system call it interrupts:
# the press that lands as input() writes its prompt, or just before input() reads. It is
# made here by sending SIGINT to another thread: the main thread's read() goes on, and only
# Python code the main thread runs can run the handler.
CHILD = textwrap.dedent(
    """
    import signal, sys, threading, time
    from runengine.cli.runner import ask_below_the_bars

    def later():
        time.sleep(0.5)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Thread(target=later, daemon=True).start()
    start = time.monotonic()
    try:
        print("ANSWER", repr(ask_below_the_bars("Answer? ")), flush=True)
    except KeyboardInterrupt:
        print("INTERRUPTED after %.1f s" % (time.monotonic() - start), flush=True)
    print("LINE", repr(ask_below_the_bars("Again? ")), flush=True)
    """
)


def spawn(script):
    # Ctrl+C as for a program started at a prompt, even from a background job (SIGINT ignored).
    return pexpect.spawn(
        sys.executable,
        [str(script)],
        encoding="utf-8",
        use_poll=True,  # select() refuses fds past 1023
        timeout=20,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_a_press_the_main_thread_did_not_see_still_interrupts_the_prompt(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = spawn(script)
    try:
        child.expect("Answer\\? ")
        # input() sat in read() until a line came: the press was heard only then.
        child.expect("INTERRUPTED after")
        child.expect("Again\\? ")
        child.sendline("r")
        child.expect("LINE 'r'")
    finally:
        child.close(force=True)


def test_the_answer_and_the_end_of_input_read_as_input_reads_them(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            """
            from runengine.cli.runner import read_answer

            print("GOT", repr(read_answer("First? ")), flush=True)
            try:
                read_answer("Second? ")
            except EOFError:
                print("EOF", flush=True)
            """
        )
    )
    child = spawn(script)
    try:
        child.expect("First\\? ")
        child.sendline("  s ")
        child.expect("GOT '  s '")
        child.expect("Second\\? ")
        child.sendeof()
        child.expect("EOF")
    finally:
        child.close(force=True)
