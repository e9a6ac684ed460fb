"""How fast interruptions take effect, on bluesky's RunEngine and ours in one process.

    python bench/bench_interruptions.py [--trials N]

1. Pause latency: from ``RE.request_pause()`` (another thread) to the state 'paused', while the
   plan waits on a Status that would take 10 s. Reports p50, p99 and max.
2. Suspender trip latency: a document callback blocks the engine's thread for 1 s; the
   suspender trips during the block. Reports the time from the end of the block to the start
   of the suspension, and how many trips were dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
import time

from bluesky import RunEngine as BlueskyRunEngine
from bluesky.suspenders import SuspendBoolHigh
from bluesky.utils import Msg, RunEngineInterrupted
from harness import quietly  # this folder is on sys.path (python -m bench, or run as a script)
from ophyd import Signal
from ophyd.status import StatusBase
from ophyd.utils import InvalidState

from runengine import RunEngine


class SlowMotor:
    """A movable whose moves finish only when stopped (or after 10 s)."""

    name = "slow"
    parent = None

    def set(self, value):
        status = StatusBase(timeout=10)
        self._status = status
        return status

    def stop(self, success=False):
        with contextlib.suppress(InvalidState):  # stopped twice: on pause, then on abort
            self._status.set_finished()

    def read(self):
        return {}

    def describe(self):
        return {}


def _ask_later(RE, asked: dict) -> None:
    time.sleep(0.01)
    asked["t"] = time.perf_counter()
    RE.request_pause()


def pause_latency(RE, trials: int) -> list[float]:
    motor = SlowMotor()
    paused_at = {}
    RE.state_hook = lambda new, old: (
        paused_at.setdefault("t", time.perf_counter()) if new == "paused" else None
    )
    latencies = []
    for _ in range(trials):
        paused_at.clear()
        asked = {}
        threading.Thread(target=_ask_later, args=(RE, asked)).start()
        try:
            RE([Msg("checkpoint"), Msg("set", motor, 1, group="g"), Msg("wait", None, group="g")])
        except RunEngineInterrupted:
            pass
        latencies.append(paused_at["t"] - asked["t"])
        RE.abort()
    RE.state_hook = None
    return latencies


def trip_latency(RE, trials: int) -> tuple[list[float], int]:
    beam = Signal(name="beam", value=0)
    RE.install_suspender(SuspendBoolHigh(beam))
    started = {}
    RE.msg_hook = lambda msg: (
        started.setdefault("t", time.perf_counter()) if msg.command == "_start_suspender" else None
    )
    block_ended = {}

    def blocking_callback(name, doc):
        if name == "event":
            threading.Timer(0.2, beam.put, (1,)).start()  # trips during the block
            time.sleep(1.0)
            block_ended["t"] = time.perf_counter()

    latencies, dropped = [], 0
    for _ in range(trials):
        started.clear()
        beam.put(0)

        def plan():
            yield Msg("open_run")
            yield Msg("checkpoint")
            yield Msg("create", name="primary")
            yield Msg("read", beam)
            yield Msg("save")  # the callback blocks here
            for _ in range(20):
                yield Msg("checkpoint")
                yield Msg("sleep", None, 0.01)
            yield Msg("close_run")

        threading.Timer(1.6, beam.put, (0,)).start()
        RE(plan(), blocking_callback)
        if "t" in started:
            latencies.append(started["t"] - block_ended["t"])
        else:
            dropped += 1
    RE.msg_hook = None
    RE.clear_suspenders()
    return latencies, dropped


def summary(values: list[float]) -> str:
    if not values:
        return "none measured"
    ms = sorted(v * 1e3 for v in values)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.2f} ms  p99 {p99:7.2f} ms  max {ms[-1]:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--trip-trials", type=int, default=5)
    args = parser.parse_args()
    engines = {
        "bluesky": BlueskyRunEngine({}, context_managers=[]),
        "runengine": RunEngine({}, context_managers=[]),
    }
    print(f"pause latency, plan waiting on a slow Status ({args.trials} trials)")
    for name, RE in engines.items():
        with quietly():
            latencies = pause_latency(RE, args.trials)
        print(f"  {name:10} {summary(latencies)}")
    print(f"suspender trip during a 1 s blocking callback ({args.trip_trials} trials)")
    for name, RE in engines.items():
        with quietly():
            latencies, dropped = trip_latency(RE, args.trip_trials)
        print(f"  {name:10} {summary(latencies)}  dropped {dropped}/{args.trip_trials}")


if __name__ == "__main__":
    main()
