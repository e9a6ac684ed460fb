"""Hardware-lock messages in plans on our RunEngine: every exit path releases, interruptions
(pause, suspension, rewind) neither deadlock nor double-count, SuspendWhileLocked."""

import functools
import threading
import time

import pytest
from bluesky.suspenders import SuspendBoolHigh
from bluesky.utils import Msg
from ophyd import Signal

from runengine import RunEngineInterrupted
from runengine.locks import HardwareLock, LockError, LockLost, LockTimeout, SuspendWhileLocked
from runengine.plans.locks import acquire_lock, lock_decorator, release_lock, yield_lock


@pytest.fixture
def lock():
    return HardwareLock("mono", default_timeout=1.0)


def later(delay, func, *args):
    timer = threading.Timer(delay, func, args)
    timer.daemon = True
    timer.start()
    return timer


def holding_plan(lock, seen, sleep=0.5, fail=None, timeout=None, then=None):
    yield Msg("checkpoint")
    if then is not None:
        then()  # on the engine's thread, once a pause can be resumed
    token = yield from acquire_lock(lock, job="scan", timeout=timeout)
    seen.append(lock.holder)
    yield Msg("sleep", None, sleep)
    if fail is not None:
        raise fail
    yield from release_lock(token)


def thread_holding(lock, job, hold):
    """A thread that takes ``lock`` now and lets it go after ``hold`` s."""
    token = lock.acquire_token(0, job)
    later(hold, lock.release, token)
    return token


# Exit paths -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "raised"),
    [(ValueError("boom"), ValueError), (KeyboardInterrupt(), RunEngineInterrupted)],  # a halt
)
def test_a_plan_exception_releases(RE, lock, error, raised):
    seen = []
    with pytest.raises(raised):
        RE(holding_plan(lock, seen, 0.01, fail=error))
    assert seen[0].job == "scan" and seen[0].owner.startswith("RE:")
    assert lock.holder is None


@pytest.mark.parametrize("how", ["stop", "abort", "halt"])
def test_stop_abort_halt_after_a_pause_release(RE, lock, how):
    seen = []
    with pytest.raises(RunEngineInterrupted):
        RE(holding_plan(lock, seen, then=lambda: later(0.15, RE.request_pause)))
    assert RE.state == "paused" and lock.job == "scan"  # held across the pause by default
    getattr(RE, how)()
    assert RE.state == "idle" and lock.holder is None


@pytest.mark.parametrize("how", ["stop", "abort", "halt"])
def test_stop_abort_halt_while_running_release(RE, lock, how):
    with pytest.raises(RunEngineInterrupted):
        RE(holding_plan(lock, [], sleep=5, then=lambda: later(0.15, getattr(RE, how))))
    assert RE.state == "idle" and lock.holder is None


def test_panic_releases(RE, lock):
    with pytest.raises(RunEngineInterrupted):
        RE(holding_plan(lock, [], sleep=5, then=lambda: later(0.15, RE.panic)))
    RE.all_is_well()
    assert lock.holder is None


def test_lock_timeout_in_a_plan_names_the_holder(RE, lock):
    thread_holding(lock, "count", 5)
    start = time.monotonic()
    with pytest.raises(LockTimeout, match="'count'"):
        RE(holding_plan(lock, []))
    assert time.monotonic() - start < 1.0 + 0.5
    lock.cancel_waiting()


# Pauses and rewinds ------------------------------------------------------------------------------
def test_pause_while_waiting_leaves_no_ghost_and_resume_retries(RE, lock):
    token = thread_holding(lock, "count", 60)
    seen = []
    pause_soon = lambda: later(0.2, RE.request_pause)  # noqa: E731
    with pytest.raises(RunEngineInterrupted):
        RE(holding_plan(lock, seen, sleep=0.01, timeout=-1, then=pause_soon))
    assert RE.state == "paused" and lock.holder.waiters == ()
    lock.release(token)
    RE.resume()
    assert seen[0].job == "scan" and lock.holder is None


def test_pause_while_waiting_without_checkpoint_does_not_hand_out_none(RE):
    lock = HardwareLock("mono", default_timeout=-1)
    token = thread_holding(lock, "count", 60)

    got = []

    def plan():
        got.append((yield from acquire_lock(lock)))
        yield from release_lock(got[-1])

    later(0.2, RE.request_pause)
    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    # Paused before any checkpoint: the wait is cut short, not left queued, and replayed.
    assert RE.state == "paused" and lock.holder.waiters == () and got == []
    lock.release(token)
    RE.resume()
    assert len(got) == 1 and got[0] is not None and lock.holder is None


