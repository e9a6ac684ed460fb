"""RedisLock: the TimeoutLock API across processes, FIFO, fencing, leases, Redis dying."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from runengine.locks import LockLost, LockTimeout
from tests.runengine.scaleout.conftest import PROJECT_ROOT, RedisServer

pytestmark = pytest.mark.redis

# The issue asks for a minute; CI runs a shorter contention (RUNENGINE_CONTEND_SECONDS=60).
CONTEND_SECONDS = float(os.environ.get("RUNENGINE_CONTEND_SECONDS", "12"))


def make(url, prefix, **kw):
    from runengine.scaleout.lock import RedisLock

    return RedisLock("dev", url, prefix=prefix, **kw)


def test_two_engine_processes_never_share_the_device(redis_url, prefix):
    import redis

    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.runengine.scaleout.workers",
                "contend",
                redis_url,
                prefix,
                str(CONTEND_SECONDS),
                str(seed),
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=CONTEND_SECONDS + 60)  # no deadlock
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    r = redis.Redis.from_url(redis_url)
    assert r.get(f"{prefix}:overlaps") is None  # never both inside
    assert int(r.get(f"{prefix}:inside")) == 0
    for res in results:
        assert res["other"] == 0 and res["state"] == "idle"  # each plan completed or failed clearly
        assert res["completed"] > 10 and res["accesses"] > 10
        assert res["longest_plan"] < 15


def test_timeout_fifo_and_holder_across_instances(redis_url, prefix):
    a, b = make(redis_url, prefix), make(redis_url, prefix)
    token = a.acquire_token(0, "A")
    assert b.job == "A" and b.locked
    t0 = time.monotonic()
    with pytest.raises(LockTimeout, match="held by job 'A'"):
        b.acquire_token(0.3, "B")
    assert time.monotonic() - t0 < 0.3 + 0.25  # one deadline, not two
    order = []

    def wait(name):
        lock = make(redis_url, prefix)
        tok = lock.acquire_token(5, name)
        order.append(name)
        lock.release(tok)

    threads = []
    for name in "CDE":
        threads.append(threading.Thread(target=wait, args=(name,)))
        threads[-1].start()
        time.sleep(0.15)
    assert b.holder.waiters == ("C", "D", "E")
    a.release(token)
    for thread in threads:
        thread.join(10)
    assert order == ["C", "D", "E"]
    assert b.holder is None


def test_yield_serves_waiters_then_takes_it_back(redis_url, prefix):
    a, b = make(redis_url, prefix), make(redis_url, prefix)
    token = a.acquire_token(0, "A")
    a.yield_token(token, 1)  # nobody waits: kept
    assert token.valid
    got = []
    thread = threading.Thread(target=lambda: got.append(b.acquire_token(5, "B")))
    thread.start()
    time.sleep(0.2)
    release = threading.Timer(0.2, lambda: b.release(got[0]))
    release.start()
    a.yield_token(token, 5)
    thread.join(5)
    assert got and token.valid and a.fence > b._fences.get(id(got[0]), 0)
    a.release(token)


def test_a_holder_whose_lease_expired_is_fenced_off(redis_url, prefix):
    from runengine.scaleout.lock import FenceGuard, StaleFence

    a = make(redis_url, prefix, lease=3.5)
    token = a.acquire_token(0, "A")
    old = a.fence
    guard = FenceGuard(f"{prefix}:guard", redis_url)
    guard.admit(old)
    a.redis.delete(a._keys[0])  # a partition, as Redis sees it: the key is gone
    b = make(redis_url, prefix)
    other = b.acquire_token(0, "B")
    guard.admit(b.fence)
    assert not a.check_fence(old)
    with pytest.raises(LockLost):
        a.assert_holder(token)
    with pytest.raises(StaleFence):
        guard.admit(old)  # the device refuses the stale holder
    deadline = time.monotonic() + 6
    while token.valid and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not token.valid  # the renewal found it gone
    b.release(other)


def test_plan_messages_on_a_redis_lock(redis_url, prefix):
    from runengine import RunEngine
    from runengine.plans.locks import acquire_lock, lock_wrapper, yield_lock

    RE = RunEngine({}, context_managers=[])
    lock, other = make(redis_url, prefix), make(redis_url, prefix)
    seen = []

    def body(token):
        seen.append(other.job)
        yield from yield_lock(token, timeout=1)
        seen.append(token.valid)

    RE(lock_wrapper(body, lock, "plan"))
    assert seen == ["plan", True] and other.holder is None
    held = other.acquire_token(0, "manual")
    with pytest.raises(LockTimeout, match="manual"):
        RE(acquire_lock(lock, "plan", timeout=0.2))
    other.release(held)
    assert RE.state == "idle"


@pytest.mark.parametrize("policy", ["fail", "fallback"])
def test_redis_dying_fails_clearly_or_falls_back(own_redis, prefix, policy):
    from runengine.scaleout.lock import LockBackendUnavailable

    lock = make(own_redis.url, prefix, on_failure=policy, socket_timeout=0.5, lease=2)
    token = lock.acquire_token(0, "A")
    lock.release(token)
    own_redis.kill()
    t0 = time.monotonic()
    if policy == "fail":
        with pytest.raises(LockBackendUnavailable, match="unreachable"):
            lock.acquire_token(1, "B")
    else:
        token = lock.acquire_token(1, "B")  # in-process from now on
        assert token.valid and lock.fallen_back
        lock.release(token)
    assert time.monotonic() - t0 < 3  # never hangs


def test_a_redis_that_may_forget_the_holder_is_refused_by_name(tmp_path, prefix):
    from runengine.scaleout.lock import UnsafeLockBackend

    server = RedisServer(tmp_path, persistent=False).start()
    try:
        lock = make(server.url, prefix)
        with pytest.raises(UnsafeLockBackend, match=r"appendonly yes, appendfsync always"):
            lock.acquire_token(0, "A")
        assert lock.holder is None  # refused before anything was taken
        risky = make(server.url, prefix, require_persistence=False)
        risky.release(risky.acquire_token(0, "A"))  # the risk, accepted by name
    finally:
        server.stop()


def _points(RE, lock, n, seen, on_point=None):
    import bluesky.plan_stubs as bps
    import bluesky.preprocessors as bpp
    from ophyd.sim import det

    from runengine.plans.locks import acquire_lock, release_lock

    @bpp.run_decorator()
    def plan():
        token = yield from acquire_lock(lock, "scan", timeout=10)
        for i in range(n):
            yield from bps.checkpoint()
            yield from bps.trigger_and_read([det])
            seen.append((i, time.time(), lock.fence))
            if on_point is not None:
                on_point(i)
            yield from bps.sleep(0.1)
        yield from release_lock(token)

    docs = []
    RE(plan(), lambda name, doc: docs.append((name, doc)))
    return docs


def test_a_plan_whose_lock_is_taken_away_is_suspended_and_takes_it_back(redis_url, prefix):
    from runengine import RunEngine

    RE = RunEngine({}, context_managers=[])
    lock, intruder = make(redis_url, prefix, lease=2, socket_timeout=0.5), make(redis_url, prefix)
    held = []

    def take_it_away():
        lock.redis.delete(lock._keys[0])  # the key gone (what a Redis losing data does)
        token = intruder.acquire_token(0, "intruder")
        held.append(time.time())
        time.sleep(1.0)
        held.append(time.time())
        intruder.release(token)

    thread = threading.Thread(target=take_it_away)
    seen = []
    docs = _points(RE, lock, 15, seen, lambda i: i == 4 and thread.start())
    thread.join(5)
    stop = next(doc for name, doc in docs if name == "stop")
    assert stop["exit_status"] == "success" and RE.state == "idle"
    events = [doc for name, doc in docs if name == "event"]
    assert [e["seq_num"] for e in events] == list(range(1, 16))  # every point once
    fences = [fence for _, _, fence in seen]
    assert fences[0] is not None and fences[-1] > fences[0]  # a new holding after the loss
    after = [t for _, t, fence in seen if fence == fences[-1]]
    assert min(after) > held[1] - 0.05  # taken back only once the intruder let go
    assert intruder.holder is None and lock.holder is None


def test_a_plan_rides_out_a_redis_restart_without_measuring_unlocked(own_redis, prefix):
    from runengine import RunEngine

    RE = RunEngine({}, context_managers=[])
    lock = make(own_redis.url, prefix, lease=2, socket_timeout=0.5)
    outage = []

    def restart():
        own_redis.kill()
        outage.append(time.time())
        time.sleep(1.5)
        own_redis.start()  # same port, its data back from the append-only file
        outage.append(time.time())

    thread = threading.Thread(target=restart)
    seen = []
    docs = _points(RE, lock, 20, seen, lambda i: i == 3 and thread.start())
    thread.join(10)
    stop = next(doc for name, doc in docs if name == "stop")
    assert stop["exit_status"] == "success"
    assert [e["seq_num"] for name, e in docs if name == "event"] == list(range(1, 21))
    fences = [fence for _, _, fence in seen]
    assert fences[-1] > fences[0]  # lost with its lease, taken back after the restart
    assert not [t for _, t, f in seen if f == fences[-1] and t < outage[1]]
