"""SuspendWhileLocked on bluesky's SuspenderBase template, on bluesky's RunEngine and ours.

Its behaviour on our engine (trips, sleep, timeouts) is tested in tests/runengine/commands/
test_locks.py; here: that it is a SuspenderBase, and that both engines suspend and resume the
same way under the same lock contention.
"""

import threading
import time

import pytest
from bluesky.suspenders import SuspenderBase
from bluesky.utils import Msg

from runengine.locks import HardwareLock, LockTimeout
from runengine.suspenders import SuspendWhileLocked
from tests.runengine.side_by_side import message_signatures, run_plan


def later(delay, func, *args):
    timer = threading.Timer(delay, func, args)
    timer.daemon = True
    timer.start()
    return timer


@pytest.fixture
def lock():
    lock = HardwareLock("mono", default_timeout=1.0)
    yield lock
    token = lock._token
    if token is not None:
        lock.release(token)


def contended(lock, hold, after=0.5):
    """A plan factory: an operator takes ``lock`` after the checkpoint, for ``hold`` s (or
    until the test releases it)."""

    def make_plan(hw):
        yield Msg("checkpoint")
        token = lock.acquire_token(0, "operator")  # not the engine's: it trips the suspender
        later(hold, lambda: token.valid and lock.release(token))
        yield Msg("sleep", None, after)
        yield Msg("null")

    return make_plan


def test_it_is_a_bluesky_suspender_on_the_template(lock, RE):
    suspender = SuspendWhileLocked(lock)
    assert isinstance(suspender, SuspenderBase)
    assert not SuspendWhileLocked.__abstractmethods__
    assert SuspendWhileLocked.__call__ is SuspenderBase.__call__  # bluesky decides when to act
    assert suspender._should_resume(None) and not suspender._should_suspend(None)
    operator = lock.acquire_token(0, "operator")
    assert suspender._should_suspend(operator)
    RE.install_suspender(suspender)
    assert suspender.tripped and "'operator'" in suspender.get_futures()[1]
    assert "get_futures" not in vars(suspender)  # the engine's harden() left its own in place
    lock.release(operator)
    assert not suspender.tripped and suspender.get_futures() == ([], "")


def test_the_engine_own_plans_do_not_trip_it(lock, RE):
    from runengine.plans.locks import acquire_lock, release_lock

    suspender = SuspendWhileLocked(lock)
    RE.install_suspender(suspender)
    seen = []

    def plan():
        token = yield from acquire_lock(lock, job="scan")
        seen.append(suspender.tripped)
        yield from release_lock(token)

    RE(plan())
    assert seen == [False]


def test_bluesky_and_ours_suspend_and_resume_alike(engine_pair, lock, capsys, monkeypatch):
    outcomes, times, justifications = [], [], []
    for RE in engine_pair:
        request = RE.request_suspend

        def spy(fut, *, request=request, **kwargs):
            justifications.append(kwargs["justification"])
            request(fut, **kwargs)

        monkeypatch.setattr(RE, "request_suspend", spy)
        suspender = SuspendWhileLocked(
            lock,
            sleep=0.1,
            pre_plan=lambda: [Msg("null", None, "pre")],
            post_plan=lambda: [Msg("null", None, "post")],
            tripped_message="manual alignment",
        )
        RE.install_suspender(suspender)
        start = time.monotonic()
        outcomes.append(run_plan(RE, contended(lock, hold=0.3)))
        times.append(time.monotonic() - start)
        RE.remove_suspender(suspender)
        assert not suspender.tripped and lock.holder is None
    theirs, ours = outcomes
    assert theirs.error is None and ours.error is None
    commands = [m.command for m in ours.msgs]
    assert commands == [
        "checkpoint", "sleep",
        "_start_suspender", "rewindable", "null", "wait_for", "_resume_from_suspender", "null",
        "rewindable", "sleep", "null",
    ]  # fmt: skip
    assert message_signatures(ours.msgs) == message_signatures(theirs.msgs)
    assert all(t > 0.3 + 0.1 for t in times)  # held until the release, then slept
    out = capsys.readouterr().out
    assert out.count("the lock is free; resuming in 0.1 s.") == 2  # announced on both
    assert "reports a return to nominal conditions" not in out  # bluesky's print is not used
    assert len(justifications) == 2 and justifications[0] == justifications[1]
    assert justifications[0].startswith("Hardware lock 'mono' is held by job 'operator' (")
    assert justifications[0].endswith("): manual alignment")


def test_bluesky_and_ours_time_out_alike(engine_pair, lock):
    outcomes = []
    for RE in engine_pair:
        suspender = SuspendWhileLocked(lock, timeout=0.3)
        RE.install_suspender(suspender)
        start = time.monotonic()
        outcomes.append(run_plan(RE, contended(lock, hold=3)))
        assert time.monotonic() - start < 2
        RE.remove_suspender(suspender)
        lock.release(lock._token)
        assert RE.state == "idle" and RE.rewindable
    theirs, ours = outcomes
    for outcome in outcomes:
        assert isinstance(outcome.error, LockTimeout)
        assert "'operator'" in str(outcome.error)
    assert message_signatures(ours.msgs) == message_signatures(theirs.msgs)
