"""Ctrl+C -> prompt: a child process runs a plan, gets SIGINT twice, and times the way back.

    python bench/bench_sigint.py [--trials N]

The child (``--child ENGINE MODE TRIALS``) makes a RunEngine with its default context managers
(so each engine's own SIGINT handler), runs the plan and prints ``READY`` from inside it; the
parent presses Ctrl+C, waits 0.3 s (both engines ignore presses closer than 0.1 s), presses
again and notes ``time.monotonic()`` (one clock for every process); the child prints the
monotonic time at which ``RE(plan)`` raised ``RunEngineInterrupted``. Modes: ``sleep`` (the plan
waits in a 30 s ``sleep`` message) and ``busy`` (the plan streams ``null`` messages).
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time

MODES = ("sleep", "busy")
GAP = 0.3  # between the two presses
NO_PROMPT_AFTER = 15.0  # seconds without RunEngineInterrupted: a failed trial


def child(engine: str, mode: str, trials: int) -> None:
    from bluesky.utils import Msg, RunEngineInterrupted

    if engine == "bluesky":
        from bluesky import RunEngine
    else:
        from runengine import RunEngine
    RE = RunEngine({})  # default context managers: the engine's own Ctrl+C handling

    def plan():
        yield Msg("checkpoint")
        print("READY", flush=True)
        if mode == "sleep":
            yield Msg("sleep", None, 30)
        else:
            null = Msg("null")
            for _ in range(100_000_000):
                yield null

    for _ in range(trials):
        try:
            RE(plan())
        except RunEngineInterrupted:
            print("INTERRUPTED", time.monotonic(), flush=True)
        if RE.state != "idle":
            RE.abort()


def sigint_latency(engine: str, mode: str, trials: int) -> tuple[list[float], int]:
    """Latencies (s) from the second press to RunEngineInterrupted, and the trials that failed.

    A failed trial (no RunEngineInterrupted within 15 s) kills the child; a new one goes on.
    """
    latencies: list[float] = []
    failed = 0
    while len(latencies) + failed < trials:
        done, lost = _one_child(engine, mode, trials - len(latencies) - failed)
        latencies += done
        failed += lost
    return latencies, failed


def _one_child(engine: str, mode: str, trials: int) -> tuple[list[float], int]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, mode, str(trials)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()

    def reader() -> None:
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put("EOF")

    def wait_for(prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line.startswith(prefix):
                return line
            if line == "EOF":
                return None

    threading.Thread(target=reader, daemon=True).start()
    latencies: list[float] = []
    try:
        for _ in range(trials):
            if wait_for("READY", 60) is None:
                return latencies, 1
            time.sleep(GAP)  # the plan is under way
            proc.send_signal(signal.SIGINT)
            time.sleep(GAP)
            pressed = time.monotonic()
            proc.send_signal(signal.SIGINT)
            line = wait_for("INTERRUPTED", NO_PROMPT_AFTER)
            if line is None:
                return latencies, 1
            latencies.append(float(line.split()[1]) - pressed)
        return latencies, 0
    finally:
        try:
            proc.wait(0 if len(latencies) < trials else 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "MODE", "TRIALS"))
    args = parser.parse_args()
    if args.child:
        engine, mode, trials = args.child
        child(engine, mode, int(trials))
        return
    for mode in MODES:
        for engine in ("ours", "bluesky"):
            latencies, failed = sigint_latency(engine, mode, args.trials)
            ms = sorted(x * 1e3 for x in latencies)
            shown = f"p50 {ms[len(ms) // 2]:7.2f} ms  max {ms[-1]:7.2f} ms" if ms else "none"
            print(f"Ctrl+C twice, plan {mode:5}  {engine:8} {shown}  failed {failed}")


if __name__ == "__main__":
    main()
