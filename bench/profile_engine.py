"""Where an event's time goes on our RunEngine: cProfile of its loop thread, by owner.

    python bench/profile_engine.py [--iocs] [--top 15]

Profiles ``count([Signal], N)`` and the prebuilt create/read/save loop (and with ``--iocs``
``count([det])`` and ``scan([det], m1)`` over the simulated beamline) on the engine's loop thread,
where plans and messages run, and sums each function's own time by owner: our engine, ophyd's
Status and Signal machinery, bluesky's plan library, event-model, the CA client, waiting (epoll,
locks: for the IOC plans, the Channel Access round trip and the IOC's processing), the rest.
Shares are of profiled time; cProfile slows Python code, so the µs are scaled to the
unprofiled time per event measured just before.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from collections import defaultdict

from bench_engine import create_read_save
from bluesky import plans as bp
from ophyd import Signal

from runengine import RunEngine

OWNERS = (  # first match wins: (owner, substrings of the file path)
    ("ophyd Status/Signal", ("ophyd/status", "ophyd/signal", "ophyd/ophydobj", "ophyd/utils")),
    ("ophyd devices", ("ophyd/",)),
    ("CA client", ("caproto", "pyepics", "epics/")),
    ("bluesky plan library", ("bluesky/plan", "bluesky/preprocessors", "bluesky/utils")),
    ("bluesky other", ("bluesky/",)),
    ("event-model", ("event_model",)),
    ("runengine (ours)", ("runengine/", "/main/runengine", "/main/callbacks", "/main/plans")),
    ("asyncio, threading", ("asyncio", "threading.py", "selectors.py", "concurrent")),
)
WAITS = ("poll", "acquire", "wait", "select", "sleep")


def owner(filename: str, function: str) -> str:
    if filename == "~":
        if "start_new_thread" in function:
            return "ophyd Status/Signal"  # ophyd starts threads for Status callbacks, timeouts
        if any(w in function for w in WAITS):
            return "waiting (epoll, locks)"
        return "builtins"
    for name, parts in OWNERS:
        if any(part in filename for part in parts):
            return name
    return "other Python"


def profile(RE: RunEngine, make_plan, n: int) -> tuple[float, dict[str, float], pstats.Stats]:
    """Unprofiled seconds per event, profiled seconds by owner, and the stats."""
    RE(make_plan(max(1, n // 10)))  # warm-up
    t0 = time.perf_counter()
    RE(make_plan(n))
    plain = (time.perf_counter() - t0) / n
    prof = cProfile.Profile()
    asyncio.run_coroutine_threadsafe(_call(prof.enable), RE._loop).result()
    RE(make_plan(n))
    asyncio.run_coroutine_threadsafe(_call(prof.disable), RE._loop).result()
    stats = pstats.Stats(prof)
    by_owner: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():
        by_owner[owner(filename, function)] += tottime
    return plain, dict(by_owner), stats


async def _call(func) -> None:
    func()


def report(label: str, n: int, plain: float, by_owner: dict[str, float], stats, top: int) -> None:
    total = sum(by_owner.values())
    print(f"\n{label}: {plain * 1e6:.1f} µs per event unprofiled ({n} events)")
    for name, seconds in sorted(by_owner.items(), key=lambda kv: -kv[1]):
        share = seconds / total
        print(f"  {name:24} {100 * share:5.1f} %  ~{share * plain * 1e6:7.1f} µs/event")
    if top:
        stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iocs", action="store_true", help="also profile plans over the IOCs")
    parser.add_argument("--top", type=int, default=0, help="print the top functions by own time")
    args = parser.parse_args()
    RE = RunEngine({}, context_managers=[])
    signal = Signal(name="signal", value=1.0)
    cases = [
        ("count([Signal], N)", 5_000, lambda n: bp.count([signal], n)),
        ("create/read/save", 50_000, lambda n: create_read_save(signal, n)),
    ]
    for label, n, make in cases:
        report(label, n, *profile(RE, make, n), args.top)
    if args.iocs:
        from runengine.devices.beamline import Beamline

        with Beamline(["motors", "pointdet"]) as bl:
            bl.det.acquire_time.put(0.0)
            bl.m1.velocity.put(1000)
            for label, n, make in (
                ("count([det]) IOC", 300, lambda n: bp.count([bl.det], n)),
                ("scan([det], m1) IOC", 100, lambda n: bp.scan([bl.det], bl.m1, -1, 1, n)),
            ):
                report(label, n, *profile(RE, make, n), args.top)


if __name__ == "__main__":
    main()
