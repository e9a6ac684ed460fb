"""ScriptRunner outside plans: output, exit codes, aborts, the status channel, bad input."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

import pytest

from runengine.scripts import (
    LockUnavailable,
    NoScriptRunning,
    Publisher,
    ScriptAborted,
    ScriptFailed,
    ScriptNotExecutable,
    ScriptNotFound,
    ScriptRunner,
    ScriptTimeout,
)
from tests.runengine.scripts.kit import (
    FAST_ABORT,
    alive,
    group_alive,
    kill_leftovers,
    wait_dead,
    wait_for_file,
    write_script,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def runner():
    return ScriptRunner(abort_sequence=FAST_ABORT, logger=logging.getLogger("test.scripts"))


@pytest.fixture
def script(tmp_path):
    return lambda name: write_script(tmp_path, name)


class FakeLock:
    """The acquire(timeout, job)/release() protocol of a TimeoutLock."""

    def __init__(self):
        self.job = None
        self.released = 0

    def acquire(self, timeout=None, job=None):
        if self.job is not None:
            return False
        self.job = job
        return True

    def release(self):
        self.job = None
        self.released += 1


async def _start_and_wait_ready(runner, path, ready, *args, **options):
    run = await runner.start(path, [ready, *args], **options)
    await asyncio.get_running_loop().run_in_executor(None, wait_for_file, ready)
    return run


# ---- output and exit codes ------------------------------------------------------------------
def test_exit_0_logs_each_line_once_joining_lines_split_across_reads(runner, script, caplog):
    caplog.set_level(logging.INFO, "test.scripts")
    result = runner.run(script("hello"))
    assert result.success and result.returncode == 0 and result.signal is None
    assert result.stdout_tail == ["one", "two", "partial", "three"]
    assert result.stderr_tail == ["to stderr"]
    logged = [r.getMessage() for r in caplog.records]
    assert logged.count("[hello.py stdout] partial") == 1
    assert "[hello.py stdout] two" in logged
    assert any(
        r.levelno == logging.WARNING and "to stderr" in r.getMessage() for r in caplog.records
    )
    assert result.duration > 0.1


def test_exit_3_raises_script_failed_with_code_and_stderr(runner, script):
    with pytest.raises(ScriptFailed) as info:
        runner.run(script("exit_n"), [3])
    assert info.value.returncode == 3
    assert info.value.stderr_tail == ["failing"]
    assert "exited with code 3" in str(info.value) and "failing" in str(info.value)


def test_a_traceback_lands_in_the_stderr_tail_and_check_false_returns(runner, script):
    result = runner.run(script("raises"), check=False)
    assert result.returncode == 1 and not result.success
    assert result.stderr_tail[-1] == "RuntimeError: band 3 did not lock"
    assert result.stderr_tail[0].startswith("Traceback")
    assert isinstance(result.error(), ScriptFailed)


def test_log_false_with_stderr_does_not_crash_and_keeps_the_tails(runner, script, caplog):
    caplog.set_level(logging.DEBUG)
    result = runner.run(script("raises"), log=False, check=False)
    assert result.stderr_tail[-1].startswith("RuntimeError")
    assert not [r for r in caplog.records if "did not lock" in r.getMessage()]


def test_log_to_a_file_appends_lines_and_closes_it(runner, script, tmp_path, monkeypatch):
    log = tmp_path / "run.log"
    log.write_text("earlier\n")
    opened = []
    real_open = open

    def tracking_open(*args, **kwargs):
        f = real_open(*args, **kwargs)
        if str(args[0]) == str(log):
            opened.append(f)
        return f

    monkeypatch.setattr("builtins.open", tracking_open)
    runner.run(script("hello"), log=log)
    monkeypatch.undo()
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier"
    assert any(line.endswith("hello.py stdout: partial") for line in lines)
    assert any(line.endswith("hello.py stderr: to stderr") for line in lines)
    assert opened and all(f.closed for f in opened)


def test_environment_is_inherited_with_overrides_and_non_utf8_is_replaced(
    runner, script, tmp_path, monkeypatch
):
    monkeypatch.setenv("INHERITED", "from-parent")
    monkeypatch.setenv("UNSET", "should-go")
    result = runner.run(
        script("env_and_bytes"), env={"OVERRIDE": "yes", "UNSET": None}, cwd=tmp_path
    )
    assert result.stdout_tail[0] == "from-parent yes None"
    assert result.stdout_tail[1] == "bad \ufffd\ufffd bytes"
    assert result.stdout_tail[2] == str(tmp_path)


# ---- aborts -----------------------------------------------------------------------------------
def test_abort_reaches_a_script_even_when_the_engine_was_started_ignoring_sigint(
    runner, script, tmp_path
):
    """``cmd &`` in a shell script, nohup and some CI runners start Python with SIGINT ignored;
    the script must not inherit that, or the abort's SIGINT would do nothing."""

    async def main():
        run = await _start_and_wait_ready(runner, script("sleep_forever"), tmp_path / "ready")
        return run, await run.abort("operator")

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run, result = asyncio.run(main())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.aborted and result.signal == signal.SIGINT
    assert "KeyboardInterrupt" in result.stderr_tail[-1]
    assert not group_alive(run.pgid)


