"""Plans over the simulated beamline's IOCs: our RunEngine beside bluesky's, in one process.

    python bench/bench_iocs.py [--quick] [--repeats N]

Real Channel Access on loopback: every event is a put-complete acquisition on the detector IOC
and a read of its PVs, every scan point a motor-record move. Prints events per second for
bluesky's RunEngine (as installed, then with runengine.speedups) and ours, best of a few
repeats, and the ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench_engine import best_rate  # this folder is on sys.path when run as a script
from bluesky import RunEngine as BlueskyRunEngine
from bluesky import plans as bp

from runengine import RunEngine, speedups
from runengine.devices.beamline import Beamline


def make_cases(bl: Beamline, quick: bool) -> list[tuple[str, int, Callable]]:
    scale = 5 if quick else 1
    det, m1, temp = bl.det, bl.m1, bl.temp
    return [
        ("count([det], N)", 500 // scale, lambda n: bp.count([det], n)),
        ("count([det, temp, m1])", 500 // scale, lambda n: bp.count([det, temp, m1], n)),
        ("scan([det], m1)", 200 // scale, lambda n: bp.scan([det], m1, -1, 1, n)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fifth of the work")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    with Beamline(["motors", "pointdet", "temperature"]) as bl:
        print(f"beamline up and connected in {time.perf_counter() - started:.2f} s")
        bl.det.acquire_time.put(0.0)  # no exposure: measure the engines and CA, not a sleep
        bl.m1.velocity.put(1000)
        ours = RunEngine({}, context_managers=[])
        theirs = BlueskyRunEngine({}, context_managers=[])
        header = ("plan over IOCs", "N", "bluesky/s", "bluesky+/s", "ours/s", "ours/bl", "ours/bl+")
        print("{:24} {:>5} {:>10} {:>10} {:>10} {:>8} {:>8}".format(*header))
        for label, n, factory in make_cases(bl, args.quick):
            speedups.uninstall()
            stock = best_rate(theirs, factory, n, args.repeats)
            speedups.install()
            patched = best_rate(theirs, factory, n, args.repeats)
            rate = best_rate(ours, factory, n, args.repeats)
            print(
                f"{label:24} {n:>5} {stock:10.0f} {patched:10.0f} {rate:10.0f} "
                f"{rate / stock:7.1f}x {rate / patched:7.1f}x"
            )


if __name__ == "__main__":
    main()
