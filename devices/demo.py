"""``make demo``: a scan on a simulated beamline that a person can watch.

    python -m runengine.devices.demo [--points N] [--no-pause]

A motor (0.2 s per move) and a gaussian detector from ``ophyd.sim``. The scan prints a
live table; halfway through, a timer asks for a deferred pause, the engine pauses at the next
checkpoint, and the demo resumes it, so you see an interrupted scan finish with every point
taken exactly once.
"""

from __future__ import annotations

import argparse
import threading

from bluesky import plans as bp
from bluesky.callbacks import LiveTable
from ophyd.sim import SynAxis, SynGauss

from runengine import RunEngine, RunEngineInterrupted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=15)
    parser.add_argument("--no-pause", action="store_true", help="skip the pause and resume")
    args = parser.parse_args(argv)

    motor = SynAxis(name="motor", delay=0.2)
    det = SynGauss("det", motor, "motor", center=0, Imax=1000, sigma=1)
    RE = RunEngine({"beamline_id": "demo", "owner": "you"})
    events = []
    RE.subscribe(lambda name, doc: events.append(doc) if name == "event" else None)
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc), "stop")

    print("A step scan of a gaussian peak: det against motor.\n")
    if not args.no_pause:
        threading.Timer(
            0.1 * args.points, RE.request_pause, kwargs={"defer": True}
        ).start()  # halfway
    try:
        RE(bp.scan([det], motor, -3, 3, args.points), LiveTable([motor, det]))
    except RunEngineInterrupted:
        print(f"\nThe engine is {RE.state!r}. Resuming with RE.resume() ...\n")
        RE.resume()

    seq_nums = [doc["seq_num"] for doc in events]
    print(f"\nDone: state {RE.state!r}, exit_status {stops[-1]['exit_status']!r}.")
    print(
        f"Events {len(events)} of {args.points}; seq_nums 1..{max(seq_nums)}, no duplicates: "
        f"{sorted(seq_nums) == list(range(1, args.points + 1))}"
    )
    peak = max(events, key=lambda doc: doc["data"]["det"])
    print(f"Peak at motor = {peak['data']['motor']:.2f} (det = {peak['data']['det']:.1f}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
