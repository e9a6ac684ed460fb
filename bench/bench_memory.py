"""Memory: RSS over a long ``count`` and over many short runs on our RunEngine.

    python -m bench --only memory            # 1,000,000 events and 1,000 runs (a few minutes)

RSS comes from ``/proc/self/status`` (VmRSS), sampled at intervals; growth is counted from the
end of a warm-up (the first tenth of the work), when caches and pools have filled.
"""

from __future__ import annotations

import gc

from bluesky import plans as bp
from ophyd import Signal

from runengine import RunEngine

EVENTS = 1_000_000
RUNS = 1_000
TARGET_MB = 20.0


def rss_mb() -> float:
    """Resident set size of this process, in MB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _summary(label: str, work: str, samples: list[tuple[int, float]], warm: int) -> dict:
    after = [mb for i, mb in samples if i >= warm]
    warm_mb, end_mb = after[0], after[-1]
    return {
        "label": label,
        "work": work,
        "warm_mb": warm_mb,
        "end_mb": end_mb,
        "peak_mb": max(after),
        "growth_mb": end_mb - warm_mb,
        "samples": samples,
    }


def count_rss(events: int = EVENTS, samples: int = 50, RE=None) -> dict:
    """RSS every ``events / samples`` events of ``count([Signal], events)``, no subscriber."""
    RE = RE or RunEngine({}, context_managers=[])
    signal = Signal(name="signal", value=1.0)
    every = max(1, events // samples)
    readings: list[tuple[int, float]] = [(0, rss_mb())]

    def sample(name: str, doc: dict) -> None:
        if name == "event" and doc["seq_num"] % every == 0:
            readings.append((doc["seq_num"], rss_mb()))

    RE(bp.count([signal], events), sample)
    readings.append((events, rss_mb()))
    out = _summary("count([Signal], N)", f"{events} events", readings, events // 10)
    out["target"] = f"growth <= {TARGET_MB:g} MB"
    return out


def runs_rss(runs: int = RUNS, samples: int = 20, RE=None) -> dict:
    """RSS every ``runs / samples`` runs of ``count([Signal], 3)`` (after a gc.collect())."""
    RE = RE or RunEngine({}, context_managers=[])
    signal = Signal(name="signal", value=1.0)
    every = max(1, runs // samples)
    readings: list[tuple[int, float]] = []
    for i in range(runs + 1):
        if i % every == 0 or i == runs:
            gc.collect()
            readings.append((i, rss_mb()))
        if i < runs:
            RE(bp.count([signal], 3))
    warm = runs // 10
    out = _summary("short runs: count([Signal], 3)", f"{runs} runs", readings, warm)
    out["per_run_kb"] = out["growth_mb"] * 1024 / max(1, runs - warm)
    out["target"] = f"no leak ({out['per_run_kb']:.2f} kB/run)"
    return out


def memory_suite(quick: bool) -> list[dict]:
    scale = 10 if quick else 1
    return [count_rss(EVENTS // scale), runs_rss(RUNS // scale)]
