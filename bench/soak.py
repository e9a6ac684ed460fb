"""Soak: a long scan over the IOCs under random pauses, beam losses, heartbeat losses and an IOC
killed and restarted; at the end the store must hold every point exactly once.

    python bench/soak.py [--minutes 3] [--seed N]

The scan is ``scan([det], m1, -1, 1, N)`` with N sized from a short calibration run to last
about ``--minutes``. A chaos thread, every 1-4 s, does one of: ``request_pause`` (deferred or
not; the main thread resumes 0.2-1.5 s later), ``drop_beam`` for 1-3 s (a ``SuspendFloor`` on
the beam current trips), ``freeze_heartbeat`` on the detector's IOC for 3-5 s (its heartbeat
feeds a :class:`~runengine.heartbeats.Registry`, watched by ``SuspendOnExpired``). Halfway it
drops the beam, kills the detector's IOC while the engine is suspended, restarts it, waits for
Channel Access to reconnect and restores the beam. Exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import threading
import time

import numpy as np
from bluesky import plans as bp
from bluesky.suspenders import SuspendFloor
from bluesky.utils import RunEngineInterrupted

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.store import RunStore
from runengine.devices import faults
from runengine.devices.beamline import Beamline, connect_all
from runengine.heartbeats import Registry, SuspendOnExpired

HEARTBEAT = "ioc.pointdet"


class Chaos(threading.Thread):
    """Injects faults until ``stop`` is set; counts what it did in ``done``."""

    def __init__(self, RE, bl: Beamline, reg: Registry, rng: random.Random, ioc_at: float):
        super().__init__(daemon=True, name="soak-chaos")
        self.RE, self.bl, self.reg, self.rng = RE, bl, reg, rng
        self.ioc_at = ioc_at  # monotonic time of the IOC restart
        self.stop = threading.Event()
        self.done: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []
        self.last_command = ""  # RE.msg_hook keeps it: 'wait_for' while a suspension holds

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(1.0, 4.0)):
            try:
                if self.ioc_at and time.monotonic() >= self.ioc_at:
                    self.ioc_at = 0 if self.restart_ioc() else time.monotonic() + 2
                    continue
                action = self.rng.choice(["pause", "pause", "beam", "heartbeat"])
                getattr(self, action)()
            except Exception as err:  # a fault injection failed: report it, go on
                self.errors.append(f"{type(err).__name__}: {err}")

    def pause(self) -> None:
        if self.RE.state in ("running", "suspending"):
            self.RE.request_pause(defer=self.rng.random() < 0.5)
            self.done["pause requested"] += 1

    def beam(self) -> None:
        with faults.drop_beam(self.bl.beam):
            self.done["beam lost"] += 1
            self.stop.wait(self.rng.uniform(1.0, 3.0))

    def heartbeat(self) -> None:
        with faults.freeze_heartbeat(self.bl.det):
            self.done["heartbeat frozen"] += 1
            self.stop.wait(self.rng.uniform(3.0, 5.0))

    def quiet(self) -> bool:
        """The engine takes no data: paused, or waiting for a suspension to end."""
        return self.RE.state == "paused" or self.last_command == "wait_for"

    def restart_ioc(self) -> bool:
        """Beam off; once the engine has stopped taking data, kill and restart pointdet."""
        with faults.drop_beam(self.bl.beam):
            deadline = time.monotonic() + 5
            while not self.quiet() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self.quiet():
                return False
            t0 = time.monotonic()
            self.bl.iocs["pointdet"].kill()
            self.bl.iocs["pointdet"].restart()
            connect_all([self.bl.det, self.bl.health["pointdet"]], timeout=30)
            while self.reg.expired(HEARTBEAT):
                time.sleep(0.1)
            self.bl.det.acquire_time.put(0.0)
            self.done["IOC killed and restarted"] += 1
            self.reconnect_s = time.monotonic() - t0
        return True


def calibrate(RE, det, m1) -> float:
    t0 = time.perf_counter()
    RE(bp.scan([det], m1, -1, 1, 20))
    return 20 / (time.perf_counter() - t0)


def run_until_done(RE, plan, rng: random.Random, counts: collections.Counter) -> None:
    """RE(plan); each time it pauses, wait 0.2-1.5 s and resume."""
    try:
        RE(plan)
        return
    except RunEngineInterrupted:
        counts["paused"] += 1
    while True:
        time.sleep(rng.uniform(0.2, 1.5))
        try:
            RE.resume()
            return
        except RunEngineInterrupted:
            counts["paused"] += 1


def check(directory: str, uid: str, n: int) -> list[str]:
    """Every point of the scan in the store once, in order, and the run closed successfully."""
    run = Catalog(directory)[uid]
    problems = []
    seq, setpoints = [], []
    descriptors = set()
    for name, doc in run.documents():
        if name == "descriptor" and doc.get("name") == "primary":
            descriptors.add(doc["uid"])
        elif name == "event" and doc["descriptor"] in descriptors:
            seq.append(doc["seq_num"])
            setpoints.append(doc["data"]["m1_user_setpoint"])
    if seq != list(range(1, n + 1)):
        dup = len(seq) - len(set(seq))
        problems.append(f"seq_nums: {len(seq)} events for {n} points, {dup} duplicated")
    expected = np.linspace(-1, 1, n)
    if len(setpoints) != n or not np.allclose(setpoints, expected):
        problems.append("m1 setpoints differ from the scan's points")
    stop = run.metadata["stop"]
    if stop is None or stop["exit_status"] != "success":
        problems.append(f"run not closed as success: {stop and stop['exit_status']}")
    elif stop["num_events"].get("primary") != n:
        problems.append(f"stop counts {stop['num_events']} primary events, expected {n}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"soak: {args.minutes} min, seed {seed}")
    with (
        Beamline(["motors", "pointdet", "beam"], seed=seed) as bl,
        tempfile.TemporaryDirectory(prefix="soak_") as directory,
        Registry(timeout=2.5, check_period=0.2) as reg,
    ):
        bl.det.acquire_time.put(0.0)
        bl.m1.velocity.put(1000)
        heartbeat = bl.health["pointdet"].heartbeat
        heartbeat.subscribe(lambda **kw: reg.beat(HEARTBEAT), run=False)
        RE = RunEngine({}, context_managers=[])
        rate = calibrate(RE, bl.det, bl.m1)
        n = max(50, int(rate * args.minutes * 60 * 0.6))
        store = RunStore(directory)
        store.subscribe(RE)
        while reg.entry(HEARTBEAT) is None:
            time.sleep(0.1)
        RE.install_suspender(SuspendFloor(bl.beam.current, 100.0, resume_thresh=390.0, sleep=0.5))
        RE.install_suspender(SuspendOnExpired(reg, HEARTBEAT, sleep=0.5, resume_after_beats=2))
        counts: collections.Counter[str] = collections.Counter()
        RE.state_hook = lambda new, old: counts.update([f"state {new}"])
        uids: list[str] = []
        RE.subscribe(lambda name, doc: uids.append(doc["uid"]) if name == "start" else None)
        t0 = time.monotonic()
        chaos = Chaos(RE, bl, reg, rng, ioc_at=t0 + args.minutes * 30)
        RE.msg_hook = lambda msg: setattr(chaos, "last_command", msg.command)
        chaos.start()
        print(f"scan of {n} points over the IOCs ({rate:.0f} points/s uninterrupted)")
        run_until_done(RE, bp.scan([bl.det], bl.m1, -1, 1, n), rng, counts)
        chaos.stop.set()
        chaos.join(30)
        elapsed = time.monotonic() - t0
        problems = check(directory, uids[-1], n)
        if RE.state != "idle":
            problems.append(f"the engine is {RE.state}, not idle")
        if store.open_runs:
            problems.append(f"runs left open in the store: {store.open_runs}")
        problems += [f"fault injection failed: {e}" for e in chaos.errors]
        if not chaos.done["IOC killed and restarted"]:
            problems.append("the IOC restart did not happen (the scan ended first?)")
    print(f"done in {elapsed:.0f} s: {n} points")
    for what, count in sorted({**chaos.done, **counts}.items()):
        print(f"  {what:28} {count}")
    if hasattr(chaos, "reconnect_s"):
        print(f"  IOC restart to reconnected      {chaos.reconnect_s:.1f} s")
    for problem in problems:
        print(f"VIOLATION: {problem}")
    print("OK: every point stored exactly once, engine idle" if not problems else "FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
