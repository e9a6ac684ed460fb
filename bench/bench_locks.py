"""Hardware-lock costs, from plain threads and through the RunEngine's messages.

    python bench/bench_locks.py [--n N]

1. Hand-over in ``release_and_acquire``/``yield_lock`` with one waiter: from the holder's yield
   to the waiter holding the lock (p50/p99 µs). Thread holder and plan holder.
2. Uncontended acquire + release, and a yield with nobody waiting (mean µs per call), in
   threads and as ``Msg('acquire_lock')``/``Msg('release_lock')``/``Msg('yield_lock')`` (minus
   the cost of as many ``Msg('null')``).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from bluesky.utils import Msg

from runengine import RunEngine
from runengine.locks import HardwareLock


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples) * 1e6
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))] * 1e6
    return f"p50 {p50:8.1f} µs   p99 {p99:8.1f} µs   (n={len(samples)})"


def handover_waiter(lock: HardwareLock, n: int, granted: list[float]) -> threading.Thread:
    def run() -> None:
        for _ in range(n):
            token = lock.acquire_token(-1, "waiter")
            granted.append(time.perf_counter())
            lock.release(token)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_queued(lock: HardwareLock) -> None:
    while not lock._queue:
        time.sleep(0)


def thread_handover(n: int) -> list[float]:
    lock = HardwareLock("bench")
    token = lock.acquire_token(0, "holder")
    granted: list[float] = []
    started: list[float] = []
    waiter = handover_waiter(lock, n, granted)
    for _ in range(n):
        wait_queued(lock)
        started.append(time.perf_counter())
        lock.yield_token(token, -1)
    waiter.join()
    lock.release(token)
    return [g - s for s, g in zip(started, granted, strict=True)]


def plan_handover(RE: RunEngine, n: int) -> list[float]:
    lock = HardwareLock("bench")
    granted: list[float] = []
    started: list[float] = []

    def plan():
        token = yield Msg("acquire_lock", lock, timeout=0)
        waiter = handover_waiter(lock, n, granted)
        for _ in range(n):
            while not lock._queue:
                yield Msg("sleep", None, 0)
            started.append(time.perf_counter())
            yield Msg("yield_lock", token, timeout=-1)
        waiter.join()

    RE(plan())
    return [g - s for s, g in zip(started, granted, strict=True)]


def per_call(func, n: int) -> float:
    start = time.perf_counter()
    func(n)
    return (time.perf_counter() - start) / n * 1e6


def thread_uncontended(n: int) -> None:
    lock = HardwareLock("bench")
    for _ in range(n):
        lock.release(lock.acquire_token(0, "x"))


def thread_yield_alone(n: int) -> None:
    lock = HardwareLock("bench")
    token = lock.acquire_token(0, "x")
    for _ in range(n):
        lock.yield_token(token, 0)


def engine_per_msg(RE: RunEngine, make_plan, n: int) -> float:
    def null_plan():
        for _ in range(n):
            yield Msg("null")

    start = time.perf_counter()
    RE(null_plan())
    base = time.perf_counter() - start
    start = time.perf_counter()
    RE(make_plan(n))
    return (time.perf_counter() - start - base) / n * 1e6


def acquire_release_plan(n: int):
    lock = HardwareLock("bench")
    for _ in range(n // 2):
        token = yield Msg("acquire_lock", lock, timeout=0)
        yield Msg("release_lock", token)


def yield_plan(n: int):
    lock = HardwareLock("bench")
    token = yield Msg("acquire_lock", lock, timeout=0)
    for _ in range(n - 1):
        yield Msg("yield_lock", token, timeout=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="hand-overs per measurement")
    args = parser.parse_args()
    RE = RunEngine({}, context_managers=[])
    many = 50 * args.n
    print("Hand-over to one waiter (holder yields -> waiter holds the lock)")
    print(f"  thread holder, thread waiter : {percentiles(thread_handover(args.n))}")
    print(f"  plan holder,   thread waiter : {percentiles(plan_handover(RE, args.n))}")
    print("Uncontended, mean per call")
    print(f"  thread acquire+release       : {per_call(thread_uncontended, many):8.2f} µs")
    print(f"  thread yield, nobody waiting : {per_call(thread_yield_alone, many):8.2f} µs")
    pair = engine_per_msg(RE, acquire_release_plan, many) * 2
    print(f"  Msg acquire+release          : {pair:8.2f} µs (beyond two Msg('null'))")
    alone = engine_per_msg(RE, yield_plan, many)
    print(f"  Msg yield, nobody waiting    : {alone:8.2f} µs (beyond a Msg('null'))")


if __name__ == "__main__":
    main()
