"""Ctrl+C with real signals, sent to a child process that runs a plan in its main thread."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

CHILD = textwrap.dedent(
    """
    import sys, time
    from bluesky.utils import Msg
    from runengine import RunEngine, RunEngineInterrupted

    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    mode = sys.argv[1]

    def plan():
        yield Msg("open_run")
        for i in range(6):
            yield Msg("checkpoint")
            if i == 0:
                print("READY", flush=True)
            if mode == "blocked" and i == 1:
                time.sleep(3)  # a plan that blocks the engine's thread
            if mode == "busy" and i == 1:
                null = Msg("null")
                for _ in range(50_000_000):  # messages that never wait: a busy engine thread
                    yield null
            yield Msg("sleep", None, 30 if mode == "long" and i == 1 else 1.0)
            yield Msg("null")
        yield Msg("close_run")

    try:
        RE(plan())
        print("FINISHED", RE.state, flush=True)
    except RunEngineInterrupted:
        print("INTERRUPTED", RE.state, time.monotonic(), flush=True)
    if mode == "blocked":
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
        RE.stop() if mode in ("long", "busy") else RE.resume()
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
    assert any("pausing at the next checkpoint" in line for line in lines)
    assert not any("Traceback" in line for line in lines)
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


def test_prompt_comes_back_when_a_plan_blocks_the_engine(child):
    proc = child("blocked")
    time.sleep(1.3)  # the plan is now inside its time.sleep(3)
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