def counted_plan(lock, log, sleep=0.3, then=None):
    yield Msg("checkpoint")
    if then is not None:
        then()
    token = yield from acquire_lock(lock, job="scan")
    inner = yield from acquire_lock(lock, job="scan")  # nested: counted
    yield from release_lock(inner)
    log.append(("after inner release", lock.job))
    yield Msg("sleep", None, sleep)
    yield from release_lock(token)
    log.append(("after release", lock.job))
    yield Msg("sleep", None, 0.05)


def test_suspend_while_holding_then_rewind_replays_without_double_counting(RE, lock):
    beam = Signal(name="beam", value=0)
    RE.install_suspender(SuspendBoolHigh(beam, sleep=0.05))
    seen = []  # (command, the lock's job as the message arrives)
    RE.msg_hook = lambda msg: seen.append((msg.command, lock.job))
    log = []
    later(0.4, beam.put, 0)
    RE(counted_plan(lock, log, then=lambda: later(0.1, beam.put, 1)))
    commands = [command for command, _ in seen]
    assert "_start_suspender" in commands
    assert commands.count("acquire_lock") == 4  # two, and their replay after the suspension
    assert commands.count("release_lock") == 3  # the inner one replayed
    suspended = commands.index("_start_suspender")
    assert {job for _, job in seen[suspended:-2]} == {"scan"}  # held through it all
    assert log == [("after inner release", "scan"), ("after release", None)]  # no count left
    assert lock.holder is None


def test_pause_and_resume_while_holding_replays_cleanly(RE, lock):
    log = []
    with pytest.raises(RunEngineInterrupted):
        RE(counted_plan(lock, log, then=lambda: later(0.15, RE.request_pause)))
    assert lock.job == "scan"
    RE.resume()
    assert log[-1] == ("after release", None) and lock.holder is None


def test_release_on_pause_drops_and_takes_back_before_the_replay(RE):
    lock = HardwareLock("mono", default_timeout=5, release_on_pause=True)
    log = []
    with pytest.raises(RunEngineInterrupted):
        RE(counted_plan(lock, log, then=lambda: later(0.15, RE.request_pause)))
    assert lock.holder is None  # let go while paused: others may use it
    assert lock.acquire(0, job="operator")
    thread_token = lock._token
    later(0.3, lock.release, thread_token)
    start = time.monotonic()
    RE.msg_hook = lambda msg: log.append((msg.command, lock.job))
    RE.resume()
    assert time.monotonic() - start > 0.25  # it waited for the operator
    commands = [entry[0] for entry in log]
    assert log[commands.index("_reacquire_locks")] == ("_reacquire_locks", "operator")
    after = log[commands.index("_reacquire_locks") + 1]
    assert after == ("acquire_lock", "scan")  # held again before the first replayed message
    assert log[-1] == ("sleep", None) and lock.holder is None


def test_yield_lock_lets_a_thread_in_and_a_lost_token_is_not_released(RE, lock):
    got = []

    def plan():
        yield Msg("checkpoint")
        token = yield from acquire_lock(lock, job="scan")
        threading.Thread(target=print_task, daemon=True).start()
        while not lock._queue:
            yield Msg("sleep", None, 0.01)
        token = yield from yield_lock(token, timeout=5)  # the print task gets in here
        got.append(token.valid)
        threading.Thread(target=second, daemon=True).start()
        while not lock._queue:
            yield Msg("sleep", None, 0.01)
        try:
            yield from yield_lock(token, timeout=0)  # a waiter and timeout 0: lost
        except LockLost:
            got.append("lost")
        with pytest.raises(LockError):
            yield from release_lock(token)

    def print_task():
        with lock.acquire_timeout(3, job="print") as acquired:
            got.append(("print", bool(acquired)))

    def second():
        with lock.acquire_timeout(3, job="second") as acquired:
            got.append(("second", bool(acquired)))
            time.sleep(0.2)

    RE(plan())
    assert got[:2] == [("print", True), True] and "lost" in got
    time.sleep(0.4)
    assert ("second", True) in got and lock.holder is None


def test_a_decorated_plan_aborted_while_holding_releases(RE, lock):
    @lock_decorator(lock, job="relock", timeout=1)
    def plan():
        yield Msg("checkpoint")
        later(0.2, RE.abort)
        yield Msg("sleep", None, 5)

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    assert lock.holder is None