def test_abort_sends_sigint_first_and_keyboard_interrupt_ends_the_script(runner, script, tmp_path):
    async def main():
        run = await _start_and_wait_ready(runner, script("sleep_forever"), tmp_path / "ready")
        t0 = time.monotonic()
        result = await run.abort("operator")
        return run, result, time.monotonic() - t0

    run, result, took = asyncio.run(main())
    assert result.aborted and result.signal == signal.SIGINT and result.returncode == -2
    assert "KeyboardInterrupt" in result.stderr_tail[-1]
    assert took < FAST_ABORT[0][1] + 0.4  # SIGINT was enough: no escalation
    assert not group_alive(run.pgid)
    with pytest.raises(ScriptAborted, match="aborted by SIGINT: operator"):
        result.check()


def test_ignoring_sigint_escalates_to_sigterm(runner, script, tmp_path):
    async def main():
        run = await _start_and_wait_ready(runner, script("ignore_sigint"), tmp_path / "ready")
        return run, await run.abort()

    run, result = asyncio.run(main())
    assert result.signal == signal.SIGTERM
    assert not group_alive(run.pgid)


def test_a_grandchild_ignoring_sigint_and_sigterm_is_killed_too(runner, script, tmp_path):
    pidfile = tmp_path / "child.pid"

    async def main():
        run = await _start_and_wait_ready(runner, script("grandchild"), pidfile, "stay")
        return run, await run.abort()

    run, result = asyncio.run(main())
    child = int(pidfile.read_text())
    try:
        assert result.aborted and result.signal == signal.SIGINT  # the script itself obeyed
        assert wait_dead([child], 5) == []
        assert not group_alive(run.pgid)
    finally:
        kill_leftovers([child])


def test_processes_left_behind_by_a_script_that_exits_are_ended(runner, script, tmp_path):
    pidfile = tmp_path / "child.pid"
    result = runner.run(script("grandchild"), [pidfile, "exit"])
    child = int(pidfile.read_text())
    try:
        assert result.success and result.leftovers_killed == 1
        assert wait_dead([child], 5) == []
    finally:
        kill_leftovers([child])


def test_abort_from_another_thread_returns_once_the_group_is_gone(runner, script, tmp_path):
    ready = tmp_path / "ready"
    seen = {}

    def operator():
        wait_for_file(ready)
        pid = runner.running[0].pid
        seen["aborted"] = runner.abort("from the GUI")
        seen["left"] = group_alive(pid)

    th = threading.Thread(target=operator)
    th.start()
    with pytest.raises(ScriptAborted, match="from the GUI"):
        runner.run(script("ignore_sigint"), [ready])
    th.join(10)
    assert seen == {"aborted": True, "left": []}


def test_abort_with_nothing_running_is_a_clean_no_op(runner, script, caplog):
    caplog.set_level(logging.INFO, "test.scripts")
    assert runner.abort() is False
    assert "No script is running" in caplog.text
    with pytest.raises(NoScriptRunning):
        runner.abort(strict=True)
    runner.run(script("hello"))
    assert runner.abort() is False  # after exit: still a no-op, no ProcessExitedAlready


def test_abort_after_exit_on_the_run_is_a_no_op(runner, script):
    async def main():
        run = await runner.start(script("hello"))
        result = await run.wait()
        return result, await run.abort()

    result, again = asyncio.run(main())
    assert again is result and result.success and not result.aborted


def test_timeout_aborts_and_raises_script_timeout(runner, script, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ScriptTimeout) as info:
        runner.run(script("sleep_forever"), [tmp_path / "ready"], timeout=0.5)
    assert info.value.result.timed_out and info.value.result.signal == signal.SIGINT
    assert time.monotonic() - t0 < 5
    assert not alive(info.value.result.pid)


def test_cancelling_run_async_aborts_the_script(runner, script, tmp_path):
    async def main():
        task = asyncio.ensure_future(runner.run_async(script("sleep_forever"), [tmp_path / "r"]))
        await asyncio.get_running_loop().run_in_executor(None, wait_for_file, tmp_path / "r")
        pid = runner.running[0].pid
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    pid = asyncio.run(main())
    assert not group_alive(pid) and not runner.running


