"""Processes the Redis tests start: engines contending for a lock, agents beating, a consumer.

    python -m tests.runengine.scaleout.workers contend URL PREFIX SECONDS SEED
    python -m tests.runengine.scaleout.workers agents URL PREFIX FIRST COUNT SECONDS SILENCE_AT
    python -m tests.runengine.scaleout.workers consume URL STREAM DIRECTORY
Each prints one JSON summary line on stdout when done.
"""

from __future__ import annotations

import json
import random
import sys
import time

from runengine.locks import LockError, LockLost, LockTimeout


def contend(url: str, prefix: str, seconds: float, seed: int) -> dict:
    """Random plans on one RunEngine around one RedisLock'd device, for ``seconds``."""
    import bluesky.plan_stubs as bps
    import redis

    from runengine import RunEngine
    from runengine.plans.locks import acquire_lock, lock_wrapper, release_lock, yield_lock
    from runengine.scaleout.lock import FenceGuard, RedisLock

    rng = random.Random(seed)
    r = redis.Redis.from_url(url, socket_timeout=2)
    lock = RedisLock("device", url, prefix=prefix, lease=6)
    guard = FenceGuard(f"{prefix}:device:fence", url)
    RE = RunEngine({}, context_managers=[])
    counts = {"completed": 0, "timeout": 0, "lost": 0, "other": 0, "accesses": 0}
    longest = 0.0

    def access(token):  # the device: count who is inside, refuse stale fences
        guard.admit(lock.fence_of(token))
        if r.incr(f"{prefix}:inside") != 1:
            r.incr(f"{prefix}:overlaps")
        counts["accesses"] += 1
        yield from bps.sleep(rng.uniform(0.001, 0.02))
        r.decr(f"{prefix}:inside")

    def body(token):
        for _ in range(rng.randint(1, 4)):
            yield from access(token)
            yield from bps.checkpoint()
            if rng.random() < 0.3:
                yield from yield_lock(token, timeout=5)

    def manual():
        token = yield from acquire_lock(lock, job="manual", timeout=rng.choice([0, 0.05, 3]))
        yield from access(token)
        yield from release_lock(token)

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        plan = (
            lock_wrapper(body, lock, "wrapped", timeout=rng.choice([0.1, 2, 5]))
            if rng.random() < 0.6
            else manual()
        )
        t0 = time.monotonic()
        try:
            RE(plan)
            counts["completed"] += 1
        except LockTimeout:
            counts["timeout"] += 1
        except LockLost:
            counts["lost"] += 1
        except LockError:
            counts["other"] += 1
        longest = max(longest, time.monotonic() - t0)
        time.sleep(rng.uniform(0, 0.01))
    return {**counts, "longest_plan": longest, "state": str(RE.state)}


def agents(url: str, prefix: str, first: int, count: int, seconds: float, silence_at: float):
    """Beat agents ``first..first+count`` at 1 Hz; the first one goes silent at ``silence_at``."""
    from runengine.heartbeats import OpCode
    from runengine.scaleout.heartbeats import RedisRegistry

    reg = RedisRegistry(url, timeout=3.0, prefix=prefix)
    addresses = [f"agent.{i:03d}" for i in range(first, first + count)]
    last_beat = None
    start = time.monotonic()
    beats = 0
    while time.monotonic() - start < seconds:
        tick = time.monotonic()
        for address in addresses:
            if address == addresses[0] and tick - start >= silence_at:
                continue
            reg.beat(address, {"acq": OpCode.RUNNING}, "SimAgent", session_id=str(first))
            beats += 1
            if address == addresses[0]:
                last_beat = time.time()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    return {"silent": addresses[0], "last_beat": last_beat, "beats": beats}


def consume(url: str, stream: str, directory: str) -> dict:
    from runengine.callbacks.redis_stream import DocumentConsumer

    consumer = DocumentConsumer(url, directory, stream, consumer="store-1", block=0.2)
    consumer.run(idle_exit=3.0)
    return {"written": consumer.written, "duplicates": consumer.store.duplicates}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "contend":
        out = contend(args[0], args[1], float(args[2]), int(args[3]))
    elif mode == "agents":
        out = agents(args[0], args[1], int(args[2]), int(args[3]), float(args[4]), float(args[5]))
    else:
        out = consume(*args)
    print(json.dumps(out), flush=True)
