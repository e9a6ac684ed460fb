"""A bluesky-queueserver RE Manager on loopback, started and stopped by the tests.

:class:`QueueServer` writes a startup directory (a profile creating ``RE`` from bluesky or
from runengine, ``ophyd.sim`` devices, bluesky's plans, and a small run recorder), starts
``start-re-manager`` in a session of its own with its 0MQ control and info sockets on free
127.0.0.1 ports and ``--redis-addr`` to a redis-server the caller started, and stops it again by
process group: the manager forks a manager process and, while an environment is open, a worker
process, and none of them may outlive the test.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.devices.procs import bound_addresses, cmdline, group_members
from tests.runengine.scaleout.conftest import free_port

log = logging.getLogger(__name__)

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

USER_GROUP_PERMISSIONS = """\
user_groups:
  root:
    allowed_plans: [null]
    forbidden_plans: [":^_"]
    allowed_devices: [null]
    forbidden_devices: [":^_:?.*"]
    allowed_functions: [null]
    forbidden_functions: [":^_"]
  primary:
    allowed_plans: [":.*"]
    forbidden_plans: [null]
    allowed_devices: [":?.*:depth=5"]
    forbidden_devices: [null]
    allowed_functions: ["recorded_runs"]
    forbidden_functions: [null]
"""


def start_re_manager() -> str:
    """The ``start-re-manager`` script installed beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("start-re-manager")
    found = str(beside) if beside.exists() else shutil.which("start-re-manager")
    if found is None:
        raise FileNotFoundError("start-re-manager is not installed (pip install .[test])")
    return found


class QueueServer:
    """One RE Manager whose startup profile makes ``RE`` with ``engine``'s RunEngine.

    ``api`` is a 0MQ :class:`bluesky_queueserver_api.zmq.REManagerAPI` to it. Every wait is
    bounded; :meth:`stop` ends every process the manager started, by process group.
    """

    def __init__(self, engine: str, directory: Path, redis_port: int) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: one of {sorted(ENGINES)}")
        self.engine = engine
        self.directory = directory
        self.startup_dir = directory / "startup"
        self.redis_port = redis_port
        self.control_addr = f"tcp://127.0.0.1:{free_port()}"
        self.info_addr = f"tcp://127.0.0.1:{free_port()}"
        self.log_path = directory / "re-manager.log"
        self.proc: subprocess.Popen | None = None
        self.pgid: int | None = None  # the manager's process group: its pid, kept after stop
        self.api: Any = None

    # ---- files --------------------------------------------------------------------------
    def write_startup_dir(self) -> None:
        """The profile, the user group permissions; the manager writes the plans list."""
        self.startup_dir.mkdir(parents=True, exist_ok=True)
        profile = PROFILE.format(engine=self.engine, engine_import=ENGINES[self.engine])
        (self.startup_dir / "00-profile.py").write_text(profile)
        (self.directory / "user_group_permissions.yaml").write_text(USER_GROUP_PERMISSIONS)

    def command(self) -> list[str]:
        """The ``start-re-manager`` command line: loopback only, pure-Python worker."""
        return [
            start_re_manager(),
            f"--zmq-control-addr={self.control_addr}",
            f"--zmq-info-addr={self.info_addr}",
            f"--redis-addr=127.0.0.1:{self.redis_port}",
            f"--redis-name-prefix=qs_{self.engine}_{os.getpid()}",
            f"--startup-dir={self.startup_dir}",
            f"--existing-plans-devices={self.directory / 'existing_plans_and_devices.yaml'}",
            "--update-existing-plans-devices=ENVIRONMENT_OPEN",
            f"--user-group-permissions={self.directory / 'user_group_permissions.yaml'}",
            "--use-ipython-kernel=OFF",
            "--zmq-publish-console=OFF",
        ]

    # ---- lifetime -----------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> QueueServer:
        """Start the manager and wait (bounded) until it answers ``status``."""
        from bluesky_queueserver_api.zmq import REManagerAPI

        self.write_startup_dir()
        env = dict(
            os.environ,
            MPLBACKEND="Agg",
            IPYTHONDIR=str(self.directory / "ipython"),
            # ophyd's Channel Access client (imported by the profile) searches loopback only
            EPICS_CA_ADDR_LIST="127.0.0.1",
            EPICS_CA_AUTO_ADDR_LIST="NO",
        )
        env.pop("QSERVER_CONFIG", None)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one
            )
        self.pgid = self.proc.pid
        log.info("%s: start-re-manager pid %d at %s", self.engine, self.proc.pid, self.control_addr)
        self.api = REManagerAPI(
            zmq_control_addr=self.control_addr,
            zmq_info_addr=self.info_addr,
            timeout_recv=5.0,
            request_fail_exceptions=False,  # refusals are outcomes: returned, not raised
            status_expiration_period=0.05,
            status_polling_period=0.05,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"start-re-manager exited: {self.proc.returncode}\n{self.log()}")
            try:
                self.api.status(reload=True)
                return self
            except Exception as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"RE Manager not answering: {exc}\n{self.log()}") from exc
                time.sleep(0.1)

    def processes(self) -> list[int]:
        """The manager's live processes (the watchdog, the manager, the worker if any)."""
        return [] if self.pgid is None else group_members(self.pgid)

    def listening(self) -> list[tuple[str, str, int]]:
        """Every inet socket the manager's processes hold: ``(proto, ip, port)``."""
        found = []
        for pid in self.processes():
            try:
                found.extend(bound_addresses(pid))
            except OSError:  # the process ended meanwhile
                continue
        return found

    def stop(self, timeout: float = 15.0) -> list[str]:
        """Stop the manager (politely, then by SIGKILL to its group); return what was left.

        The returned list names every process of the group that was still alive after the
        polite stop and had to be killed (empty: the manager stopped on its own).
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        if self.api is not None and proc.poll() is None:
            try:
                self.api.send_request(method="manager_stop", params={"option": "safe_off"})
            except Exception as exc:
                log.warning("%s: manager_stop refused: %s", self.engine, exc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s: start-re-manager still running after %s s", self.engine, timeout)
        left = [f"{pid}: {cmdline(pid)}" for pid in group_members(proc.pid)]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
        deadline = time.monotonic() + 5
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.api is not None:
            self.api.close()
            self.api = None
        return left

    def log(self, lines: int = 60) -> str:
        """The last ``lines`` of the manager's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __repr__(self) -> str:
        return f"QueueServer({self.engine!r}, {self.control_addr!r})"
