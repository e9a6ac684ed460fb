"""What the follower costs and how fast it exports.

    python bench/bench_follower.py [--runs R] [--events E] [--engine-events N] [--rounds K]

1. Export rate: a store of R runs of E events each (count of 3 Signals), exported by one
   ``Follower.step()`` into a new tiled SQLite catalog in the store (``broker()``'s catalog):
   documents/s and runs/s; then the run index alone (no tiled): runs/s.
2. The engine with the follower on: ``count([3 Signals], N)`` into a store, our RunEngine,
   with no follower and with a follower process (``runengine serve``'s loop: index, stream into
   tiled) following the same store, K rounds each; documents/s (median), the ratio, and how
   long the follower needed after the engine was done to have every run in tiled.
   bluesky's RunEngine with the same store is measured in the same rounds, for scale.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import threading
import time

from bluesky import RunEngine as BlueskyRunEngine
from bluesky import plans as bp
from ophyd import Signal

from runengine import RunEngine
from runengine.callbacks.follower import Follower
from runengine.callbacks.store import RunStore
from runengine.callbacks.store_catalog import STORE_TARGET, store_client


def _signals() -> list[Signal]:
    return [Signal(name=f"s{i}", value=float(i)) for i in range(3)]


def fill_store(directory: str, runs: int, events: int) -> int:
    """``runs`` runs of ``events`` events in ``directory``; the number of documents."""
    RE = RunEngine({}, context_managers=[])
    counted = [0]
    RE.subscribe(lambda name, doc: counted.__setitem__(0, counted[0] + 1))
    RunStore(directory).subscribe(RE)
    sigs = _signals()
    for _ in range(runs):
        RE(bp.count(sigs, events))
    return counted[0]


def export_rate(runs: int, events: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench_follow_") as directory:
        documents = fill_store(directory, runs, events)
        client = store_client(directory)
        follower = Follower(directory, client, target=STORE_TARGET)
        started = time.perf_counter()
        report = follower.step()
        took = time.perf_counter() - started
        assert len(report.exported) == runs, report
    with tempfile.TemporaryDirectory(prefix="bench_index_") as directory:
        fill_store(directory, runs, events)
        started = time.perf_counter()
        Follower(directory).step()
        indexed = time.perf_counter() - started
    return {"documents": documents, "docs_per_s": documents / took, "runs_per_s": runs / took,
            "index_runs_per_s": runs / indexed}  # fmt: skip


def _follow(directory: str, ready, stop) -> None:
    follower = Follower(directory, store_client(directory), target=STORE_TARGET)
    follower.step()
    ready.set()
    halt = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), halt.set()), daemon=True).start()
    follower.follow(halt, 0.2)


def _engine_rate(engine: str, directory: str, events: int) -> float:
    RE = RunEngine({}, context_managers=[]) if engine == "ours" else BlueskyRunEngine({})
    RunStore(directory).subscribe(RE)
    sigs = _signals()
    started = time.perf_counter()
    RE(bp.count(sigs, events))
    took = time.perf_counter() - started
    return (events + 3) / took  # start, descriptor, events, stop


def engine_with_follower(events: int, rounds: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    rates: dict[str, list[float]] = {"ours": [], "ours+follower": [], "bluesky": []}
    with tempfile.TemporaryDirectory(prefix="bench_engine_follow_") as directory:
        ready, stop = context.Event(), context.Event()
        follower = context.Process(target=_follow, args=(directory, ready, stop))
        for _ in range(rounds):
            rates["ours"].append(_engine_rate("ours", directory + "/plain", events))
            rates["bluesky"].append(_engine_rate("bluesky", directory + "/plain", events))
        follower.start()
        ready.wait(120)
        for _ in range(rounds):
            rates["ours+follower"].append(_engine_rate("ours", directory, events))
        engine_done = time.perf_counter()
        index = Follower(directory, None, target=STORE_TARGET)
        while sum(index.exported().values()) < rounds and time.perf_counter() < engine_done + 900:
            time.sleep(0.5)  # the follower catches up after the engine is done
        catch_up = time.perf_counter() - engine_done
        exported = sum(index.exported().values())
        index.close()
        stop.set()
        follower.join(60)
        if follower.is_alive():
            follower.terminate()
            follower.join()
    result = {name: statistics.median(values) for name, values in rates.items()}
    result["ratio"] = result["ours+follower"] / result["ours"]
    result["exported"] = exported
    result["catch_up"] = catch_up
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--engine-events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rate = export_rate(args.runs, args.events)
    print(
        f"export: {rate['documents']} documents of {args.runs} runs into tiled at"
        f" {rate['docs_per_s']:.0f} docs/s ({rate['runs_per_s']:.1f} runs/s);"
        f" run index alone {rate['index_runs_per_s']:.0f} runs/s"
    )
    r = engine_with_follower(args.engine_events, args.rounds)
    print(
        f"count of {args.engine_events} events into the store, medians of {args.rounds}:"
        f" ours {r['ours']:.0f} docs/s, ours with the follower {r['ours+follower']:.0f} docs/s"
        f" (x{r['ratio']:.3f}), bluesky {r['bluesky']:.0f} docs/s;"
        f" follower exported {r['exported']}/{args.rounds} runs,"
        f" {r['catch_up']:.1f} s after the engine was done"
    )


if __name__ == "__main__":
    main()
