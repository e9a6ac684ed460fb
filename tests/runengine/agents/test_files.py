"""The file-triggered pausing agent and the SuspendWhileFileExists suspender."""

import os
import shutil
import threading
import time

import pytest
from bluesky.utils import Msg

from runengine import RunEngineInterrupted
from runengine.agents import FilePausingAgent, PathWatcher, SuspendWhileFileExists
from runengine.plans.pausing import do_nothing
from tests.conftest import threads_left
from tests.timing import later

from .conftest import wait_until

pytestmark = pytest.mark.usefixtures("no_thread_leak")
MODES = pytest.mark.parametrize("use_watchdog", [True, False], ids=["watchdog", "polling"])


@MODES
def test_a_file_pauses_the_plan_and_holds_the_resume_until_removed(RE, tmp_path, use_watchdog):
    flag = tmp_path / "PAUSE"
    with FilePausingAgent(RE, flag, "beam-hold", use_watchdog=use_watchdog) as agent:
        assert agent.mode == ("watchdog" if use_watchdog else "polling")
        later(0.2, flag.touch)
        with pytest.raises(RunEngineInterrupted):
            RE(do_nothing(timeout=1.5, step=0.02))
        assert RE.state == "paused"
        assert RE.resume() == ["beam-hold"]
        assert RE.state == "paused"
        flag.unlink()
        assert isinstance(RE.resume(), tuple)
    assert RE.state == "idle"
    assert agent.requests == 1 and agent.errors == []


@MODES
def test_reaction_is_well_under_a_second(RE, tmp_path, use_watchdog):
    flag = tmp_path / "PAUSE"
    paused_at = []
    RE.state_hook = lambda new, old: new == "pausing" and paused_at.append(time.perf_counter())
    created = []

    def create():
        created.append(time.perf_counter())
        flag.touch()

    with FilePausingAgent(RE, flag, use_watchdog=use_watchdog, poll_interval=0.25):
        later(0.3, create)
        with pytest.raises(RunEngineInterrupted):
            RE(do_nothing(timeout=5, step=0.01))
        RE.stop()
    assert 0 < paused_at[0] - created[0] < 0.6


def test_auto_resume_resumes_a_pause_it_caused_once_the_file_is_gone(RE, tmp_path):
    flag = tmp_path / "PAUSE"
    agent = FilePausingAgent(RE, flag, auto_resume=True).start()
    later(0.2, flag.touch)
    with pytest.raises(RunEngineInterrupted):
        RE(do_nothing(timeout=0.6, step=0.02))
    assert RE.state == "paused"
    flag.unlink()
    wait_until(lambda: RE.state == "idle", what="resumed by the agent")
    agent.stop()
    assert len(agent.results) == 1 and isinstance(agent.results[0], tuple)
    assert agent.errors == []


def test_auto_resume_leaves_a_pause_someone_else_asked_for(RE, tmp_path):
    flag = tmp_path / "PAUSE"
    with FilePausingAgent(RE, flag, auto_resume=True) as agent:
        later(0.1, RE.request_pause)
        with pytest.raises(RunEngineInterrupted):
            RE(do_nothing(timeout=5, step=0.02))
        flag.touch()
        wait_until(lambda: agent._holding, what="the agent holding the pause")
        assert RE.resume() == [agent.name]
        flag.unlink()
        time.sleep(0.5)
        assert RE.state == "paused" and agent.results == []
        RE.stop()


@MODES
def test_the_directory_may_be_removed_and_re_created(RE, tmp_path, use_watchdog):
    directory = tmp_path / "flags" / "deeper"
    directory.mkdir(parents=True)
    flag = directory / "PAUSE"
    with FilePausingAgent(RE, flag, use_watchdog=use_watchdog) as agent:
        time.sleep(0.1)
        shutil.rmtree(tmp_path / "flags")
        time.sleep(0.3)
        directory.mkdir(parents=True)
        time.sleep(0.1)

        def create():
            agent.created = time.perf_counter()  # first: the pause may come at once
            flag.touch()

        later(0.3, create)
        paused = []
        RE.state_hook = lambda new, old: new == "pausing" and paused.append(time.perf_counter())
        with pytest.raises(RunEngineInterrupted):
            RE(do_nothing(timeout=1.5, step=0.02))
        assert paused[0] - agent.created < 0.6
        assert RE.resume() == [agent.name]
        shutil.rmtree(directory)  # the directory goes, and the file with it
        assert isinstance(RE.resume(), tuple)
    assert agent.errors == []


