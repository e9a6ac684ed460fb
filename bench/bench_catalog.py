"""How long a new Catalog takes over a big store: open, the last run, a search.

    python bench/bench_catalog.py [--runs N] [--repeats R] [--directory DIR]

Writes N small run files (a start, three events of one descriptor, a stop; the start shaped
like bluesky's count/scan) into a temporary directory (or DIR, kept for another try), then for
each of R fresh ``Catalog`` objects times ``len(catalog)`` with ``catalog[-1]`` (what
``runengine runs`` and ``db[-1]`` do first) and a search on ``plan_name``. The file cache is
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


def measure(directory: str, repeats: int) -> dict[str, float]:
    """Median seconds of a fresh catalog's open + [-1], and of a search after it."""
    opens, searches = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        catalog = Catalog(directory)
        count = len(catalog)
        catalog[-1].start  # noqa: B018 - the lookup is what is measured
        opened = time.perf_counter()
        hits = len(catalog.search({"plan_name": "scan"}))
        searched = time.perf_counter()
        opens.append(opened - started)
        searches.append(searched - opened)
    return {"runs": count, "hits": hits, "open": statistics.median(opens),
            "search": statistics.median(searches)}  # fmt: skip


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
        result = measure(directory, args.repeats)
    print(
        f"Catalog over {result['runs']} runs: open + len + [-1] {result['open'] * 1e3:.0f} ms, "
        f"search plan_name {result['search'] * 1e3:.0f} ms ({result['hits']} hits), "
        f"medians of {args.repeats}"
    )


if __name__ == "__main__":
    main()
