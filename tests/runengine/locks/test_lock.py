"""HardwareLock from plain threads: OCS TimeoutLock's semantics and the fixes of its bugs.

Timing bounds are generous on purpose: they tell "one deadline" from "two deadlines", never
measure the machine.
"""

import math
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runengine.locks import (
    HardwareLock,
    LockCancelled,
    LockError,
    LockLost,
    LockTimeout,
    check_timeout,
)

SLACK = 0.25


def in_thread(func, *args):
    out = {}

    def run():
        try:
            out["result"] = func(*args)
        except BaseException as err:
            out["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def wait_for_waiters(lock, n, timeout=2.0):
    deadline = time.monotonic() + timeout
    while len(lock._queue) < n:
        assert time.monotonic() < deadline, f"expected {n} waiters, have {len(lock._queue)}"
        time.sleep(0.002)


@pytest.fixture
def held():
    lock = HardwareLock("mono", default_timeout=0.0)
    thread, out = in_thread(lock.acquire_token, 0, "count")
    thread.join()
    return lock, out["result"]


# 1 -------------------------------------------------------------------------------------------
def test_try_once_fails_at_once_naming_the_holder(held):
    lock, _ = held
    start = time.monotonic()
    with pytest.raises(LockTimeout, match="'count'") as info:
        lock.acquire_token(0, job="print")
    assert time.monotonic() - start < SLACK
    assert info.value.holder.job == "count" and lock.holder.job == "count"
    assert lock.job == "count"
    assert lock.acquire(0, job="print") is False
    assert lock.job == "count"  # a failed acquire leaves the holder's job alone


# 2 -------------------------------------------------------------------------------------------
def test_none_means_the_default_timeout():
    lock = HardwareLock("mono", default_timeout=0.3)
    thread, _ = in_thread(lock.acquire_token, 0, "count")
    thread.join()
    start = time.monotonic()
    assert lock.acquire(job="print") is False
    assert 0.3 <= time.monotonic() - start < 0.3 + SLACK


def test_one_deadline_even_with_waiters_queued_before(held):
    lock, _ = held
    threads = [in_thread(lock.acquire, 5.0, f"w{i}") for i in range(2)]
    wait_for_waiters(lock, 2)
    start = time.monotonic()
    assert lock.acquire(0.3, job="late") is False
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 0.3 + SLACK  # OCS waited up to 2 x timeout here
    assert lock.cancel_waiting() == 2
    for thread, out in threads:
        thread.join(2)
        assert out["result"] is False


# 3 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("forever", [math.inf, -1])
def test_inf_and_minus_one_wait_for_ever(held, forever):
    lock, token = held
    thread, out = in_thread(lock.acquire_token, forever, "print")
    time.sleep(0.4)
    assert thread.is_alive() and lock.holder.waiters == ("print",)
    lock.release(token)
    thread.join(2)
    assert out["result"].valid and lock.job == "print"


@pytest.mark.parametrize("bad", [-0.5, -2, math.nan, -math.inf])
def test_negative_and_nan_timeouts_raise(held, bad):
    lock, _ = held
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(bad)
    with pytest.raises(ValueError):
        HardwareLock("x", default_timeout=bad)
    assert check_timeout(None, 2.0) == 2.0 and check_timeout(0) == 0.0
    assert check_timeout(-1) is None and check_timeout(math.inf) is None


# 4 -------------------------------------------------------------------------------------------
def test_waiters_are_served_first_come_first_served(held):
    lock, token = held
    served = []

    def waiter(job):
        got = lock.acquire_token(5, job)
        served.append(job)
        time.sleep(0.01)
        lock.release(got)

    threads = []
    for i, job in enumerate("ABC"):
        threads.append(in_thread(waiter, job)[0])
        wait_for_waiters(lock, i + 1)
    lock.release(token)
    for thread in threads:
        thread.join(2)
    assert served == ["A", "B", "C"]


def test_yield_lets_in_everyone_queued_before_and_keeps_the_token():
    lock = HardwareLock("mono")
    token = lock.acquire_token(0, "count")
    order = []

    def waiter(job):
        got = lock.acquire_token(5, job)
        order.append(job)
        lock.release(got)

    threads = []
    for i, job in enumerate(("A", "B")):
        threads.append(in_thread(waiter, job)[0])
        wait_for_waiters(lock, i + 1)
    lock.yield_token(token, timeout=5)
    order.append("count")
    assert order == ["A", "B", "count"] and token.valid and lock.job == "count"
    lock.release(token)


def test_yield_with_nobody_waiting_is_cheap_and_keeps_the_token():
    lock = HardwareLock("mono")
    token = lock.acquire_token(0, "count")
    start = time.perf_counter()
    for _ in range(1000):
        lock.yield_token(token, 0)
    assert (time.perf_counter() - start) / 1000 < 1e-3
    assert token.valid and lock.holder.since <= time.time()
    assert lock.release_and_acquire(0) is True


# 5 -------------------------------------------------------------------------------------------
def test_pitfall_b_a_lost_yield_never_releases_the_other_jobs_lock():
    lock = HardwareLock("mono")
    inside = threading.Event()
    release_short = threading.Event()
    outcome = {}

    def long_task():
        with lock.acquire_timeout(0, job="acq") as acquired:
            assert acquired
            inside.set()
            wait_for_waiters(lock, 1)
            outcome["yield"] = lock.release_and_acquire(timeout=0.1)
            outcome["valid"] = acquired.token.valid
        outcome["job_after_with"] = lock.job

    def short_task():
        inside.wait(2)
        with lock.acquire_timeout(5, job="short") as acquired:
            outcome["short"] = bool(acquired)
            release_short.wait(5)

    threads = [in_thread(short_task)[0], in_thread(long_task)[0]]
    threads[1].join(5)
    assert outcome["yield"] is False and outcome["valid"] is False
    assert outcome["job_after_with"] == "short"  # OCS released it here: job None
    assert lock.acquire(0, job="third") is False  # mutual exclusion still holds
    release_short.set()
    threads[0].join(5)
    assert outcome["short"] is True and lock.holder is None


def test_yield_with_timeout_zero_and_a_waiter_loses_the_token(held):
    lock, token = held
    thread, _ = in_thread(lock.acquire_token, 5, "print")
    wait_for_waiters(lock, 1)
    with pytest.raises(LockLost, match="count"):
        lock.yield_token(token, 0)
    thread.join(2)
    assert not token.valid and lock.job == "print"
    with pytest.raises(LockError):
        lock.release(token)


# 6 -------------------------------------------------------------------------------------------
def test_releasing_what_one_does_not_hold_raises(held):
    lock, token = held
    with pytest.raises(LockError, match="does not hold"):
        lock.release()  # this thread is not the holder
    with pytest.raises(LockError, match="does not hold"):
        lock.release_and_acquire(1)
    assert lock.job == "count"
    lock.release(token)  # the token works from any thread
    assert lock.holder is None
    with pytest.raises(LockError):
        lock.release(token)
    with pytest.raises(LockError):
        lock.release()


def test_same_thread_is_not_reentrant_and_does_not_deadlock():
    lock = HardwareLock("mono")
    assert lock.acquire(0, "a")
    start = time.monotonic()
    assert lock.acquire(math.inf, "a again") is False
    assert time.monotonic() - start < SLACK
    lock.release()
    assert lock.holder is None


def test_cancel_waiting_wakes_a_waiter_for_ever(held):
    lock, _ = held
    thread, out = in_thread(lock.acquire_token, -1, "print")
    wait_for_waiters(lock, 1)
    assert lock.cancel_waiting("other") == 0
    assert lock.cancel_waiting("print") == 1
    thread.join(2)
    assert isinstance(out["error"], LockCancelled) and lock.holder.waiters == ()


def test_the_context_manager_is_falsy_and_names_the_holder(held):
    lock, _ = held
    with lock.acquire_timeout(0, job="print") as acquired:
        assert not acquired and acquired.holder.job == "count"
    assert lock.job == "count"


def test_exceptions_inside_the_context_manager_release():
    lock = HardwareLock("mono")
    with pytest.raises(KeyError), lock.acquire_timeout(0, job="x") as acquired:
        assert acquired and lock.job == "x"
        raise KeyError
    assert lock.holder is None


# The seed's scenario ----------------------------------------------------------------------------
def test_seed_count_process_yields_and_print_task_gets_in():
    """'count' holds the lock and yields about every period; 'print' (timeout 3 periods) gets
    in between, every time, and never while count is in its critical section."""
    period = 0.15
    lock = HardwareLock("agent", default_timeout=5 * period)
    stop = threading.Event()
    inside = []
    log = []

    def count():
        with lock.acquire_timeout(timeout=0, job="count") as acquired:
            assert acquired
            last = time.monotonic()
            while not stop.is_set():
                if time.monotonic() - last > period:
                    last = time.monotonic()
                    if not lock.release_and_acquire(timeout=10 * period):
                        log.append("count lost the lock")
                        return
                inside.append("count")
                time.sleep(period / 5)
                inside.remove("count")

    def print_task(text):
        with lock.acquire_timeout(timeout=3 * period, job="print") as acquired:
            if not acquired:
                log.append(f"could not print: held by {lock.job}")
                return
            assert inside == []
            log.append(text)

    process, _ = in_thread(count)
    time.sleep(period)
    for i in range(3):
        task, _ = in_thread(print_task, f"hello {i}")
        task.join(5)
        time.sleep(period / 3)
    stop.set()
    process.join(5)
    assert log == ["hello 0", "hello 1", "hello 2"]
    assert lock.holder is None


# 10: the socs#614 trap, as a property ---------------------------------------------------------
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    period=st.floats(0.05, 0.12),
    factor=st.one_of(st.floats(0.2, 0.5), st.floats(1.8, 3.0)),
)
def test_a_task_gets_in_iff_its_timeout_exceeds_the_yield_period(period, factor):
    """A sampler yields every ``period`` s; a task arriving just after a yield, waiting
    ``timeout``, succeeds iff ``timeout > period + service time``."""
    lock = HardwareLock("sampler")
    yielded = threading.Event()
    stop = threading.Event()

    def sampler():
        token = lock.acquire_token(0, "sampler")
        while not stop.is_set():
            time.sleep(period)  # service
            lock.yield_token(token, timeout=10)
            yielded.set()
        lock.release(token)

    thread, _ = in_thread(sampler)
    yielded.wait(2)
    yielded.clear()
    yielded.wait(2)
    timeout = factor * period
    got = lock.acquire(timeout, job="task")
    if got:
        lock.release()
    stop.set()
    thread.join(5)
    assert got == (timeout > period)


