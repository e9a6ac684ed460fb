"""Msg('run_script'): the step inside the engine, its documents, and every way to end it."""

from __future__ import annotations

import threading

import pytest
from bluesky.utils import Msg, RunEngineInterrupted
from event_model import DocumentNames, schema_validators

from runengine.scripts import (
    ScriptAborted,
    ScriptFailed,
    ScriptNotExecutable,
    ScriptNotFound,
)
from runengine.scripts.commands import runner_for
from tests.conftest import fresh_engine, leave_idle
from tests.runengine.scripts.kit import (
    FAST_ABORT,
    group_alive,
    kill_leftovers,
    wait_dead,
    wait_for_file,
    write_script,
)
from tests.runengine.scripts.test_runner import FakeLock

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def RE():
    engine = fresh_engine(call_returns_result=True)
    yield engine
    leave_idle(engine)


def in_run(*msgs, out=None):
    """open_run, a checkpoint, the messages (responses kept in ``out``), close_run."""

    def plan():
        yield Msg("open_run")
        yield Msg("checkpoint")
        for msg in msgs:
            response = yield msg
            if out is not None:
                out.append(response)
        yield Msg("close_run")

    return plan()


def script_msg(path, args=(), **kwargs):
    kwargs.setdefault("abort_sequence", FAST_ABORT)
    kwargs.setdefault("log", False)
    return Msg("run_script", None, path, args, **kwargs)


def validate(docs):
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)


def later_when(path, func, *args):
    th = threading.Thread(target=lambda: (wait_for_file(path), func(*args)))
    th.start()
    return th


def test_the_result_comes_back_and_status_is_an_event_stream_of_the_run(RE, docs, tmp_path):
    out = []
    RE(in_run(script_msg(write_script(tmp_path, "publish_n"), [2]), out=out))
    result = out[0]
    assert result.success and result.session_data == {"last": 1, "k0": 0, "k1": 1}
    validate(docs)
    (descriptor,) = [d for n, d in docs if n == "descriptor"]
    assert descriptor["name"] == "script_status"
    events = [d for n, d in docs if n == "event"]
    kinds = [e["data"]["type"] for e in events]
    assert kinds == [
        "spawned",
        "start",
        "session_data",
        "session_data",
        "session_log",
        "backend_error",
        "stop",
        "exited",
    ]
    assert [e["seq_num"] for e in events] == list(range(1, 9))
    assert {e["data"]["run_id"] for e in events} == {result.run_id}
    assert docs[-1][1]["num_events"] == {"script_status": 8}


def test_a_failing_script_fails_the_run_with_its_code(RE, docs, tmp_path):
    with pytest.raises(ScriptFailed, match="exited with code 3"):
        RE(in_run(script_msg(write_script(tmp_path, "exit_n"), [3])))
    assert RE.state == "idle"
    assert docs[-1][1]["exit_status"] == "fail"
    out = []
    RE(in_run(script_msg(write_script(tmp_path, "exit_n"), [3], check=False), out=out))
    assert out[0].returncode == 3 and not out[0].success


@pytest.mark.parametrize(
    ("verb", "exit_status"),
    [("abort", "abort"), ("stop", "success"), ("halt", "abort"), ("panic", "abort")],
)
def test_engine_interruptions_kill_the_whole_process_group(RE, docs, tmp_path, verb, exit_status):
    pidfile = tmp_path / "child.pid"
    lock = FakeLock()
    msg = script_msg(write_script(tmp_path, "grandchild"), [pidfile, "stay"], lock=lock)
    th = later_when(pidfile, getattr(RE, verb))
    try:
        with pytest.raises(RunEngineInterrupted):
            RE(in_run(msg))
        th.join(10)
        child = int(pidfile.read_text())
        assert wait_dead([child], 5) == []
        assert not group_alive(child)
        assert RE.state == ("panicked" if verb == "panic" else "idle")
        assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == exit_status
        assert lock.job is None and lock.released == 1
        events = [d["data"] for n, d in docs if n == "event"]
        assert events[-1]["type"] == "exited" and '"signal": 2' in events[-1]["payload"]
    finally:
        kill_leftovers([int(pidfile.read_text())] if pidfile.exists() else [])


def test_abort_escalates_for_a_script_ignoring_sigint(RE, docs, tmp_path):
    ready = tmp_path / "ready"
    runner = runner_for(RE)
    pids = []
    th = later_when(ready, lambda: (pids.append(runner.running[0].pid), RE.abort("enough")))
    with pytest.raises(RunEngineInterrupted):
        RE(in_run(script_msg(write_script(tmp_path, "ignore_sigint"), [ready])))
    th.join(10)
    assert not group_alive(pids[0])
    assert docs[-1][1]["exit_status"] == "abort" and docs[-1][1]["reason"] == "enough"
    assert RE.state == "idle"


def test_aborting_the_script_only_lets_the_plan_catch_it(RE, docs, tmp_path):
    ready = tmp_path / "ready"
    caught = []

    def plan():
        yield Msg("open_run")
        try:
            yield script_msg(write_script(tmp_path, "sleep_forever"), [ready])
        except ScriptAborted as err:
            caught.append(err)
        yield Msg("close_run")

    th = later_when(ready, runner_for(RE).abort, "skip it")
    RE(plan())
    th.join(10)
    assert caught and caught[0].result.abort_reason == "skip it"
    assert docs[-1][1]["exit_status"] == "success"
    assert runner_for(RE).abort() is False  # nothing left to abort: a clean no-op


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda d: script_msg(d / "missing.py"), ScriptNotFound, "not found"),
        (lambda d: script_msg(d / "plain.txt"), ScriptNotExecutable, "not executable"),
        (lambda d: script_msg(d / "plain.txt", [object()], interpreter="sh"), TypeError, "args"),
        (lambda d: script_msg(d / "plain.txt", "abc", interpreter="sh"), TypeError, "list"),
        (lambda d: script_msg(d / "plain.txt", on_pause="later"), ValueError, "on_pause"),
        (lambda d: script_msg(d / "plain.txt", colour="red"), TypeError, "colour"),
    ],
)
def test_bad_requests_fail_the_run_clearly_and_the_engine_is_idle(
    RE, docs, tmp_path, make, error, match
):
    (tmp_path / "plain.txt").write_text("echo hi\n")
    with pytest.raises(error, match=match):
        RE(in_run(make(tmp_path)))
    assert RE.state == "idle"
    assert docs[-1][1]["exit_status"] == "fail"
    assert not runner_for(RE).running
    out = []
    RE(in_run(script_msg(write_script(tmp_path, "hello")), out=out))  # and it works again
    assert out[0].success
