"""The latency suite: how fast interruptions take effect, ours beside bluesky's where it has them.

Each case runs its trials in rounds, alternating the engines round by round, and reports
p50/p99/max over all trials (:func:`harness.latency_summary`).
"""

from __future__ import annotations

from collections.abc import Callable

import bench_agents
import bench_interruptions
import bench_locks
import bench_sigint
from harness import Engine, latency_summary, quietly

PAUSE_TARGET_MS = 10.0
Trials = Callable[[int], tuple[list[float], str]]  # n trials -> (samples in s, note)


def alternate(
    label: str,
    key: str,
    runs: dict[str, Callable[[int], tuple[list[float], str]]],
    trials: int,
    rounds: int,
) -> dict:
    """Run ``runs[engine](n)`` -> (samples, note) in ``rounds`` rounds of ``trials / rounds``.

    Each engine keeps the last round's note: notes that count things count from the start.
    """
    samples: dict[str, list[float]] = {name: [] for name in runs}
    notes: dict[str, list[str]] = {name: [] for name in runs}
    per_round = [trials // rounds + (1 if i < trials % rounds else 0) for i in range(rounds)]
    for n in per_round:
        if n == 0:
            continue
        for name, run in runs.items():
            got, note = run(n)
            samples[name] += got
            if note:
                notes[name].append(note)
    engines = {
        name: latency_summary(values, note=notes[name][-1] if notes[name] else "")
        for name, values in samples.items()
    }
    return {"key": key, "label": label, "trials": trials, "engines": engines}


def _pause(engine: Engine) -> Callable[[int], tuple[list[float], str]]:
    def run(n: int) -> tuple[list[float], str]:
        engine.before()
        with quietly():
            return bench_interruptions.pause_latency(engine.RE, n), ""

    return run


def _trip(engine: Engine, dropped_total: dict[str, list[int]]) -> Trials:
    def run(n: int) -> tuple[list[float], str]:
        engine.before()
        with quietly():
            got, dropped = bench_interruptions.trip_latency(engine.RE, n)
        total = dropped_total.setdefault(engine.name, [0, 0])
        total[0] += dropped
        total[1] += n
        return got, f"dropped {total[0]}/{total[1]}" if total[0] else ""

    return run


def _sigint(name: str, mode: str) -> Callable[[int], tuple[list[float], str]]:
    def run(n: int) -> tuple[list[float], str]:
        got, failed = bench_sigint.sigint_latency(name, mode, n)
        return got, f"no prompt within 15 s in {failed}/{n}" if failed else ""

    return run


def _lock_handover(RE) -> dict[str, Callable[[int], tuple[list[float], str]]]:
    """bluesky has no hardware locks: our plan holder beside plain threads (bench_locks)."""
    return {
        "ours": lambda n: (bench_locks.plan_handover(RE, n), "plan holder, thread waiter"),
        "threads": lambda n: (bench_locks.thread_handover(n), "no engine: thread to thread"),
    }


def _file_trigger() -> dict[str, Trials]:
    """bluesky has no file-trigger agent: ours with inotify beside ours polling every 0.25 s."""

    def reaction(use_watchdog: bool, note: str) -> Trials:
        def run(n: int) -> tuple[list[float], str]:
            with quietly():  # the engine's "Pausing..." at each trial
                return bench_agents.file_reaction(n, use_watchdog=use_watchdog), note

        return run

    return {"inotify": reaction(True, "watchdog"), "polling": reaction(False, "every 0.25 s")}


def _expiry() -> dict[str, Trials]:
    """bluesky has no agent registry: ours, against its bound (timeout + check period)."""
    return {"ours": lambda n: (bench_agents.expiry_latency(n), "bound 600 ms (0.5 s + 0.1 s)")}


def latency_cases(engines: list[Engine], quick: bool, repeats: int) -> dict[str, Callable]:
    """Key -> a function returning that case's result, for ``--only`` to pick from."""
    pair = [e for e in engines if e.name in ("ours", "bluesky")]
    rounds = max(1, min(repeats, 5))
    pause_trials = 20 if quick else 100
    trip_trials = 2 if quick else 5
    sigint_trials = 3 if quick else 10
    dropped: dict[str, list[int]] = {}
    ours = next(e for e in engines if e.name == "ours")
    return {
        "pause": lambda: alternate(
            f"request_pause -> paused (target p99 <= {PAUSE_TARGET_MS:g} ms)",
            "pause",
            {e.name: _pause(e) for e in pair},
            pause_trials,
            rounds,
        ),
        "trip": lambda: alternate(
            "suspender trip after a 1 s blocking callback",
            "trip",
            {e.name: _trip(e, dropped) for e in pair},
            trip_trials,
            min(rounds, trip_trials),
        ),
        "sigint-sleep": lambda: alternate(
            "Ctrl+C twice -> prompt, plan in a sleep",
            "sigint-sleep",
            {e.name: _sigint(e.name, "sleep") for e in pair},
            sigint_trials,
            1,
        ),
        "sigint-busy": lambda: alternate(
            "Ctrl+C twice -> prompt, plan streaming messages",
            "sigint-busy",
            {e.name: _sigint(e.name, "busy") for e in pair},
            sigint_trials,
            1,
        ),
        "lock": lambda: alternate(
            "lock hand-over (yield_lock -> waiter holds it)",
            "lock",
            _lock_handover(ours.RE),
            200 if quick else 2000,
            rounds,
        ),
        "file-trigger": lambda: alternate(
            "file created -> engine pausing (FilePausingAgent)",
            "file-trigger",
            _file_trigger(),
            6 if quick else 20,
            2,
        ),
        "expiry": lambda: alternate(
            "last heartbeat -> expiry event (Registry, timeout 0.5 s)",
            "expiry",
            _expiry(),
            5 if quick else 20,
            1,
        ),
    }