def test_a_file_present_before_the_run_pauses_the_next_plan(RE, tmp_path):
    flag = tmp_path / "PAUSE"
    flag.touch()
    with FilePausingAgent(RE, flag, poll_interval=0.05):
        time.sleep(0.2)
        with pytest.raises(RunEngineInterrupted):
            RE(do_nothing(timeout=5, step=0.02))
        assert RE.resume() and RE.state == "paused"
        RE.stop()  # stopped while the file exists: the next plan is paused again
        with pytest.raises(RunEngineInterrupted):
            RE(do_nothing(timeout=5, step=0.02))
        flag.unlink()
        RE.stop()


def test_errors_in_the_agent_are_reported_and_it_keeps_working(RE, tmp_path):
    flag = tmp_path / "PAUSE"
    reported = []

    class Broken:
        state = "running"
        deferred_pause_requested = False

        def request_pause(self, *args):
            raise OSError("no engine here")

    with FilePausingAgent(Broken(), flag, on_error=lambda a, e: reported.append(e)) as agent:
        flag.touch()
        wait_until(lambda: len(agent.errors) >= 2, what="errors reported at every look")
        assert agent.watcher._loop_thread.is_alive()
    assert all(isinstance(e, OSError) for e in agent.errors)
    assert reported[:2] == agent.errors[:2]


def test_the_watcher_stops_cleanly_and_threads_go_away(tmp_path):
    before = set(threading.enumerate())
    seen = []
    for _ in range(3):
        watcher = PathWatcher(tmp_path / "x", lambda e, c: c and seen.append(e)).start()
        time.sleep(0.05)
        assert set(threading.enumerate()) - before  # its thread and watchdog's
        watcher.stop()
    assert threads_left(before) == []
    assert seen == [False, False, False]


# ---- the suspender form ------------------------------------------------------------------
@MODES
def test_suspend_while_the_file_exists_and_resume_after_it_is_gone(RE, tmp_path, use_watchdog):
    flag = tmp_path / "HOLD"
    suspender = SuspendWhileFileExists(flag, sleep=0.1, use_watchdog=use_watchdog)
    RE.install_suspender(suspender)
    seen = []
    RE.msg_hook = lambda msg: seen.append(msg.command)
    later(0.1, flag.touch)
    later(0.6, os.unlink, flag)
    start = time.monotonic()
    RE([Msg("checkpoint"), Msg("sleep", None, 0.3), Msg("null")])
    assert time.monotonic() - start > 0.6
    assert seen.count("_start_suspender") == 1 and "_resume_from_suspender" in seen
    RE.remove_suspender(suspender)
    assert suspender.errors == []


def test_a_file_present_at_install_holds_the_start(RE, tmp_path, capsys):
    flag = tmp_path / "HOLD"
    flag.touch()
    suspender = SuspendWhileFileExists(flag)
    RE.install_suspender(suspender)
    assert suspender.tripped
    assert f"File {flag} exists" in suspender._get_justification()
    ran = []
    later(0.3, flag.unlink)
    start = time.monotonic()
    RE([Msg("checkpoint"), Msg("null")], lambda *a: None)
    ran.append(time.monotonic() - start)
    assert ran[0] > 0.25
    assert "At least one suspender has tripped" in capsys.readouterr().out
    RE.remove_suspender(suspender)


def test_a_directory_vanishing_while_the_watch_is_set_leaks_nothing(tmp_path, monkeypatch):
    before = set(threading.enumerate())
    gone = tmp_path / "gone"
    calls = []
    original = PathWatcher._dirs_to_watch

    def racy(self):  # the first time, the directory disappears between looking and watching
        calls.append(1)
        return (gone,) if len(calls) == 1 else original(self)

    monkeypatch.setattr(PathWatcher, "_dirs_to_watch", racy)
    seen = []
    watcher = PathWatcher(tmp_path / "x", lambda e, c: c and seen.append(e)).start()
    wait_until(lambda: watcher._observer is not None, what="the watch set on the next look")
    (tmp_path / "x").touch()
    wait_until(lambda: seen == [False, True], what="the file seen")
    watcher.stop()
    assert watcher.errors == [] and watcher.mode == "watchdog"
    assert threads_left(before) == []
