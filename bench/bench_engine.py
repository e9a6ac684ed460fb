"""Throughput of runengine's RunEngine beside bluesky's, on the same plans in one process.

    python bench/bench_engine.py [--quick] [--repeats N]   # python -m bench --only engine,signals

The plans and devices of the ``engine`` suite (null messages, ``count``, a prebuilt
create/read/save loop, ``scan`` and ``mv`` over ophyd.sim) and of the ``signals`` suite (1, 10
and 100 ``ophyd.Signal`` per event). :mod:`harness` runs them on each engine in turn:
- ``bluesky``: bluesky's RunEngine with bluesky exactly as installed;
- ``bluesky+``: the same engine with runengine.compat's patches opted in for its calls
  (bluesky's plan stubs made cheap to call), so that ``ours/bluesky+`` compares the engines
  alone;
- ``ours``: runengine's RunEngine (whose calls have the patches on).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.utils import Msg
from harness import Case  # this folder is on sys.path (python -m bench, or run as a script)
from ophyd import Signal
from ophyd.sim import SynAxis, SynGauss

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


def signals(k: int) -> list[Signal]:
    return [Signal(name=f"s{i}", value=float(i)) for i in range(k)]


@contextlib.contextmanager
def engine_cases():
    """Plans over plain Signals and ophyd.sim devices: no I/O."""
    signal = Signal(name="signal", value=1.0)
    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)
    yield [
        Case("null", "null messages", "msgs", 100_000, null_plan, target=30),
        Case("count", "count([Signal], N)", "events", 2_000, lambda n: bp.count([signal], n), 30),
        Case(
            "crs",
            "create/read/save",
            "events",
            5_000,
            lambda n: create_read_save(signal, n),
            target=30,
        ),
        Case(
            "scan-sim",
            "scan([det], motor)",
            "events",
            500,
            lambda n: bp.scan([det], motor, -1, 1, n),
            3,
        ),
        Case("mv-sim", "mv(motor) loop", "moves", 500, lambda n: mv_loop(motor, n)),
    ]


@contextlib.contextmanager
def signal_cases():
    """``count`` and create/read/save with 1, 10 and 100 Signals per event."""
    cases = []
    for k, n in ((1, 2_000), (10, 1_000), (100, 200)):
        sigs = signals(k)
        cases.append(
            Case(f"count-{k}", f"count({k} Signals)", "events", n, lambda n, s=sigs: bp.count(s, n))
        )
    for k, n in ((1, 5_000), (10, 2_000), (100, 500)):
        sigs = signals(k)
        cases.append(
            Case(
                f"crs-{k}",
                f"create/read({k})/save",
                "events",
                n,
                lambda n, s=sigs: create_read_save_many(s, n),
            )
        )
    yield cases


def create_read_save_many(sigs: list[Signal], n: int):
    reads = [Msg("read", s) for s in sigs]
    create, save = Msg("create", name="primary"), Msg("save")
    yield Msg("open_run")
    for _ in range(n):
        yield create
        for read in reads:  # noqa: UP028 (yield from a list cannot take send())
            yield read
        yield save
    yield Msg("close_run")


def best_rate(RE, factory: Callable, n: int, repeats: int) -> float:
    """Best-of-``repeats`` rate of ``factory(n)`` on one engine (for quick experiments)."""
    best = float("inf")
    for _ in range(repeats):
        plan = factory(n)
        t0 = time.perf_counter()
        RE(plan)
        best = min(best, time.perf_counter() - t0)
    return n / best


if __name__ == "__main__":
    from suite import main

    main(["--only", "engine,signals", *sys.argv[1:]])
