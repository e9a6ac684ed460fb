"""Memory stays flat: a scaled-down ``python -m bench --only memory`` (RSS, not time)."""

from __future__ import annotations

from bench import bench_memory


def test_rss_stays_flat_over_a_long_count():
    result = bench_memory.count_rss(60_000, samples=20)
    assert result["growth_mb"] <= 20.0, result["samples"]


def test_consecutive_short_runs_do_not_leak():
    result = bench_memory.runs_rss(300, samples=10)
    assert result["growth_mb"] <= 5.0, result["samples"]  # about 17 kB per run, at most
