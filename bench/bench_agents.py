"""How fast the pausing agents and the heartbeat registry react.

    python bench/bench_agents.py [--trials N]

1. File-trigger reaction: a file is created while a plan runs; the time until the engine
   enters 'pausing' (its state hook), with inotify (watchdog) and with polling only (0.25 s).
2. Expiry detection latency of the registry: from an agent's last beat to the expiry event,
   on the real clock (timeout 0.5 s, check period 0.1 s); the bound is timeout + check period.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bluesky.utils import Msg, RunEngineInterrupted

from runengine import RunEngine
from runengine.agents import FilePausingAgent
from runengine.heartbeats import Registry


def endless(step: float = 0.005):
    yield Msg("open_run")
    while True:
        yield Msg("checkpoint")
        yield Msg("sleep", None, step)


def file_reaction(trials: int, use_watchdog: bool) -> list[float]:
    RE = RunEngine({}, context_managers=[])
    marks: dict[str, float] = {}

    def on_state(new, old):
        if new == "pausing" and "paused" not in marks:
            marks["paused"] = time.perf_counter()

    RE.state_hook = on_state
    latencies = []
    with tempfile.TemporaryDirectory() as tmp:
        flag = Path(tmp) / "PAUSE"
        with FilePausingAgent(RE, flag, use_watchdog=use_watchdog, poll_interval=0.25):
            for i in range(trials):
                marks.clear()

                def create(delay=0.05 + 0.25 * (i % 10) / 10):  # every phase of the poll
                    time.sleep(delay)
                    marks["created"] = time.perf_counter()
                    flag.touch()

                threading.Thread(target=create).start()
                with contextlib.suppress(RunEngineInterrupted):
                    RE(endless())
                latencies.append(marks["paused"] - marks["created"])
                flag.unlink()
                RE.stop()
    return latencies


def expiry_latency(trials: int, timeout: float = 0.5, period: float = 0.1) -> list[float]:
    latencies = []
    with Registry(timeout=timeout, check_period=period) as reg:
        for i in range(trials):
            expired = threading.Event()
            stamp: dict[str, float] = {}
            address = f"agent{i}"

            def on_change(addr, old, new, address=address, expired=expired, stamp=stamp):
                if addr == address and new["expired"]:
                    stamp["expired"] = time.monotonic()
                    expired.set()

            token = reg.subscribe(on_change)
            time.sleep(period * (i % 7) / 7)  # beats fall at every phase of the checker
            reg.beat(address)
            last = time.monotonic()
            expired.wait(timeout + 2 * period + 1)
            reg.unsubscribe(token)
            latencies.append(stamp["expired"] - last)
    return latencies


def summary(name: str, values: list[float], unit: float = 1e3) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered) * unit
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * unit
    return (
        f"{name:<44} n={len(values):<4} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  "
        f"max {ordered[-1] * unit:8.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):  # the engine's own chatter
        inotify = file_reaction(args.trials, use_watchdog=True)
        polling = file_reaction(args.trials, use_watchdog=False)
    print(summary("file created -> 'pausing' (watchdog/inotify)", inotify))
    print(summary("file created -> 'pausing' (polling, 0.25 s)", polling))
    print(summary("last beat -> expiry event (timeout 0.5 s)", expiry_latency(args.trials)))
    print("  expiry bound: timeout + check period = 600 ms")


if __name__ == "__main__":
    main()
