"""Plan stubs and the decorator for hardware locks."""

import threading
import time

import pytest
from bluesky.utils import Msg

from runengine import RunEngine
from runengine.locks import HardwareLock, LockError, LockLost, LockTimeout
from runengine.plans.locks import (
    acquire_lock,
    lock_decorator,
    lock_wrapper,
    release_lock,
    try_acquire_lock,
    yield_lock,
)


@pytest.fixture(scope="module")
def RE():
    return RunEngine({}, context_managers=[], call_returns_result=True)


@pytest.fixture
def lock():
    return HardwareLock("stage", default_timeout=0.2)


def test_stubs_make_the_messages(lock):
    plan = acquire_lock(lock, job="j", timeout=3)
    msg = next(plan)
    assert msg == Msg("acquire_lock", lock, job="j", timeout=3)
    assert next(yield_lock("tok", timeout=1)) == Msg("yield_lock", "tok", timeout=1)
    assert next(release_lock("tok")) == Msg("release_lock", "tok")


def test_acquire_yield_release_round_trip(RE, lock):
    def plan():
        token = yield from acquire_lock(lock, job="scan")
        holder = lock.holder
        token = yield from yield_lock(token)
        yield from release_lock(token)
        return holder, token.valid

    holder, valid = RE(plan()).plan_result
    assert holder.job == "scan" and valid is False and lock.holder is None


def test_try_acquire_returns_none_while_held(RE, lock):
    other = lock.acquire_token(0, "count")

    def plan():
        return (yield from try_acquire_lock(lock, timeout=0))

    assert RE(plan()).plan_result is None
    lock.release(other)
    assert RE(plan()).plan_result.job == "plan"  # the plan's name is the default job


def test_acquire_raises_naming_the_holder(RE, lock):
    other = lock.acquire_token(0, "count")
    with pytest.raises(LockTimeout, match="'count'"):
        RE(acquire_lock(lock, timeout=0))
    lock.release(other)


def test_decorator_releases_on_an_exception(RE, lock):
    inside = []

    @lock_decorator(lock, timeout=0)
    def plan(x):
        inside.append((x, lock.job))
        yield Msg("null")
        raise RuntimeError("device fault")

    with pytest.raises(RuntimeError, match="device fault"):
        RE(plan(7))
    assert inside == [(7, "plan")] and lock.holder is None


def test_wrapper_gives_a_callable_plan_its_token(RE, lock):
    def body(token):
        yield Msg("null")
        token = yield from yield_lock(token)
        return token.job

    result = RE(lock_wrapper(body, lock, job="relock"))
    assert result.plan_result == "relock" and lock.holder is None


def test_wrapper_does_not_release_someone_elses_lock_after_losing_its_own(RE, lock):
    """Pitfall B in plan form: the wrapper's token was lost to a yield, so leaving it must not
    release the lock of the job that now holds it."""
    taken = threading.Event()

    def print_task():
        token = lock.acquire_token(5, "print")
        taken.set()
        time.sleep(0.5)
        lock.release(token)

    def body(token):
        threading.Thread(target=print_task, daemon=True).start()
        yield Msg("sleep", None, 0.1)  # the task queues meanwhile
        yield from yield_lock(token, timeout=0)  # lost: the task holds it now

    with pytest.raises(LockLost):
        RE(lock_wrapper(body, lock, job="acq"))
    assert taken.wait(2) and lock.job == "print"
    time.sleep(0.6)
    assert lock.holder is None


def test_nested_decorators_on_one_lock_are_counted(RE, lock):
    @lock_decorator(lock, job="outer")
    def outer():
        yield from inner()
        return lock.job

    @lock_decorator(lock, job="inner")
    def inner():
        yield Msg("null")

    assert RE(outer()).plan_result == "outer"  # the inner release left the outer hold
    assert lock.holder is None


def test_release_of_an_invalid_token_raises(RE, lock):
    def plan():
        token = yield from acquire_lock(lock)
        yield from release_lock(token)
        yield from release_lock(token)

    with pytest.raises(LockError):
        RE(plan())
    assert lock.holder is None
