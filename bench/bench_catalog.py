"""How long a new Catalog takes over a big store: open, the last run, a search.

    python bench/bench_catalog.py [--runs N] [--repeats R] [--directory DIR]

Writes N small run files (a start, three events of one descriptor, a stop; the start shaped
like bluesky's count/scan) into a temporary directory (or DIR, kept for another try), then for
each of R fresh ``Catalog`` objects times ``len(catalog)`` with ``catalog[-1]`` (what
``runengine runs`` and ``db[-1]`` do first), a search on ``plan_name`` (an indexed column) and
one on ``sample`` and ``scan_id`` (a start field the index keeps only as JSON): first with the
run index in memory (built anew by every catalog: the cost without an index), then with it in
the store directory (built once, by the first catalog). The file cache is
warm: the numbers are the catalog's own work, not the disk's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

from runengine.callbacks.catalog import Catalog
from runengine.callbacks.run_index import INDEX_NAME
from runengine.callbacks.store import SUFFIX, pack_record


def write_store(directory: str, runs: int) -> None:
    """``runs`` small run files in ``directory`` (skipped if it holds that many already)."""
    existing = sum(1 for name in os.listdir(directory) if name.endswith(SUFFIX))
    for i in range(existing, runs):
        uid, desc = str(uuid.uuid4()), str(uuid.uuid4())
        when = 1.7e9 + i
        plan = "scan" if i % 2 else "count"
        records = [
            ("start", {"uid": uid, "time": when, "scan_id": i + 1, "plan_name": plan,
                       "plan_type": "generator", "detectors": ["det"], "sample": "Fe",
                       "versions": {"bluesky": "1.14"}, "hints": {"dimensions": [[["time"],
                       "primary"]]}}),
            ("descriptor", {"uid": desc, "run_start": uid, "time": when, "name": "primary",
                            "data_keys": {"det": {"dtype": "number", "shape": [],
                                                  "source": "sim"}},
                            "configuration": {}, "hints": {}, "object_keys": {"det": ["det"]}}),
            *(("event", {"uid": str(uuid.uuid4()), "descriptor": desc, "time": when + n,
                         "seq_num": n + 1, "data": {"det": float(n)},
                         "timestamps": {"det": when + n}, "filled": {}}) for n in range(3)),
            ("stop", {"uid": str(uuid.uuid4()), "run_start": uid, "time": when + 4,
                      "exit_status": "success", "reason": "", "num_events": {"primary": 3}}),
        ]  # fmt: skip
        with open(os.path.join(directory, uid + SUFFIX), "wb") as file:
            file.write(b"".join(pack_record(name, doc) for name, doc in records))


def measure(directory: str, repeats: int, *, index: bool = True) -> dict[str, float]:
    """Median seconds of a fresh catalog's open + len + [-1], and of searches after it.

    With ``index`` the run index is kept in the directory: the first catalog builds it
    (``build``), the measured ones find it. Without, each catalog indexes in memory.
    """
    started = time.perf_counter()
    len(Catalog(directory, index=index))
    build = time.perf_counter() - started
    opens, searches, others = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        catalog = Catalog(directory, index=index)
        count = len(catalog)
        catalog[-1].start  # noqa: B018 - the lookup is what is measured
        opened = time.perf_counter()
        hits = len(catalog.search({"plan_name": "scan"}))
        searched = time.perf_counter()
        recent = catalog.search({"sample": "Fe", "scan_id": {"$gt": count - 10}})
        other_hits = len(recent)
        others.append(time.perf_counter() - searched)
        opens.append(opened - started)
        searches.append(searched - opened)
    return {"runs": count, "hits": hits, "other_hits": other_hits, "build": build,
            "open": statistics.median(opens), "search": statistics.median(searches),
            "other_search": statistics.median(others)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--directory", help="keep the store here (made on the first try)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_catalog_") as scratch:
        directory = args.directory or scratch
        os.makedirs(directory, exist_ok=True)
        started = time.perf_counter()
        write_store(directory, args.runs)
        print(f"store of {args.runs} runs ready in {time.perf_counter() - started:.1f} s")
        for index in (False, True):
            if index and os.path.exists(os.path.join(directory, INDEX_NAME)):
                os.remove(os.path.join(directory, INDEX_NAME))  # measure its first build
            r = measure(directory, args.repeats, index=index)
            print(
                f"Catalog over {r['runs']} runs, index {'in the store' if index else 'in memory'}:"
                f" first open {r['build']:.2f} s; then open + len + [-1] {r['open'] * 1e3:.1f} ms,"
                f" search plan_name {r['search'] * 1e3:.1f} ms ({r['hits']} hits),"
                f" search sample + scan_id {r['other_search'] * 1e3:.1f} ms"
                f" ({r['other_hits']} hits); medians of {args.repeats}"
            )


if __name__ == "__main__":
    main()
