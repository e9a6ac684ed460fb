"""Ctrl+C with real signals, sent to a child process that runs a plan in its main thread."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from runengine.sigint import FIRST_PRESS, GRACE

DEFERRED = "Deferred pause acknowledged. Continuing to checkpoint."

CHILD = textwrap.dedent(
    """
    import functools, sys, time
    from bluesky.utils import Msg
    from runengine import RunEngine, RunEngineInterrupted

    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    mode = sys.argv[1]
    if mode == "blocked_cb":
        from ophyd import Signal

        reading = Signal(name="reading", value=1)
        RE.subscribe(lambda name, doc: time.sleep(3), "event")
    if mode == "immediate":  # as %mov does: the first press already pauses now
        from runengine.sigint import SigintHandler

        RE.context_managers = [functools.partial(SigintHandler, immediate=True)]

    def plan():
        yield Msg("open_run")
        for i in range(6):
            yield Msg("checkpoint")
            if i == 0:
                print("READY", flush=True)
            if mode == "blocked" and i == 1:
                time.sleep(3)  # a plan that blocks the engine's thread
            if mode == "blocked_cb" and i == 1:
                yield Msg("create", name="primary")
                yield Msg("read", reading)
                yield Msg("save")  # its event goes to a callback that blocks the thread
            if mode == "busy" and i == 1:
                null = Msg("null")
                for _ in range(50_000_000):  # messages that never wait: a busy engine thread
                    yield null
            long = mode in ("long", "immediate") and i == 1
            yield Msg("sleep", None, 30 if long else 1.0)
            yield Msg("null")
        yield Msg("close_run")

    try:
        RE(plan())
        print("FINISHED", RE.state, flush=True)
    except RunEngineInterrupted:
        print("INTERRUPTED", RE.state, time.monotonic(), flush=True)
    if mode.startswith("blocked"):
        deadline = time.monotonic() + 10
        while RE.state != "paused" and time.monotonic() < deadline:
            time.sleep(0.05)
        print("LATER", RE.state, flush=True)
    if RE.state == "paused":
        while True:  # like a prompt: Ctrl+C here only gives a new line
            try:
                sys.stdin.readline()
                break
            except KeyboardInterrupt:
                print("^C at the prompt", flush=True)
        RE.stop() if mode in ("long", "busy", "immediate") else RE.resume()
    print("END", RE.state, docs[-1][1]["exit_status"], flush=True)
    """
)


@pytest.fixture
def child(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    procs = []

    def start(mode):
        proc = subprocess.Popen(
            [sys.executable, "-u", str(script), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "READY"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def type_line(proc):
    proc.stdin.write("\n")
    proc.stdin.flush()


def read_until(proc, prefix, timeout=20):
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith(prefix):
            return line.split(), lines
    raise AssertionError(f"no {prefix!r} line; got {lines}")


def test_one_press_pauses_at_the_next_checkpoint(child):
    proc = child("normal")
    os.kill(proc.pid, signal.SIGINT)
    words, lines = read_until(proc, "INTERRUPTED")
    assert words[1] == "paused"
    assert not any("Traceback" in line for line in lines)
    # Our line first, then the engine's reply to it, each a whole line.
    assert FIRST_PRESS in lines and DEFERRED in lines
    assert lines.index(FIRST_PRESS) < lines.index(DEFERRED)
    type_line(proc)
    words, _ = read_until(proc, "END")
    assert words[1:] == ["idle", "success"]


def test_two_presses_pause_now_even_inside_a_long_sleep(child):
    proc = child("long")
    time.sleep(1.3)  # inside the 30 s sleep
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    words, lines = read_until(proc, "INTERRUPTED")
    assert words[1] == "paused"
    assert float(words[2]) - sent < 2.0  # not the 30 s the sleep would take
    assert any("pausing now" in line for line in lines)
    type_line(proc)
    words, _ = read_until(proc, "END")
    assert words[1:] == ["idle", "success"]


def test_two_presses_pause_a_plan_that_keeps_the_engine_busy(child):
    """No checkpoint ahead and an engine thread that never waits: the second press must not
    be lost while the main thread waits for the interpreter."""
    proc = child("busy")
    time.sleep(1.3)  # streaming messages now
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    words, lines = read_until(proc, "INTERRUPTED")
    assert words[1] == "paused"
    assert float(words[2]) - sent < 5.0  # the stream alone would take far longer
    assert any("pausing now" in line for line in lines)
    type_line(proc)
    words, _ = read_until(proc, "END")
    assert words[1:] == ["idle", "success"]


def test_presses_milliseconds_apart_count_once(child):
    proc = child("normal")
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGINT)  # one keypress can deliver two signals
    words, lines = read_until(proc, "INTERRUPTED")
    assert words[1] == "paused"
    assert not any("pausing now" in line for line in lines)


def test_hammering_ctrl_c_never_leaves_the_engine_stuck(child):
    proc = child("normal")
    for _ in range(15):
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.03)
    words, _ = read_until(proc, "INTERRUPTED")
    assert words[1] == "paused"
    type_line(proc)
    words, _ = read_until(proc, "END")
    assert words[1:] == ["idle", "success"]


@pytest.mark.parametrize("mode", ["blocked", "blocked_cb"])
def test_prompt_comes_back_when_a_plan_or_callback_blocks_the_engine(child, mode):
    """bluesky injects an exception into its engine's thread after 11 presses (its
    test_sigint_many_hits_pln/_cb); ours gives the prompt back and pauses once free."""
    proc = child(mode)
    time.sleep(1.3)  # the plan (or a callback) is now inside its time.sleep(3)
    for _ in range(5):
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.15)
    words, lines = read_until(proc, "INTERRUPTED")
    assert any("will pause as soon as it is free" in line for line in lines)
    assert words[1] == "running"  # the prompt is back although the engine could not answer
    words, _ = read_until(proc, "LATER")
    assert words[1] == "paused"  # once free, it honoured the request
    type_line(proc)
    words, _ = read_until(proc, "END")
    assert words[1:] == ["idle", "success"]


def test_with_immediate_the_first_press_pauses_now(child):
    proc = child("immediate")
    time.sleep(1.3)  # inside the 30 s sleep
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    words, lines = read_until(proc, "INTERRUPTED")
    assert words[1] == "paused"
    assert float(words[2]) - sent < 2.0
    assert not any("pausing at the next checkpoint" in line for line in lines)
    type_line(proc)
    words, _ = read_until(proc, "END")
    assert words[1:] == ["idle", "success"]


AFTER_THE_CALL = textwrap.dedent(
    """
    import signal, sys, time
    from bluesky.utils import Msg
    from runengine import RunEngine, RunEngineInterrupted

    RE = RunEngine({})

    def plan():
        yield Msg("checkpoint")
        print("READY", flush=True)
        yield Msg("sleep", None, 1.0)
        yield Msg("checkpoint")

    try:
        RE(plan())
    except RunEngineInterrupted:
        print("RETURNED", RE.state, flush=True)
    t0 = time.monotonic()
    heard = []
    while time.monotonic() - t0 < float(sys.argv[1]):
        try:
            time.sleep(0.01)
        except KeyboardInterrupt:
            heard.append(round(time.monotonic() - t0, 2))
    restored = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    print("HEARD", restored, *heard, flush=True)
    RE.resume()  # no press this time
    print("RESUMED", signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
    """
)


def test_presses_just_after_an_interrupted_call_are_swallowed_then_heard_again(tmp_path):
    """A second press that arrives once the call is back (the shell printing the pause) must
    not raise KeyboardInterrupt there; after GRACE, Ctrl+C is the program's own again, and a
    call that ends without a press gives it back at once."""
    script = tmp_path / "after.py"
    script.write_text(AFTER_THE_CALL)
    later = GRACE + 0.5
    proc = subprocess.Popen(
        [sys.executable, "-u", str(script), str(later + 1.0)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        read_until(proc, "READY")
        os.kill(proc.pid, signal.SIGINT)  # pause at the next checkpoint
        words, _ = read_until(proc, "RETURNED")
        assert words[1] == "paused"
        for _ in range(3):  # within the grace period
            os.kill(proc.pid, signal.SIGINT)
            time.sleep(0.15)
        time.sleep(later - 0.45)
        os.kill(proc.pid, signal.SIGINT)  # after it
        words, lines = read_until(proc, "HEARD")
        resumed, _ = read_until(proc, "RESUMED")
    finally:
        proc.kill()
        proc.wait()
    assert words[1] == "True"  # the original handler is back
    assert len(words[2:]) == 1 and float(words[2]) >= GRACE, lines
    assert resumed[1] == "True"
