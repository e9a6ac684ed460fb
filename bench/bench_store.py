"""What the embedded store costs the engine, and how fast runs read back.

    python bench/bench_store.py [--events N] [--repeats R]

On ``count([3 ophyd Signals], N)`` with our RunEngine: documents/s with no subscriber and
with the store subscribed (best of R), the store's cost as a % of the engine's own time
(measured two ways: the difference of the runs, and the store alone fed the same documents),
then read-back rows/s through the catalog (xarray and pandas).

:func:`subscriber_cases` is the ``subscribers`` suite of ``python -m bench``: the same count on
both engines with nothing, the store, a live table, or both subscribed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time

from bluesky import plans as bp
from harness import Case  # this folder is on sys.path (python -m bench, or run as a script)
from ophyd import Signal

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.live import RichTable
from runengine.callbacks.store import RunStore


@contextlib.contextmanager
def subscriber_cases():
    """``count([3 Signals], N)`` bare, with a RunStore, a RichTable (to /dev/null), or both.

    Each engine gets its own store (in a temporary directory) and table.
    """
    sigs = [Signal(name=f"s{i}", value=float(i)) for i in range(3)]
    with (
        tempfile.TemporaryDirectory(prefix="bench_subs_") as base,
        open(os.devnull, "w") as devnull,
    ):
        stores: dict[str, RunStore] = {}
        tables: dict[str, RichTable] = {}

        def store(engine: str) -> RunStore:
            if engine not in stores:
                stores[engine] = RunStore(os.path.join(base, engine.replace("+", "_plus")))
            return stores[engine]

        def table(engine: str) -> RichTable:
            return tables.setdefault(engine, RichTable(file=devnull))

        choices = {
            "bare": lambda e: [],
            "store": lambda e: [store(e)],
            "table": lambda e: [table(e)],
            "store+table": lambda e: [store(e), table(e)],
        }
        yield [
            Case(
                f"count3-{name}",
                f"count(3 Signals) {name}",
                "events",
                2_000,
                lambda n: bp.count(sigs, n),
                subscribers=subs,
            )
            for name, subs in choices.items()
        ]


def best(repeats: int, func) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_store_") as directory:
        run_bench(directory)


def run_bench(base: str) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, repeats = args.events, args.repeats
    signals = [Signal(name=f"s{i}", value=float(i)) for i in range(3)]
    directory = os.path.join(base, "runs")
    docs_per_run = n + 3  # start, descriptor, events, stop

    RE = RunEngine({}, context_managers=[])
    bare = best(repeats, lambda: RE(bp.count(signals, n)))
    store = RunStore(directory)
    token = store.subscribe(RE)
    stored = best(repeats, lambda: RE(bp.count(signals, n)))
    RE.unsubscribe(token)

    docs: list = []
    token = RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(bp.count(signals, n))
    RE.unsubscribe(token)

    def store_alone():
        alone = RunStore(tempfile.mkdtemp(dir=base))
        for name, doc in docs:
            alone(name, doc)

    alone = best(repeats, store_alone)

    catalog = Catalog(directory)
    run = catalog[-1]
    read = best(repeats, lambda: run.primary.read())
    table = best(repeats, lambda: run.primary.to_pandas())
    listing = best(repeats, lambda: len(Catalog(directory)) and Catalog(directory)[-1].metadata)

    print(f"count([3 Signals], {n}) with our RunEngine, best of {repeats}")
    print(f"  no subscriber      {docs_per_run / bare:10.0f} documents/s  ({bare:.3f} s)")
    print(f"  store subscribed   {docs_per_run / stored:10.0f} documents/s  ({stored:.3f} s)")
    print(f"  store alone        {docs_per_run / alone:10.0f} documents/s  ({alone:.3f} s)")
    print(f"  store cost, difference of runs: {100 * (stored - bare) / bare:5.1f} % of the engine")
    print(f"  store cost, store alone:        {100 * alone / bare:5.1f} % of the engine")
    print(f"read back {n} rows: primary.read() {n / read:10.0f} rows/s ({read:.3f} s)")
    print(f"                    to_pandas()    {n / table:10.0f} rows/s ({table:.3f} s)")
    print(f"open a catalog of {len(catalog)} runs + last run's metadata: {1000 * listing:.1f} ms")


if __name__ == "__main__":
    main()
