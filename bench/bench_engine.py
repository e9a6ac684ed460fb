"""Throughput of runengine's RunEngine beside bluesky's, on the same plans in one process.

    python bench/bench_engine.py [--quick] [--repeats N]

Prints messages (or events) per second and the ratios:
- ``bluesky``: bluesky's RunEngine with bluesky exactly as installed;
- ``bluesky+``: the same engine with runengine.speedups installed (bluesky's plan stubs made
  cheap to call), so that ``ours/bluesky+`` compares the engines alone;
- ``ours``: runengine's RunEngine (which installs the speedups).
Each figure is the best of a few repeats, so a background hiccup does not count.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bluesky import RunEngine as BlueskyRunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.utils import Msg
from ophyd import Signal
from ophyd.sim import SynAxis, SynGauss

from runengine import RunEngine, speedups

NULL = Msg("null")


def null_plan(n: int):
    # One prebuilt message: the engine's cost per message, not the plan's cost of making one.
    for _ in range(n):
        yield NULL


def create_read_save(signal: Signal, n: int):
    create, read, save = Msg("create", name="primary"), Msg("read", signal), Msg("save")
    yield Msg("open_run")
    for _ in range(n):
        yield create
        yield read
        yield save
    yield Msg("close_run")


def mv_loop(motor: SynAxis, n: int):
    for i in range(n):
        yield from bps.mv(motor, i % 10)


def make_cases(quick: bool) -> list[tuple[str, str, int, Callable]]:
    scale = 10 if quick else 1
    signal = Signal(name="signal", value=1.0)
    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)
    return [
        ("null messages", "msgs", 100_000 // scale, lambda n: null_plan(n)),
        ("count([Signal], N)", "events", 2_000 // scale, lambda n: bp.count([signal], n)),
        ("create/read/save", "events", 5_000 // scale, lambda n: create_read_save(signal, n)),
        ("scan([det], motor)", "events", 500 // scale, lambda n: bp.scan([det], motor, -1, 1, n)),
        ("mv(motor) loop", "moves", 500 // scale, lambda n: mv_loop(motor, n)),
    ]


def best_rate(RE, factory: Callable, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        plan = factory(n)
        t0 = time.perf_counter()
        RE(plan)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours = RunEngine({}, context_managers=[])
    theirs = BlueskyRunEngine({}, context_managers=[])
    header = ("plan", "unit", "N", "bluesky/s", "bluesky+/s", "ours/s", "ours/bl", "ours/bl+")
    print("{:22} {:>6} {:>7} {:>11} {:>11} {:>11} {:>8} {:>8}".format(*header))
    for label, unit, n, factory in make_cases(args.quick):
        speedups.uninstall()
        stock = best_rate(theirs, factory, n, args.repeats)
        speedups.install()
        patched = best_rate(theirs, factory, n, args.repeats)
        rate = best_rate(ours, factory, n, args.repeats)
        print(
            f"{label:22} {unit:>6} {n:>7} {stock:11.0f} {patched:11.0f} {rate:11.0f} "
            f"{rate / stock:7.1f}x {rate / patched:7.1f}x"
        )


if __name__ == "__main__":
    main()