def test_releasing_a_token_of_another_call_raises(RE, lock):
    tokens = []

    def first():
        tokens.append((yield from acquire_lock(lock)))

    RE(first())
    assert lock.holder is None and not tokens[0].valid
    with pytest.raises(LockError):
        RE(release_lock(tokens[0]))


# The seed's scenario with a plan on one side ------------------------------------------------------
def test_seed_scenario_plan_counts_thread_prints(RE):
    lock = HardwareLock("agent")
    printed = []

    def count_plan(n=6, period=0.1):
        yield Msg("checkpoint")
        token = yield from acquire_lock(lock, job="count", timeout=5)
        for _ in range(n):
            yield Msg("sleep", None, period)
            token = yield from yield_lock(token, timeout=10 * period)

    def print_task(text):
        with lock.acquire_timeout(0.4, job="print") as acquired:
            printed.append(text if acquired else f"blocked by {lock.job}")

    for i, delay in enumerate((0.15, 0.3, 0.45)):
        later(delay, print_task, f"hello {i}")
    RE(count_plan())
    time.sleep(0.1)
    assert printed == ["hello 0", "hello 1", "hello 2"] and lock.holder is None


def test_seed_scenario_thread_counts_plan_prints(RE):
    lock = HardwareLock("agent")
    stop = threading.Event()

    def count():
        with lock.acquire_timeout(0, job="count") as acquired:
            assert acquired
            while not stop.is_set():
                time.sleep(0.1)
                if not lock.release_and_acquire(timeout=1):
                    return

    threading.Thread(target=count, daemon=True).start()
    time.sleep(0.05)

    @lock_decorator(lock, job="print", timeout=0.4)
    def print_plan():
        yield Msg("null")
        return lock.job

    RE_result = [RE(print_plan()) for _ in range(3)]
    assert RE_result == [(), (), ()]
    assert lock.job == "count"
    stop.set()


# SuspendWhileLocked ------------------------------------------------------------------------
def sleepy(n=4, step=0.05, after_checkpoint=None):
    yield Msg("checkpoint")
    if after_checkpoint is not None:
        after_checkpoint()  # on the engine's thread, once a suspension can be resumed
    for _ in range(n):
        yield Msg("sleep", None, step)
        yield Msg("checkpoint")


def test_suspender_trips_only_for_foreign_owners(RE, lock):
    RE.install_suspender(SuspendWhileLocked(lock))
    commands = []
    RE.msg_hook = lambda msg: commands.append(msg.command)
    RE(holding_plan(lock, [], sleep=0.1))
    assert "_start_suspender" not in commands and "wait_for" not in commands


def test_suspender_holds_a_started_plan_until_release_plus_sleep(RE, lock):
    RE.install_suspender(SuspendWhileLocked(lock, sleep=0.2))
    thread_holding(lock, "count", 0.3)
    start = time.monotonic()
    RE(sleepy())
    assert time.monotonic() - start > 0.3 + 0.2


def test_suspender_suspends_mid_plan_and_resumes_after_sleep(RE, lock):
    suspender = SuspendWhileLocked(lock, sleep=0.1, tripped_message="manual control")
    RE.install_suspender(suspender)
    commands = []
    RE.msg_hook = lambda msg: commands.append(msg.command)
    start = time.monotonic()
    RE(sleepy(n=6, after_checkpoint=lambda: thread_holding(lock, "count", 0.4)))
    assert "_start_suspender" in commands and "_resume_from_suspender" in commands
    assert time.monotonic() - start > 0.4 + 0.1
    assert not suspender.tripped


def test_installing_while_tripped_suspends_a_running_plan(RE, lock):
    thread_holding(lock, "count", 0.4)
    suspender = SuspendWhileLocked(lock)
    assert "count" in suspender._justification()
    commands = []
    RE.msg_hook = lambda msg: commands.append(msg.command)
    start = time.monotonic()
    RE(sleepy(n=6, after_checkpoint=lambda: RE.install_suspender(suspender)))
    assert "_start_suspender" in commands
    assert time.monotonic() - start > 0.4


@pytest.mark.parametrize("when", ["at start", "mid plan"])
def test_suspender_timeout_is_an_error_naming_the_holder(RE, lock, when):
    RE.install_suspender(SuspendWhileLocked(lock, timeout=0.3))
    hold = functools.partial(thread_holding, lock, "count", 3)
    if when == "at start":
        hold()
    start = time.monotonic()
    with pytest.raises(LockTimeout, match="'count'"):
        RE(sleepy(n=8, after_checkpoint=None if when == "at start" else hold))
    assert time.monotonic() - start < 2
    assert RE.state == "idle" and RE.rewindable
