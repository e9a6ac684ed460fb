"""A bluesky-queueserver RE Manager on loopback, started and stopped by process group.

    manager = QueueManager(workdir, redis_address="127.0.0.1:6379").start()
    manager.api.environment_open(); manager.api.wait_for_idle()
    manager.stop()         # manager_stop, then SIGKILL to whatever of its group is left

``start-re-manager`` forks a watchdog, a manager and (while an environment is open) a worker;
the manager runs in a session of its own, so that :meth:`QueueManager.stop` ends them all and
none outlives it. Its 0MQ control and info sockets are on 127.0.0.1; the startup code is
:mod:`runengine.cli.queue.profile` unless ``startup_dir`` is given; the user group permissions
allow every plan and device and the profile's functions (:data:`.functions.FUNCTION_NAMES`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runengine.scaleout.redis_server import free_port
from runengine.scripts.process import group_members

from ..errors import CLIError
from .functions import FUNCTION_NAMES

__all__ = ["PROFILE_MODULE", "QueueError", "QueueManager", "permissions_yaml"]

log = logging.getLogger(__name__)

PROFILE_MODULE = "runengine.cli.queue.startup"
DEFAULT_CONTROL_PORT, DEFAULT_INFO_PORT = 60615, 60625  # queueserver's own defaults


class QueueError(CLIError, RuntimeError):
    """The queue server (manager, worker or HTTP front) did not start, answer or stop."""


def permissions_yaml(functions: Iterable[str] = FUNCTION_NAMES) -> str:
    """User group permissions: every plan and device; these functions, and no private names."""
    allowed = ", ".join(f'"{name}"' for name in functions)
    return f"""\
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
    allowed_functions: [{allowed}]
    forbidden_functions: [null]
"""


def _script(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise QueueError(f"{name} is not installed (pip install bluesky-queueserver)")
    return found


class QueueManager:
    """One RE Manager whose files are in ``directory``; ``api`` is a 0MQ client to it.

    ``redis_address``: ``host:port`` of the Redis holding the queue and history (keys under
    ``name_prefix``). ``control_port``/``info_port``: default free ports (0 too).
    ``env``: more environment for the worker (``RUNENGINE_STORE`` and the like).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        redis_address: str,
        *,
        control_port: int = 0,
        info_port: int = 0,
        startup_dir: str | os.PathLike | None = None,
        functions: Iterable[str] = FUNCTION_NAMES,
        name_prefix: str = "qs_default",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.redis_address = redis_address
        self.control_addr = f"tcp://127.0.0.1:{control_port or free_port()}"
        self.info_addr = f"tcp://127.0.0.1:{info_port or free_port()}"
        self.startup_dir = None if startup_dir is None else Path(startup_dir)
        self.functions = tuple(functions)
        self.name_prefix = name_prefix
        self.env = dict(env or {})
        self.log_path = self.directory / "re-manager.log"
        self.proc: subprocess.Popen | None = None
        self.pgid: int | None = None  # the manager's process group: its pid, kept after stop
        self.api: Any = None

    def command(self) -> list[str]:
        """The ``start-re-manager`` command line: loopback only, pure-Python worker."""
        startup = (
            [f"--startup-dir={self.startup_dir}"]
            if self.startup_dir is not None
            else [f"--startup-module={PROFILE_MODULE}"]
        )
        return [
            _script("start-re-manager"),
            f"--zmq-control-addr={self.control_addr}",
            f"--zmq-info-addr={self.info_addr}",
            f"--redis-addr={self.redis_address}",
            f"--redis-name-prefix={self.name_prefix}",
            *startup,
            f"--existing-plans-devices={self.directory / 'existing_plans_and_devices.yaml'}",
            "--update-existing-plans-devices=ENVIRONMENT_OPEN",
            f"--user-group-permissions={self.directory / 'user_group_permissions.yaml'}",
            "--use-ipython-kernel=OFF",
            "--zmq-publish-console=ON",  # qserver-console-monitor shows the worker's output
            "--console-output=ON",
        ]

    def start(self, timeout: float = 30.0) -> QueueManager:
        """Start the manager and wait (at most ``timeout`` s) until it answers ``status``."""
        from bluesky_queueserver_api.zmq import REManagerAPI

        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "user_group_permissions.yaml").write_text(
            permissions_yaml(self.functions)
        )
        env = dict(
            os.environ,
            MPLBACKEND="Agg",
            IPYTHONDIR=str(self.directory / "ipython"),
            EPICS_CA_ADDR_LIST="127.0.0.1",  # ophyd's Channel Access searches loopback only
            EPICS_CA_AUTO_ADDR_LIST="NO",
            **self.env,
        )
        env.pop("QSERVER_CONFIG", None)  # our command line is the whole configuration
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
        log.info("start-re-manager pid %d at %s", self.proc.pid, self.control_addr)
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
                code = self.proc.returncode
                self.stop()
                raise QueueError(f"start-re-manager exited with {code}:\n{self.log()}")
            try:
                self.api.status(reload=True)
                return self
            except Exception as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise QueueError(f"RE Manager not answering: {exc}\n{self.log()}") from exc
                time.sleep(0.1)

    def open_environment(self, timeout: float = 120.0) -> None:
        """Open the worker's environment (the profile runs, the IOCs start) and wait for it."""
        answer = self.api.environment_open()
        if not answer["success"]:
            raise QueueError(f"environment_open refused: {answer['msg']}")
        try:
            self.api.wait_for_idle(timeout=timeout)
        except Exception as exc:
            raise QueueError(f"the environment did not open: {exc}\n{self.log()}") from exc
        if not self.api.status(reload=True)["worker_environment_exists"]:
            raise QueueError(f"the environment did not open (the profile failed):\n{self.log()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[int]:
        """The manager's live processes (the watchdog, the manager, the worker if any)."""
        return [] if self.pgid is None else group_members(self.pgid)

    def stop(self, timeout: float = 15.0) -> list[int]:
        """Stop the manager (``manager_stop``, then SIGKILL to its group); return the PIDs
        that were still alive after the polite stop and had to be killed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        if self.api is not None and proc.poll() is None:
            try:
                self.api.send_request(method="manager_stop", params={"option": "safe_off"})
            except Exception as exc:
                log.warning("manager_stop refused: %s", exc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("start-re-manager still running after %s s", timeout)
        left = group_members(proc.pid)
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

    def __enter__(self) -> QueueManager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<QueueManager {self.control_addr} {'running' if self.alive else 'stopped'}>"
