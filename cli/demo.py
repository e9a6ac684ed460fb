"""``make demo``: a scan on the simulated beamline that a person can watch.

    python -m runengine.cli.demo [--points N] [--no-pause] [--sim] [--store DIR]

Starts the beamline's caproto IOCs on loopback (motors, a point detector, beam and shutter),
connects ophyd devices to them over Channel Access, and scans motor ``m1`` across the
detector's peak with a live table and a progress bar. Halfway through, another thread asks
for a deferred pause; the engine pauses at the next checkpoint, the demo resumes it, and the
scan finishes with every point taken exactly once. The run is stored (read back to check it)
and plotted to a PNG beside it. ``--sim`` uses ``ophyd.sim`` devices instead of IOCs.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time

from bluesky import plans as bp

from runengine import RunEngine, RunEngineInterrupted
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.live import RichTable
from runengine.callbacks.progress import AboveTheBar, ProgressBar
from runengine.callbacks.store import RunStore

from .runs import plot_to


@contextlib.contextmanager
def _devices(use_sim: bool):
    """``(motor, detector)`` for the scan: over the IOCs, or ophyd.sim with ``use_sim``."""
    if use_sim:
        from ophyd.sim import SynAxis, SynGauss

        motor = SynAxis(name="motor", delay=0.2)
        yield motor, SynGauss("det", motor, "motor", center=0, Imax=1000, sigma=1)
        return
    from runengine.devices.beamline import Beamline

    print("Starting the simulated beamline (caproto IOCs on 127.0.0.1) ...")
    started = time.monotonic()
    with Beamline(["motors", "pointdet", "beam"]) as bl:
        for name, ioc in bl.iocs.items():
            print(f"  {name:9} pid {ioc.pid:<7} 127.0.0.1:{ioc.port}  prefix {ioc.prefix}")
        print(f"IOCs up and devices connected in {time.monotonic() - started:.1f} s.")
        bl.det.acquire_time.put(0.05)
        bl.m1.velocity.put(2)  # slow enough to watch
        yield bl.m1, bl.det
    print("IOCs stopped.")


def _pause_after(n: int, RE: RunEngine):
    def callback(name: str, doc: dict) -> None:
        if doc["seq_num"] == n:
            print(f"\n(point {n}: RE.request_pause(defer=True) from another thread)")
            threading.Thread(target=RE.request_pause, kwargs={"defer": True}).start()

    return callback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=15)
    parser.add_argument("--no-pause", action="store_true", help="skip the pause and resume")
    parser.add_argument("--sim", action="store_true", help="ophyd.sim devices, no IOCs")
    parser.add_argument("--store", help="run store directory (default: the user's data dir)")
    args = parser.parse_args(argv)

    with _devices(args.sim) as (motor, det):
        RE = RunEngine({"beamline_id": "demo", "owner": "you"})
        store = RunStore(args.store)
        store.subscribe(RE)  # first: every document is on disk before it is shown
        RE.subscribe(RichTable([motor.name, det.name], file=AboveTheBar()))
        RE.subscribe(ProgressBar())

        print(f"\nA step scan of a gaussian peak: {det.name} against {motor.name}.\n")
        if not args.no_pause:  # as if someone asked for a pause halfway, from another thread
            RE.subscribe(_pause_after(args.points // 2, RE), "event")
        try:
            (uid,) = RE(bp.scan([det], motor, -3, 3, args.points))
        except RunEngineInterrupted:
            print(f"\nThe engine is {RE.state!r}. Resuming with RE.resume() ...\n")
            (uid,) = RE.resume()

    run = Catalog(store.directory)[uid]
    data = run.primary.read()
    seq_nums = list(data["seq_num"].values)
    print(f"\nDone: state {RE.state!r}, exit_status {run.metadata['stop']['exit_status']!r}.")
    print(f"Stored in {store.path_for(uid)}")
    print(
        f"Events {len(seq_nums)} of {args.points}; seq_nums 1..{max(seq_nums)}, no duplicates: "
        f"{seq_nums == list(range(1, args.points + 1))}"
    )
    peak = int(data[det.name].values.argmax())
    print(
        f"Peak at {motor.name} = {float(data[motor.name][peak]):.2f} "
        f"({det.name} = {float(data[det.name][peak]):.1f})."
    )
    png = plot_to(run, store.directory / f"scan_{run.metadata['start']['scan_id']}_{uid[:8]}.png")
    print(f"Plot saved to {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
