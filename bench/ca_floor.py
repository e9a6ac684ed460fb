"""The Channel Access floor under a scan or count point: ophyd alone, no engine at all.

    python bench/ca_floor.py [--points N]

Starts the motors and point-detector IOCs on loopback (exposure 0, motor at 1000 mm/s, as in
``bench_iocs.py``) and runs, in plain loops, what ``scan([det], m1, -1, 1, N)`` and
``count([det])`` ask of the hardware at each point::

    scan point:   m1.set(x).wait(); det.trigger().wait(); det.read(); m1.read()
    count point:  det.trigger().wait(); det.read()

For each operation: its wall time (median, p90, mean) and the CA messages it cost, counted
in the client's circuits: gets (ReadNotify), puts (Write), puts with completion
(WriteNotify) and their completions, and monitor updates (EventAdd responses), by PV. Two
baselines first: a bare CA get and a bare put with completion, to PVs no IOC logic hangs on.
The point detector also reads the motor's readback itself (an IOC-to-IOC get per trigger),
which is inside the trigger's time but not in these counts.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable

from caproto.threading import client as ca_client

from runengine.devices.beamline import Beamline

KINDS = {  # caproto command class -> what the report calls it
    "ReadNotifyRequest": "get",
    "WriteRequest": "put",
    "WriteNotifyRequest": "put-cb",
    "WriteNotifyResponse": "put-done",
    "EventAddResponse": "monitor",
}


class CATally:
    """Counts the CA messages of every client circuit, by kind and PV, while installed."""

    def __init__(self, prefixes: list[str]) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._prefixes = sorted(prefixes, key=len, reverse=True)
        self._lock = threading.Lock()
        self._saved: tuple | None = None

    def __enter__(self) -> CATally:
        manager = ca_client.VirtualCircuitManager
        send, process = manager.send, manager._process_command
        tally = self

        def counted_send(self, *commands, **kwargs):
            for command in commands:
                tally.note(self.circuit, command)
            return send(self, *commands, **kwargs)

        def counted_process(self, command):
            tally.note(self.circuit, command)
            return process(self, command)

        self._saved = (send, process)
        manager.send, manager._process_command = counted_send, counted_process
        return self

    def __exit__(self, *exc) -> None:
        manager = ca_client.VirtualCircuitManager
        manager.send, manager._process_command = self._saved

    def note(self, circuit, command) -> None:
        kind = KINDS.get(type(command).__name__)
        if kind is None:
            return
        if kind == "monitor":
            add = circuit.event_add_commands.get(command.subscriptionid)
            channel = circuit.channels_sid.get(add.sid) if add is not None else None
        elif kind == "put-done":  # by its request's ioid, noted before processing drops it
            channel = circuit._ioids.get(command.ioid)
        else:
            channel = circuit.channels_sid.get(command.sid)
        with self._lock:
            self.counts[kind, self._short(getattr(channel, "name", "?"))] += 1

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.counts)

    def _short(self, pv: str) -> str:
        for prefix in self._prefixes:
            if pv.startswith(prefix):
                return pv[len(prefix) :]
        return pv


class Phases:
    """Per-phase wall times and CA message counts of a loop of points."""

    def __init__(self, tally: CATally) -> None:
        self.tally = tally
        self.times: dict[str, list[float]] = {}
        self.messages: dict[str, Counter] = {}

    def point(self, steps: list[tuple[str, Callable[[], object]]]) -> None:
        for name, step in steps:
            before = self.tally.snapshot()
            started = time.perf_counter()
            step()
            self.times.setdefault(name, []).append(time.perf_counter() - started)
            self.messages.setdefault(name, Counter()).update(self.tally.snapshot() - before)

    def report(self, title: str) -> None:
        n = len(next(iter(self.times.values())))
        total = [sum(t) for t in zip(*self.times.values(), strict=True)]
        print(f"\n{title}: {n} points, {1 / statistics.fmean(total):.0f} points/s")
        print(f"  {'operation':<26} {'median':>8} {'p90':>8} {'mean':>8}  CA messages per call")
        for name, times in [*self.times.items(), ("total", total)]:
            msgs = self.messages.get(name, Counter())
            if name == "total":
                msgs = sum(self.messages.values(), Counter())
            print(f"  {name:<26} {ms(median(times))} {ms(p90(times))} {ms(mean(times))}  ", end="")
            print(describe(msgs, n))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs)


def p90(xs: list[float]) -> float:
    return sorted(xs)[int(0.9 * (len(xs) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:6.3f}ms"


def describe(messages: Counter, n: int) -> str:
    """``messages`` per call, by kind, each kind's PVs in brackets: 'get 2 (Value_RBV 1, ...)'."""
    by_kind: dict[str, Counter] = {}
    for (kind, pv), count in messages.items():
        by_kind.setdefault(kind, Counter())[pv] += count
    parts = []
    for kind in KINDS.values():
        if kind in by_kind:
            pvs = by_kind[kind]
            detail = ", ".join(f"{pv} {c / n:.3g}" for pv, c in sorted(pvs.items()))
            parts.append(f"{kind} {sum(pvs.values()) / n:.3g} ({detail})")
    return "; ".join(parts) or "none"


def triangle(low: float, high: float, n: int) -> list[float]:
    """``n`` positions from ``low`` to ``high`` and back: every step as short as a scan's."""
    step = (high - low) / (n - 1)
    up = [round(low + i * step, 6) for i in range(n)]
    return up + up[-2:0:-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300, help="points per loop (300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed points first (20)")
    args = parser.parse_args(argv)
    n = args.points

    started = time.perf_counter()
    with Beamline(["motors", "pointdet"]) as bl:
        print(f"beamline up and connected in {time.perf_counter() - started:.2f} s")
        det, m1 = bl.det, bl.m1
        det.acquire_time.put(0.0, wait=True)
        m1.velocity.put(1000.0, wait=True)
        center = det.center.get()
        positions = triangle(-1.0, 1.0, 200)  # the steps of scan([det], m1, -1, 1, 200)
        m1.set(positions[0]).wait(timeout=10)

        def move(i: int) -> Callable[[], object]:
            return lambda: m1.set(positions[i % len(positions)]).wait(timeout=10)

        with CATally([ioc.prefix for ioc in bl.iocs.values()]) as tally:
            loops = {
                "baselines (CA round trips)": lambda i: [
                    ("get det.value", lambda: det.value.get()),
                    ("put-complete det.center", lambda: det.center.put(center, wait=True)),
                ],
                "scan point (ophyd, no engine)": lambda i: [
                    ("m1.set(x).wait()", move(i + 1)),
                    ("det.trigger().wait()", lambda: det.trigger().wait(timeout=10)),
                    ("det.read()", det.read),
                    ("m1.read()", m1.read),
                ],
                "count point (ophyd, no engine)": lambda i: [
                    ("det.trigger().wait()", lambda: det.trigger().wait(timeout=10)),
                    ("det.read()", det.read),
                ],
            }
            for title, steps in loops.items():
                for i in range(args.warmup):
                    for _, step in steps(i):
                        step()
                time.sleep(0.05)  # let the warm-up's last monitor updates arrive
                phases = Phases(tally)
                for i in range(n):
                    phases.point(steps(args.warmup + i))
                time.sleep(0.05)
                phases.report(title)


if __name__ == "__main__":
    main()