# ---- locks ------------------------------------------------------------------------------------
def test_a_second_run_on_a_held_lock_fails_fast_naming_the_holder(runner, script, tmp_path):
    lock = FakeLock()

    async def main():
        first = await _start_and_wait_ready(
            runner, script("sleep_forever"), tmp_path / "ready", lock=lock
        )
        t0 = time.monotonic()
        with pytest.raises(LockUnavailable, match=r"held by 'sleep_forever\.py'") as info:
            await runner.start(script("hello"), lock=lock)
        assert time.monotonic() - t0 < 1 and info.value.holder == "sleep_forever.py"
        await first.abort()

    asyncio.run(main())
    assert lock.job is None and lock.released == 1


def test_the_lock_is_released_when_the_script_fails_or_cannot_start(runner, script, tmp_path):
    lock = FakeLock()
    runner.run(script("exit_n"), [2], lock=lock, check=False)
    assert lock.job is None and lock.released == 1
    bad = tmp_path / "data.txt"
    bad.write_text("not a program")
    with pytest.raises(ScriptNotExecutable):
        runner.run(bad, lock=lock)
    assert lock.job is None


# ---- the status channel -------------------------------------------------------------------------
def test_publisher_session_data_merges_in_order_and_large_payloads_become_warnings(runner, script):
    result = runner.run(script("publish_n"), [100])
    assert result.session_data["last"] == 99
    assert [k for k in result.session_data if k.startswith("k")] == [f"k{i}" for i in range(100)]
    assert [text for _, text in result.messages] == ["all sent"]
    assert result.seq_gaps == 0 and result.malformed == 0
    assert any("dropped large UDP packet" in w for w in result.warnings)


def test_garbage_oversized_and_foreign_datagrams_are_counted_and_dropped(runner, script):
    result = runner.run(script("publish_garbage"))
    assert result.success
    assert result.session_data == {"good": 1, "gap": 1}
    assert result.malformed == 4  # bad JSON, bad UTF-8, not an object, a list as session_data
    assert result.oversized == 1
    assert result.foreign == 1
    assert result.seq_gaps == 3
    assert result.datagrams == 8
    assert len(result.warnings) >= 6


def test_drain_keeps_late_messages_within_the_window_only(runner, script):
    t0 = time.monotonic()
    result = runner.run(script("late_publishers"), drain=1.0)
    assert result.session_data == {"early": True}
    assert 0.9 < time.monotonic() - t0 < 5
    assert result.leftovers_killed == 1


def test_the_publisher_discards_messages_outside_a_runner():
    pub = Publisher("x", env={})
    assert pub.backend == "null" and pub.publish({"a": 1}) is False
    pub.close()


def test_status_callback_sees_every_accepted_message(runner, script):
    seen = []
    runner.run(script("publish_n"), [3], on_status=seen.append)
    kinds = [m["type"] for m in seen]
    assert kinds[0] == "spawned" and kinds[-1] == "exited"
    assert kinds[1:-1] == ["start", *["session_data"] * 3, "session_log", "backend_error", "stop"]


# ---- bad input --------------------------------------------------------------------------------
def test_a_missing_script_is_a_clear_error(runner, tmp_path):
    with pytest.raises(ScriptNotFound, match=r"nope\.py' not found"):
        runner.run(tmp_path / "nope.py")
    with pytest.raises(ScriptNotFound, match="not a file"):
        runner.run(tmp_path)
    assert not runner.running


def test_a_non_executable_file_is_a_clear_error_and_an_executable_one_runs(runner, tmp_path):
    path = tmp_path / "tool"
    path.write_text('#!/bin/sh\necho from sh "$1"\n')
    with pytest.raises(ScriptNotExecutable, match="chmod"):
        runner.run(path)
    os.chmod(path, 0o755)
    assert runner.run(path, ["x"]).stdout_tail == ["from sh x"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ("--fast", "list or tuple"),
        ([1, None], r"args\[1\] = None"),
        ([{"band": 3}], r"args\[0\]"),
        ([True], r"args\[0\] = True"),
        (5, "list or tuple"),
    ],
)
def test_arguments_that_are_not_strings_numbers_or_paths_are_refused(runner, script, args, match):
    with pytest.raises(TypeError, match=match):
        runner.run(script("hello"), args)


def test_numbers_and_paths_become_strings(runner, tmp_path):
    path = tmp_path / "echo.py"
    path.write_text("import sys\nprint(sys.argv[1:])\n")
    result = runner.run(path, ["--bands", 0, 1.5, tmp_path])
    assert result.stdout_tail == [str(["--bands", "0", "1.5", str(tmp_path)])]
    assert result.args == ("--bands", "0", "1.5", str(tmp_path))


def test_bad_options_are_refused_before_anything_runs(runner, script):
    with pytest.raises(TypeError, match="log must be"):
        runner.run(script("hello"), log=42)
    with pytest.raises(TypeError, match="env entries"):
        runner.run(script("hello"), env={"A": 1})
    with pytest.raises(ValueError, match="timeout"):
        runner.run(script("hello"), timeout=0)
    assert not runner.running
