"""Plans over the simulated beamline's IOCs: our RunEngine beside bluesky's, in one process.

    python bench/bench_iocs.py [--quick] [--repeats N]        # = python -m bench --only iocs

Real Channel Access on loopback: every event is a put-complete acquisition on the detector IOC
and a read of its PVs, every scan point a motor-record move. The detector's exposure is 0 and
the motor fast, so the figures are the engines' and Channel Access's, not a sleep.
"""

from __future__ import annotations

import contextlib
import sys
import time

from bluesky import plans as bp
from harness import Case  # this folder is on sys.path (python -m bench, or run as a script)

from runengine.devices.beamline import Beamline


@contextlib.contextmanager
def ioc_cases():
    """Start the motors, point-detector and temperature IOCs; yield the cases over them."""
    started = time.perf_counter()
    with Beamline(["motors", "pointdet", "temperature"]) as bl:
        print(f"beamline up and connected in {time.perf_counter() - started:.2f} s")
        bl.det.acquire_time.put(0.0)  # no exposure: measure the engines and CA, not a sleep
        bl.m1.velocity.put(1000)
        det, m1, temp = bl.det, bl.m1, bl.temp
        yield [
            Case(
                "count-ioc",
                "count([det], N) IOC",
                "events",
                500,
                lambda n: bp.count([det], n),
                quick_divisor=5,
            ),
            Case(
                "count3-ioc",
                "count([det, temp, m1]) IOC",
                "events",
                500,
                lambda n: bp.count([det, temp, m1], n),
                quick_divisor=5,
            ),
            Case(
                "scan-ioc",
                "scan([det], m1) IOC",
                "events",
                200,
                lambda n: bp.scan([det], m1, -1, 1, n),
                target=2,
                quick_divisor=5,
            ),
        ]


if __name__ == "__main__":
    from suite import main

    main(["--only", "iocs", *sys.argv[1:]])
