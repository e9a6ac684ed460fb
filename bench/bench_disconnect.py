"""An IOC killed mid-scan and restarted: how fast the engine suspends, reconnects and resumes.

    .venv/bin/python bench/bench_disconnect.py [--rounds 5] [--delay 0.5]

One beamline (motors, pointdet) on loopback and ``scan([det], m1, -1, 1, 6)``; at the third
move of m1 (from the engine's message hook, so the moment is exact) an IOC is SIGKILLed, the
motors and the point detector by turns, and restarted ``--delay`` s later. Each round runs:

- **ours**: runengine's RunEngine with ``Beamline.disconnect_suspender()`` (it makes the
  caproto client search again while tripped);
- **ours, caproto back-off**: the same suspender without that nudge (caproto's own search
  back-off finds the restarted IOC);
- **bluesky**: bluesky's RunEngine with the first suspender installed (a suspender is a
  bluesky ``SuspenderBase``; what bluesky's engine lacks is the replay of the message the
  disconnect broke, so a move or read that fails before the suspension ends the run).

Reported per engine: kill -> suspended (the ``_start_suspender`` message), restart ->
reconnected (every signal connected again, polled at 5 ms), restart -> resumed (the
``_resume_from_suspender`` message; includes the suspender's 0.5 s ``sleep``), and how the runs
ended (``success`` with every point once, or not). Medians over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from bluesky import RunEngine as BlueskyRunEngine
from bluesky import plans as bp

from runengine import RunEngine
from runengine.devices.beamline import Beamline, SuspendOnDisconnect, connect_all

POINTS = 6
NTH_MOVE = 3


class Marks:
    """The message hook: kills the IOC at the nth move and notes the suspension's ends."""

    def __init__(self, ioc) -> None:
        self.ioc, self.moves = ioc, 0
        self.killed = self.suspended = self.resumed = None
        self.at = threading.Event()

    def __call__(self, msg) -> None:
        if msg.command == "set" and getattr(msg.obj, "name", "") == "m1":
            self.moves += 1
            if self.moves == NTH_MOVE:
                self.ioc.kill()
                self.killed = time.perf_counter()
                self.at.set()
        elif msg.command == "_start_suspender" and self.suspended is None:
            self.suspended = time.perf_counter()
        elif msg.command == "_resume_from_suspender" and self.resumed is None:
            self.resumed = time.perf_counter()


def one_round(bl, engine: str, ioc_name: str, delay: float) -> dict:
    """One scan with one kill; the moments, relative to the kill and to the restart."""
    connect_all(bl.devices.values(), timeout=30)
    RE = (BlueskyRunEngine if engine == "bluesky" else RunEngine)({}, context_managers=[])
    if engine == "ours, caproto back-off":
        suspender = SuspendOnDisconnect(
            [*bl.devices.values(), *bl.health.values()], sleep=0.5, nudge=None
        )
    else:
        suspender = bl.disconnect_suspender()
    RE.install_suspender(suspender)
    marks = Marks(bl.iocs[ioc_name])
    RE.msg_hook = marks
    docs: list = []
    outcome: list = []

    def run() -> None:
        try:
            RE(bp.scan([bl.det], bl.m1, -1, 1, POINTS), lambda name, doc: docs.append((name, doc)))
            outcome.append("ran")
        except BaseException as exc:
            outcome.append(f"{type(exc).__name__}")

    runner = threading.Thread(target=run)
    runner.start()
    marks.at.wait(30)
    time.sleep(delay)
    restarted = time.perf_counter()
    bl.iocs[ioc_name].restart()
    reconnected = None
    while reconnected is None and time.perf_counter() - restarted < 60:
        if not suspender._sig.down:  # every signal's connection callback said connected
            reconnected = time.perf_counter()
        else:
            time.sleep(0.005)
    runner.join(90)
    if runner.is_alive():
        RE.halt()
        runner.join()
    RE.msg_hook = None
    RE.clear_suspenders()
    stop = next((d for n, d in docs if n == "stop"), {})
    seqs = [d["seq_num"] for n, d in docs if n == "event"]
    whole = stop.get("exit_status") == "success" and seqs == list(range(1, POINTS + 1))

    def since(t, t0):
        return None if t is None or t0 is None else t - t0

    return {
        "suspended": since(marks.suspended, marks.killed),
        "reconnected": since(reconnected, restarted),
        "resumed": since(marks.resumed, restarted),
        "ended": "success, every point once" if whole else f"{stop.get('exit_status')} {seqs}",
    }


def median(values: list) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return "-"
    return f"{statistics.median(found):.2f} s" + (
        f" ({len(found)}/{len(values)})" if len(found) < len(values) else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.5, help="s from the kill to the restart")
    args = parser.parse_args()
    engines = ["ours", "ours, caproto back-off", "bluesky"]
    results: dict[str, list[dict]] = {engine: [] for engine in engines}
    with Beamline(["motors", "pointdet"], seed=0) as bl:
        bl.det.acquire_time.set(0.01).wait(5)
        for n in range(args.rounds):
            ioc = ("motors", "pointdet")[n % 2]
            for engine in engines:
                result = one_round(bl, engine, ioc, args.delay)
                results[engine].append(result)
                print(f"round {n + 1} {engine:24s} {ioc:9s} {result}", flush=True)
    print(f"\nmedians over {args.rounds} rounds (restart {args.delay:g} s after the kill):")
    print(f"{'engine':24s} {'kill->suspended':>16s} {'restart->reconnected':>21s} "
          f"{'restart->resumed':>17s}  runs ending with every point once")  # fmt: skip
    for engine, rows in results.items():
        whole = sum(row["ended"].startswith("success") for row in rows)
        print(
            f"{engine:24s} {median([r['suspended'] for r in rows]):>16s} "
            f"{median([r['reconnected'] for r in rows]):>21s} "
            f"{median([r['resumed'] for r in rows]):>17s}  {whole}/{len(rows)}"
        )


if __name__ == "__main__":
    main()
