"""RedisRegistry: many agents in many processes, expiry seen everywhere, Redis dying."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from runengine.heartbeats import OpCode
from tests.runengine.scaleout.conftest import PROJECT_ROOT

pytestmark = pytest.mark.redis

TIMEOUT = 3.0  # the agents' registries use it too (workers.py)


def test_100_agents_from_4_processes_expiry_within_timeout_plus_1s(redis_url, prefix):
    from runengine.scaleout.heartbeats import RedisRegistry

    reg = RedisRegistry(redis_url, timeout=TIMEOUT, check_period=0.5, prefix=prefix).start()
    expiries: dict[str, float] = {}
    lock = threading.Lock()

    def on_change(address, old, new):
        if new["expired"] and (old is None or not old["expired"]):
            with lock:
                expiries.setdefault(address, time.time())

    reg.subscribe(on_change)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.runengine.scaleout.workers",
                "agents",
                redis_url,
                prefix,
                str(25 * i),
                "25",
                "9",
                "3",
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        outs = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]
    finally:
        for p in procs:
            p.kill()
    status = reg.status()
    reg.stop()
    assert len(status) == 100
    silent = {out["silent"]: out["last_beat"] for out in outs}
    assert set(expiries) == set(silent)  # the 96 others beat on: none expired
    for address, last in silent.items():
        latency = expiries[address] - last
        assert latency + 0.05 > TIMEOUT and latency <= TIMEOUT + 1.0, (address, latency)
        assert status[address]["expired"] and status[address]["op_codes"] == {"acq": 7}
    alive = [a for a, e in status.items() if not e["expired"]]
    assert len(alive) == 96 and all(status[a]["op_codes"] == {"acq": 3} for a in alive)


def test_same_layout_revival_and_one_transition_per_change(redis_url, prefix):
    from runengine.heartbeats import Registry
    from runengine.scaleout.heartbeats import RedisRegistry

    one = RedisRegistry(redis_url, timeout=0.5, check_period=0.1, prefix=prefix).start()
    two = RedisRegistry(redis_url, timeout=0.5, check_period=0.1, prefix=prefix).start()
    events = []
    two.subscribe(lambda a, o, n: events.append((a, o and o["expired"], n["expired"])))
    time.sleep(0.2)
    one.beat("ioc.m1", {"acq": OpCode.RUNNING}, "Motor", session_id="s1")
    time.sleep(1.0)  # both registries check: the expiry is written once
    entry = two.entry("ioc.m1")
    assert entry["expired"] and entry["op_codes"] == {"acq": OpCode.EXPIRED}
    first = entry["time_expired"]
    time.sleep(0.3)
    assert two.entry("ioc.m1")["time_expired"] == first  # stamped once
    one.beat("ioc.m1", None, session_id="s1")
    time.sleep(0.3)
    entry = two.entry("ioc.m1")
    assert not entry["expired"] and entry["op_codes"] == {"acq": OpCode.RUNNING}
    assert events == [("ioc.m1", None, False), ("ioc.m1", False, True), ("ioc.m1", True, False)]
    local = Registry()
    local.beat("ioc.m1", {"acq": 3}, "Motor")
    assert set(local.status()["ioc.m1"]) == set(two.status()["ioc.m1"])
    one.stop()
    two.stop()


def test_suspend_on_expired_trips_on_a_remote_agent(redis_url, prefix):
    import bluesky.plan_stubs as bps

    from runengine import RunEngine
    from runengine.heartbeats import SuspendOnExpired
    from runengine.scaleout.heartbeats import RedisRegistry

    agent = RedisRegistry(redis_url, timeout=0.6, check_period=0.1, prefix=prefix)
    watcher = RedisRegistry(redis_url, timeout=0.6, check_period=0.1, prefix=prefix).start()
    halt = threading.Event()

    def beating():
        start = time.monotonic()
        while not halt.is_set():
            if not 0.5 < time.monotonic() - start < 2.0:  # silent for 1.5 s
                agent.beat("ioc.det", {"acq": 3}, "Det")
            time.sleep(0.1)

    thread = threading.Thread(target=beating)
    thread.start()
    RE = RunEngine({}, context_managers=[])
    states = []
    RE.state_hook = lambda new, old: states.append(new)
    time.sleep(0.3)
    RE.install_suspender(SuspendOnExpired(watcher, ["ioc.det"], resume_after_beats=2))

    def plan():
        for _ in range(30):
            yield from bps.checkpoint()
            yield from bps.sleep(0.1)

    try:
        RE(plan())
    finally:
        halt.set()
        thread.join()
        watcher.stop()
    assert "suspending" in states and RE.state == "idle"


@pytest.mark.parametrize("policy", ["fail", "fallback"])
def test_redis_dying_fails_clearly_or_falls_back(own_redis, prefix, policy):
    from runengine.scaleout.connection import BackendUnavailable
    from runengine.scaleout.heartbeats import RedisRegistry

    reg = RedisRegistry(own_redis.url, timeout=2, prefix=prefix, on_failure=policy,
                        socket_timeout=0.5)  # fmt: skip
    reg.beat("a", {"acq": 3})
    own_redis.kill()
    t0 = time.monotonic()
    if policy == "fail":
        with pytest.raises(BackendUnavailable, match="unreachable"):
            reg.beat("a", {"acq": 3})
        assert reg.expired("a")  # nobody can vouch for it: suspenders hold the plans
        assert "unreachable" in reg.backend
    else:
        reg.beat("a", {"acq": 3})  # in-process from now on
        assert reg.status()["a"]["op_codes"] == {"acq": 3} and not reg.expired("a")
        assert reg.backend.startswith("in-process")
    assert time.monotonic() - t0 < 3  # never hangs


def test_a_transition_right_after_start_reaches_subscribers(redis_url, prefix):
    """The reader's position in the stream is fixed before start() returns."""
    from runengine.scaleout.heartbeats import RedisRegistry

    for attempt in range(10):
        events: list = []
        watcher = RedisRegistry(redis_url, timeout=5, check_period=1, prefix=f"{prefix}{attempt}")
        watcher.subscribe(lambda a, o, n, seen=events: seen.append(a))
        watcher.start()
        agent = RedisRegistry(redis_url, timeout=5, prefix=f"{prefix}{attempt}")
        agent.beat("ioc.fresh", session_id="s")  # no sleep between start() and the beat
        deadline = time.monotonic() + 5
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
        watcher.stop()
        assert events == ["ioc.fresh"], attempt