# Random contention -----------------------------------------------------------------------------
ops = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "yield", "cm"]),
        st.sampled_from([0, 0.02, 0.2, math.inf]),
        st.floats(0, 0.01),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=2, max_size=4))
def test_random_contention_keeps_mutual_exclusion_and_deadlines(plans):
    lock = HardwareLock("contended")
    inside = []
    violations = []
    late = []

    def critical(job, hold):
        inside.append(job)
        if len(inside) > 1:
            violations.append(tuple(inside))
        time.sleep(hold)
        inside.remove(job)

    def worker(name, steps):
        for kind, timeout, hold in steps:
            start = time.monotonic()
            if kind == "cm":
                with lock.acquire_timeout(timeout, job=name) as acquired:
                    if timeout != math.inf and time.monotonic() - start > timeout + SLACK:
                        late.append((name, timeout))
                    if acquired:
                        critical(name, hold)
                continue
            try:
                token = lock.acquire_token(timeout, name)
            except LockTimeout:
                if time.monotonic() - start > timeout + SLACK:
                    late.append((name, timeout))
                continue
            critical(name, hold)
            if kind == "yield":
                try:
                    lock.yield_token(token, timeout)
                except LockLost:
                    continue
                critical(name, hold)
            lock.release(token)

    threads = [in_thread(worker, f"w{i}", steps)[0] for i, steps in enumerate(plans)]
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert violations == [] and late == []
    assert lock.holder is None and len(lock._queue) == 0
