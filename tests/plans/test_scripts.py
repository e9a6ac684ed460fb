"""run_script as a plan step: pauses follow on_pause, and a resume never runs a script twice."""

from __future__ import annotations

import threading
import time

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import pytest
from bluesky.suspenders import SuspendBoolHigh
from bluesky.utils import Msg, RunEngineInterrupted
from ophyd.sim import Signal

from runengine import RunEngine
from runengine.locks import HardwareLock, LockTimeout
from runengine.plans.scripts import run_script
from runengine.scripts import LockUnavailable, ScriptInterrupted
from runengine.scripts.commands import runner_for
from tests.runengine.scripts.kit import FAST_ABORT, wait_for_file, write_script
from tests.runengine.scripts.test_runner import FakeLock

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def RE():
    engine = RunEngine({}, context_managers=[], call_returns_result=True)
    yield engine
    if not engine.state.is_idle:
        engine.halt()


@pytest.fixture
def counter(tmp_path):
    """(script, file its runs are counted in, a function returning the count)."""
    runs = tmp_path / "runs.txt"

    def count():
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    return write_script(tmp_path, "count_runs"), runs, count


def step(path, args, out, **kwargs):
    kwargs.setdefault("abort_sequence", FAST_ABORT)
    kwargs.setdefault("log", False)

    @bpp.run_decorator()
    def plan():
        out.append((yield from run_script(path, args, **kwargs)))
        yield from bps.null()

    return plan()


def pause_when_running(RE, runs):
    def go():
        wait_for_file(runs)
        RE.request_pause()

    th = threading.Thread(target=go)
    th.start()
    return th


def test_on_pause_finish_pauses_after_the_script_and_resume_does_not_rerun(RE, counter):
    script, runs, count = counter
    out = []
    th = pause_when_running(RE, runs)
    t0 = time.monotonic()
    with pytest.raises(RunEngineInterrupted):
        RE(step(script, [runs, 1.0], out))
    th.join(10)
    assert time.monotonic() - t0 > 0.9  # the script ran to its end before the pause
    assert RE.state == "paused" and count() == 1
    assert not runner_for(RE).running  # the script had ended
    result = RE.resume()
    assert result.exit_status == "success"
    assert count() == 1 and out[0].success and not out[0].interrupted


def test_on_pause_interrupt_aborts_and_resume_raises_instead_of_rerunning(RE, counter):
    script, runs, count = counter
    out = []
    th = pause_when_running(RE, runs)
    t0 = time.monotonic()
    with pytest.raises(RunEngineInterrupted):
        RE(step(script, [runs, 30], out, on_pause="interrupt"))
    th.join(10)
    assert time.monotonic() - t0 < 10 and RE.state == "paused"
    assert not runner_for(RE).running
    with pytest.raises(ScriptInterrupted, match="on_pause='interrupt'"):
        RE.resume()
    assert RE.state == "idle" and count() == 1


def test_on_pause_interrupt_with_check_false_returns_an_interrupted_result(RE, counter):
    script, runs, count = counter
    out = []
    th = pause_when_running(RE, runs)
    with pytest.raises(RunEngineInterrupted):
        RE(step(script, [runs, 30], out, on_pause="interrupt", check=False))
    th.join(10)
    assert RE.resume().exit_status == "success"
    assert count() == 1 and out[0].interrupted and out[0].signal == 2 and not out[0].success


def test_a_replayed_message_answers_with_its_result_without_rerunning(RE, counter):
    script, runs, count = counter
    out = []

    def plan():
        yield Msg("checkpoint")
        out.append((yield from run_script(script, [runs, 0], log=False, checkpoint=False)))
        yield Msg("sleep", None, 1.0)  # paused here: the replay holds run_script

    th = threading.Thread(target=lambda: (wait_for_file(runs), time.sleep(0.5), RE.request_pause()))
    th.start()
    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    th.join(10)
    RE.resume()
    assert count() == 1 and len(out) == 1 and out[0].success


def test_a_suspension_during_the_script_waits_for_it_then_resumes_once(RE, counter):
    script, runs, count = counter
    sig = Signal(name="beam_dump", value=0)
    RE.install_suspender(SuspendBoolHigh(sig, sleep=0))
    out = []

    def trip_and_clear():
        wait_for_file(runs)
        sig.put(1)
        time.sleep(1.5)
        sig.put(0)

    th = threading.Thread(target=trip_and_clear)
    th.start()
    result = RE(step(script, [runs, 0.8], out))
    th.join(10)
    assert result.exit_status == "success"
    assert count() == 1 and out[0].success


def test_the_lock_is_held_while_the_script_runs_and_refuses_a_second_holder(RE, counter):
    script, runs, count = counter
    lock = FakeLock()
    held = []

    def peek():
        wait_for_file(runs)
        held.append(lock.job)

    th = threading.Thread(target=peek)
    th.start()
    RE(step(script, [runs, 0.3], [], lock=lock))
    th.join(10)
    assert held == ["count_runs.py"] and lock.job is None
    lock.job = "tune_squids"
    with pytest.raises(LockUnavailable, match="tune_squids"):
        RE(step(script, [runs, 0], [], lock=lock))
    assert RE.state == "idle" and count() == 1


def test_a_hardware_lock_is_held_by_the_step_and_busy_is_a_lock_timeout(RE, counter):
    script, runs, count = counter
    lock = HardwareLock()
    held = []
    th = threading.Thread(target=lambda: (wait_for_file(runs), held.append(lock.job)))
    th.start()
    RE(step(script, [runs, 0.3], [], lock=lock, job="tune"))
    th.join(10)
    assert held == ["tune"] and lock.job is None
    assert lock.acquire(0, "operator")
    try:
        with pytest.raises(LockTimeout, match="operator"):
            RE(step(script, [runs, 0], [], lock=lock))
    finally:
        lock.release()
    assert RE.state == "idle" and count() == 1
