"""Run the benchmark suites and publish the results (``python -m bench``, ``make bench``).

    python -m bench [--quick] [--only NAME[,NAME...]] [--repeats N]

Suites: ``engine``, ``signals``, ``subscribers``, ``iocs`` (throughput), ``latency``; and
``memory``, which takes minutes and runs only when named. ``--only`` takes suite names or case
keys (``count``, ``scan-ioc``, ``pause``...). Results go to ``bench/results/latest.json``; the
markdown table to ``docs/benchmarks.md`` after a full run (every default suite, not quick), else
to ``bench/results/latest.md``, so a smoke run never overwrites the published numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import harness
from harness import Engine

DEFAULT = ("engine", "signals", "subscribers", "iocs", "latency")
OPT_IN = ("memory",)


def make_engines() -> list[Engine]:
    """Ours, bluesky as installed, bluesky with runengine.compat's patches on (opted in for
    its calls), and no engine at all (the floor, :mod:`bare`): run in this order."""
    from bare import NoEngine
    from bluesky import RunEngine as BlueskyRunEngine

    from runengine import RunEngine, compat

    theirs = BlueskyRunEngine({}, context_managers=[])
    ours = RunEngine({}, context_managers=[])  # made last: its loop is bluesky's global one
    return [
        Engine("ours", ours, compat.leave_engine_call),  # its calls turn them on themselves
        Engine("bluesky", theirs, compat.leave_engine_call),
        Engine("bluesky+", theirs, compat.enter_engine_call),
        Engine("no engine", NoEngine(), compat.enter_engine_call),
    ]


def throughput_suites() -> dict:
    import bench_engine
    import bench_iocs
    import bench_store

    return {
        "engine": bench_engine.engine_cases,
        "signals": bench_engine.signal_cases,
        "subscribers": bench_store.subscriber_cases,
        "iocs": bench_iocs.ioc_cases,
    }


def wanted(only: set[str] | None, suite: str, key: str | None = None) -> bool:
    if only is None:
        return suite in DEFAULT
    return suite in only or (key is not None and key in only)


def run(args: argparse.Namespace) -> dict:
    only = set(args.only.split(",")) if args.only else None
    engines = make_engines()
    report: dict = {
        "options": " ".join(sys.argv[1:]) or "(defaults)",
        "repeats": args.repeats,
        "quick": args.quick,
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "throughput": [],
        "latency": [],
        "memory": [],
    }
    suites = throughput_suites()
    case_keys = only - {*suites, "latency", *LATENCY_KEYS, *OPT_IN} if only else set()
    for suite, cases in suites.items():
        if not wanted(only, suite) and not case_keys:
            continue
        with cases() as found:
            for case in found:
                if not wanted(only, suite, case.key):
                    continue
                t0 = time.perf_counter()
                with harness.quietly():
                    result = harness.measure(case, engines, args.repeats, args.quick)
                result["suite"] = suite
                report["throughput"].append(result)
                row = harness.throughput_rows([result])[1][0]
                print(f"  {suite:11} {' '.join(row)}  ({time.perf_counter() - t0:.0f} s)")
    if only is None or "latency" in only or only & set(LATENCY_KEYS):
        import latency

        for key, measure in latency.latency_cases(engines, args.quick, args.repeats).items():
            if wanted(only, "latency", key):
                report["latency"].append(measure())
                print(f"  latency     {report['latency'][-1]['label']}")
    if only is not None and "memory" in only:
        import bench_memory

        for result in bench_memory.memory_suite(args.quick):
            report["memory"].append(result)
            print(f"  memory      {result['label']}: {result['growth_mb']:+.1f} MB")
    report["machine"] = harness.machine()
    if max(report["load_start"][0], report["machine"]["load_average"][0]) >= 1.0:
        report.setdefault("notes", []).append(
            "**Provisional:** the load average was at or above 1.0 during this run (other work "
            "on the machine), so these figures are noisy. Re-take them on a quiet machine with "
            "`make bench`."
        )
    return report


LATENCY_KEYS = ("pause", "trip", "sigint-sleep", "sigint-busy", "lock", "file-trigger", "expiry")


def show(report: dict) -> None:
    for title, key, rows in (
        ("Throughput, medians (per second)", "throughput", harness.throughput_rows),
        ("Latency", "latency", harness.latency_rows),
        ("Memory (RSS)", "memory", harness.memory_rows),
    ):
        if report[key]:
            print(f"\n{title}\n" + harness.text_table(*rows(report[key])))
    m = report["machine"]
    print(
        f"\n{m['cpu']}, {m['cores']} cores, {m['python']}, load {report['load_start']} -> "
        f"{m['load_average']}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a fraction of the work (CI smoke)")
    parser.add_argument("--only", metavar="NAME[,NAME]", help="suites or case keys to run")
    parser.add_argument("--repeats", type=int, help="runs per engine and case (default 5; quick 3)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    report = run(args)
    show(report)
    results = harness.ROOT / "bench" / "results"
    harness.write_json(results / "latest.json", report)
    full = args.only is None and not args.quick
    markdown = harness.ROOT / "docs" / "benchmarks.md" if full else results / "latest.md"
    markdown.write_text(harness.render_markdown(report))
    print(f"\nwrote {results / 'latest.json'} and {markdown}")
