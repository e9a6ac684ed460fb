"""A bluesky-queueserver RE Manager on loopback whose ``RE`` is bluesky's or ours.

:class:`QueueServer` is the product's launcher (:class:`runengine.cli.queue.manager.
QueueManager`: free 127.0.0.1 ports, its own process group, stopped by PID) with a startup
directory of the tests' own: a profile creating ``RE`` from bluesky or from runengine,
``ophyd.sim`` devices, bluesky's plans, and a small run recorder. The same profile for both
engines is what makes their outcomes comparable.
"""

from __future__ import annotations

import os
from pathlib import Path

from runengine.cli.queue.manager import QueueManager
from tests.devices.procs import bound_addresses

#: How ``RE`` is made in the profile, by engine name.
ENGINES = {
    "bluesky": "from bluesky import RunEngine",
    "runengine": "from runengine import RunEngine",
}

PROFILE = '''\
"""Startup profile of the queueserver end-to-end tests ({engine})."""

{engine_import}
from bluesky.plans import count, grid_scan, rel_scan, scan  # noqa: F401
from ophyd.sim import det1, det2, motor, motor1, motor2  # noqa: F401

RE = RunEngine({{}})

# What each run ended with, read back by the tests through ``function_execute``.
RECORDED_RUNS = []
_open_runs = {{}}
_streams = {{}}


def _record(name, doc):
    if name == "start":
        _open_runs[doc["uid"]] = {{"events": {{}}, "seq_nums": {{}}}}
    elif name == "descriptor":
        _streams[doc["uid"]] = (doc["run_start"], doc.get("name", "primary"))
    elif name == "event":
        run_uid, stream = _streams[doc["descriptor"]]
        run = _open_runs[run_uid]
        run["events"][stream] = run["events"].get(stream, 0) + 1
        run["seq_nums"].setdefault(stream, []).append(doc["seq_num"])
    elif name == "stop":
        run = _open_runs.pop(doc["run_start"])
        RECORDED_RUNS.append(
            {{
                "exit_status": doc["exit_status"],
                "num_events": doc.get("num_events", {{}}),
                "events": run["events"],
                "seq_nums_contiguous": all(
                    nums == list(range(1, len(nums) + 1)) for nums in run["seq_nums"].values()
                ),
            }}
        )


RE.subscribe(_record)


def recorded_runs():
    """The runs closed since the last call (exit status, events per stream), then forget them."""
    runs = list(RECORDED_RUNS)
    RECORDED_RUNS.clear()
    return runs
'''


class QueueServer(QueueManager):
    """The product's :class:`QueueManager` with the tests' own profile, made with ``engine``'s
    RunEngine; ``recorded_runs`` is the one function its users may call."""

    def __init__(self, engine: str, directory: Path, redis_port: int) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: one of {sorted(ENGINES)}")
        super().__init__(
            directory,
            f"127.0.0.1:{redis_port}",
            startup_dir=directory / "startup",
            functions=("recorded_runs",),
            name_prefix=f"qs_{engine}_{os.getpid()}",
        )
        self.engine = engine

    def start(self, timeout: float = 30.0) -> QueueServer:
        """Write the profile, then start the manager (bounded)."""
        assert self.startup_dir is not None
        self.startup_dir.mkdir(parents=True, exist_ok=True)
        profile = PROFILE.format(engine=self.engine, engine_import=ENGINES[self.engine])
        (self.startup_dir / "00-profile.py").write_text(profile)
        super().start(timeout)
        return self

    def listening(self) -> list[tuple[str, str, int]]:
        """Every inet socket the manager's processes hold: ``(proto, ip, port)``."""
        found = []
        for pid in self.processes():
            try:
                found.extend(bound_addresses(pid))
            except OSError:  # the process ended meanwhile
                continue
        return found

    def __repr__(self) -> str:
        return f"QueueServer({self.engine!r}, {self.control_addr!r})"
