"""The benchmark harness: engines side by side, alternating, medians, and the published tables.

A throughput :class:`Case` is a plan factory ``plan(n)`` and the work ``n`` it represents;
:func:`measure` runs it on every engine in turn (ours, bluesky, bluesky+, ours, ...) so that
drift in the machine's load spreads over all of them, and keeps every rate. A latency result
is a list of samples per engine. :func:`write_json` and :func:`write_markdown` publish both
with a description of the machine.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runengine", "bluesky", "ophyd", "caproto", "event-model", "numpy", "msgpack")


@dataclass
class Case:
    """One throughput benchmark: ``plan(n)`` does ``n`` units of work (messages, events...).

    ``subscribers(engine_name)`` returns the callbacks to pass with each run (``RE(plan,
    subs)``); ``target`` is the issue's ratio target ours/bluesky, if any.
    """

    key: str
    label: str
    unit: str
    n: int
    plan: Callable[[int], Iterable]
    target: float | None = None
    subscribers: Callable[[str], list] | None = None
    quick_divisor: int = 10

    def size(self, quick: bool) -> int:
        return max(1, self.n // self.quick_divisor) if quick else self.n


@dataclass
class Engine:
    """A RunEngine under a display name; ``before()`` runs before each of its runs."""

    name: str
    RE: Any
    before: Callable[[], None] = field(default=lambda: None)

    def time(self, case: Case, n: int) -> float:
        self.before()
        plan = case.plan(n)
        subs = case.subscribers(self.name) if case.subscribers else []
        gc.collect()
        t0 = time.perf_counter()
        self.RE(plan, subs)
        return time.perf_counter() - t0


def measure(case: Case, engines: list[Engine], repeats: int, quick: bool) -> dict:
    """Rates of ``case`` on each engine, alternating; one small warm-up run each first."""
    n = case.size(quick)
    for engine in engines:
        engine.time(case, max(1, n // 10))
    rates: dict[str, list[float]] = {e.name: [] for e in engines}
    for _ in range(repeats):
        for engine in engines:
            rates[engine.name].append(n / engine.time(case, n))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    result = {
        "key": case.key,
        "label": case.label,
        "unit": case.unit,
        "n": n,
        "rates": rates,
        "median": medians,
        "target": case.target,
    }
    if "ours" in medians and "bluesky" in medians:
        result["ratio"] = medians["ours"] / medians["bluesky"]
    if "ours" in medians and "bluesky+" in medians:
        result["ratio_plus"] = medians["ours"] / medians["bluesky+"]
    if "no engine" in medians and "bluesky" in medians:
        result["ceiling"] = medians["no engine"] / medians["bluesky"]
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_summary(samples: list[float], **extra: Any) -> dict:
    """p50/p99/max in milliseconds of samples in seconds (None when nothing was measured)."""
    out: dict[str, Any] = {"count": len(samples), **extra}
    if samples:
        ms = [s * 1e3 for s in samples]
        out.update(p50=statistics.median(ms), p99=percentile(ms, 0.99), max=max(ms))
    return out


@contextlib.contextmanager
def quietly():
    """Keep the engines' chatter (Pausing..., tracebacks of aborted trials) off the table."""
    sink = io.StringIO()
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        logging.disable(logging.NOTSET)


# ---- tables ----------------------------------------------------------------------------------
def throughput_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["case", "unit", "N", "bluesky/s", "bluesky+/s", "ours/s", "ours/bl", "ours/bl+"]
    header += ["no engine/s", "ceiling", "target"]
    rows = []
    for r in results:
        med = r["median"]
        target = r.get("target")
        met = "" if target is None else (f"{target:g}x " + ("ok" if r["ratio"] >= target else "no"))
        rows.append(
            [
                r["label"],
                r["unit"],
                str(r["n"]),
                f"{med.get('bluesky', 0):.0f}",
                f"{med.get('bluesky+', 0):.0f}",
                f"{med['ours']:.0f}",
                f"{r.get('ratio', 0):.1f}x",
                f"{r.get('ratio_plus', 0):.1f}x",
                f"{med['no engine']:.0f}" if "no engine" in med else "-",
                f"{r['ceiling']:.1f}x" if "ceiling" in r else "-",
                met,
            ]
        )
    return header, rows


def latency_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["case", "engine", "n", "p50 ms", "p99 ms", "max ms", "note"]
    rows = []
    for r in results:
        for engine, s in r["engines"].items():
            if "p50" in s:
                cells = [f"{s['p50']:.2f}", f"{s['p99']:.2f}", f"{s['max']:.2f}"]
            else:
                cells = ["-", "-", "-"]
            rows.append([r["label"], engine, str(s["count"]), *cells, s.get("note", "")])
    return header, rows


def memory_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["case", "work", "RSS after warm-up MB", "RSS end MB", "growth MB", "target"]
    rows = [
        [
            r["label"],
            r["work"],
            f"{r['warm_mb']:.1f}",
            f"{r['end_mb']:.1f}",
            f"{r['growth_mb']:+.1f}",
            r["target"],
        ]
        for r in results
    ]
    return header, rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    lines = []
    for i, line in enumerate([header, *rows]):
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in pairs]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---- machine and publishing -------------------------------------------------------------------
def machine() -> dict:
    """CPU, cores, Python, package versions, commit, date and load: what a reader needs."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        git = ["git", "-C", str(ROOT)]
        commit = subprocess.check_output([*git, "rev-parse", "--short", "HEAD"], text=True).strip()
        if subprocess.check_output([*git, "status", "--porcelain", "--untracked-files=no"]):
            commit += " (uncommitted changes in the tree)"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "packages": versions,
        "commit": commit,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")


def render_markdown(report: dict) -> str:
    m = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`): our RunEngine and bluesky's on the same",
        "plans in one process, alternating run by run, "
        f"{report['repeats']} repetitions, medians. "
        "`bluesky+` is bluesky's engine with `runengine.compat`'s patches on (its plan stubs made",
        "cheap to call), so `ours/bl+` compares the engines alone; `ours/bl` is what a user sees.",
        "`no engine` carries each message out on its device and does nothing else (no documents,",
        "no event loop: `bench/bare.py`); `ceiling` = no engine / bluesky is the best ratio any",
        "engine could reach on that plan, the bound set by the plan and its devices.",
        "See [performance](performance.md) for what limits each line.",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; {m['platform']}",
        f"- Python: {m['python']}; {packages}",
        f"- Commit {m['commit']}, {m['date']}; load average at start "
        f"{report['load_start']}, at end {m['load_average']}",
        f"- Options: {report['options']}",
    ]
    sections = (
        ("Throughput", "throughput", throughput_rows),
        ("Latency", "latency", latency_rows),
        ("Memory", "memory", memory_rows),
    )
    for title, key, rows in sections:
        if report.get(key):
            out += ["", f"## {title}", "", markdown_table(*rows(report[key]))]
    for note in report.get("notes", []):
        out += ["", note]
    return "\n".join(out) + "\n"
