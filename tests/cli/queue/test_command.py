"""``runengine queue`` as a real subprocess, driven by the real ``qserver`` CLI.

The command runs for the module (ophyd.sim devices, free ports, HTTP too) in a session of its
own; the last test stops it with SIGINT and checks that everything it started is gone. Should
a test fail half-way, the fixture ends whatever is left, by process group.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from runengine.scripts.process import group_members
from tests.cli.queue.stack import skip_without_the_stack

pytestmark = [pytest.mark.queueserver, pytest.mark.redis]

skip_without_the_stack()

from bluesky_queueserver_api.zmq import REManagerAPI  # noqa: E402

from runengine.callbacks.catalog import Catalog  # noqa: E402

QSERVER = str(Path(sys.executable).with_name("qserver"))
READY = "Ctrl+C stops it all."
START_TIMEOUT, STOP_TIMEOUT = 120.0, 60.0
CONTROL_LINE = re.compile(
    r"^  0MQ control (tcp://127\.0\.0\.1:\d+)   info (tcp://127\.0\.0\.1:\d+)$"
)
HTTP_LINE = re.compile(r"^  HTTP (http://127\.0\.0\.1:\d+)/api   API key: (.+)$")
SERVE_ARGS = ("--devices", "sim", "--control-port", "0", "--info-port", "0", "--http-port", "0")
API_KEY_ENV = "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY"


def command_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in (API_KEY_ENV, "RUNENGINE_STORE", "QSERVER_ZMQ_CONTROL_ADDRESS"):
        env.pop(name, None)
    return env


def queue_command(store: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "runengine.cli.main", "queue", "--store", str(store), *more]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """The direct children of ``pid``, from /proc (every thread's list)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return found


def alive(pid: int, what: str) -> bool:
    """``pid`` runs (not a zombie) and is still ``what`` (not a reused PID)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX" and what in cmdline(pid)


def cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def processes_in(directory: Path) -> list[int]:
    """Live processes working in ``directory`` or naming it on their command line (redis-server
    rewrites its command line, but works in its directory)."""
    where = str(directory.resolve())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        mine = (cwd(pid) + "/").startswith(where + "/") or where in cmdline(pid)
        if mine and alive(pid, ""):
            found.append(pid)
    return found


class Served:
    """The running command: its output lines (read by a thread), addresses, children."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            queue_command(store, *SERVE_ARGS),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=command_env(),
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, name="queue-command-reader", daemon=True)
        self.reader.start()
        self.children: dict[int, str] = {}  # pid -> command line, of what the command started

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, text: str, timeout: float) -> list[str]:
        """The lines up to the one containing ``text``, waiting at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"no {text!r} in {timeout} s: {self.transcript()}") from None
            if line is None:
                raise AssertionError(f"the output ended before {text!r}: {self.transcript()}")
            self.output.append(line)
            if text in line:
                return list(self.output)

    def transcript(self) -> str:
        return "\n".join(self.output)

    def find_children(self) -> None:
        self.children = {pid: cmdline(pid) for pid in children(self.proc.pid)}

    def child(self, name: str) -> int:
        found = [pid for pid, line in self.children.items() if name in line]
        assert len(found) == 1, f"{name}: {self.children}"
        return found[0]

    def end(self) -> None:
        """Whatever is left: SIGKILL the command's group and each child's (own session), those
        groups only that still hold a process of the store (not a reused group id)."""
        ours = set(processes_in(self.store))
        for pgid in [self.proc.pid, *self.children]:
            if ours & set(group_members(pgid)):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = tmp_path_factory.mktemp("queue-command") / "store"
    running = Served(store)
    try:
        running.read_until(READY, START_TIMEOUT)
        controls = [m for line in running.output if (m := CONTROL_LINE.match(line))]
        https = [m for line in running.output if (m := HTTP_LINE.match(line))]
        assert len(controls) == 1 and len(https) == 1, running.transcript()
        running.control, running.info = controls[0].groups()
        running.http, running.key_where = https[0].groups()
        running.find_children()
        yield running
    finally:
        running.end()


def qserver(served: Served, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [QSERVER, "-a", served.control, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=command_env(),
    )


def test_ready_output(served):
    assert served.control != served.info
    assert not served.control.endswith(":0") and not served.info.endswith(":0")
    assert f"  qserver -a {served.control} status" in served.output
    assert "Opening the environment (sim) ..." in served.output
    work = (served.store / "queue").resolve()
    assert f"Queue server ready; its files in {work}" in served.output
    assert served.proc.poll() is None
    # redis-server, start-re-manager and start-bluesky-httpserver, each in a session of its own
    for name in ("redis-server", "start-re-manager", "start-bluesky-httpserver"):
        pid = served.child(name)
        assert os.getpgid(pid) == pid
    assert cwd(served.child("redis-server")) == str(work / "redis")
    assert cwd(served.child("start-re-manager")) == str(work / "manager")
    groups = [served.proc.pid, *served.children]
    assert sorted(processes_in(served.store)) == sorted(
        pid for pgid in groups for pid in group_members(pgid)
    )


def test_qserver_runs_a_plan(served):
    status = qserver(served, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "'worker_environment_exists': True" in status.stdout, status.stdout

    plan = json.dumps({"name": "count", "args": [["det"]], "kwargs": {"num": 2}})
    added = qserver(served, "queue", "add", "plan", plan)
    assert added.returncode == 0, added.stdout + added.stderr
    started = qserver(served, "queue", "start")
    assert started.returncode == 0, started.stdout + started.stderr

    api = REManagerAPI(zmq_control_addr=served.control, timeout_recv=5)
    try:
        deadline = time.monotonic() + 60
        while len(history := api.history_get()["items"]) < 1:
            assert time.monotonic() < deadline, "no history item in 60 s"
            time.sleep(0.2)
        api.wait_for_idle(timeout=60)
        assert api.queue_get()["items"] == []
    finally:
        api.close()
    assert len(history) == 1
    result = history[0]["result"]
    assert history[0]["name"] == "count"
    assert result["exit_status"] == "completed", result
    (run_uid,) = result["run_uids"]

    catalog = Catalog(served.store)
    assert list(catalog) == [run_uid]
    stop = catalog[run_uid].metadata["stop"]
    assert stop["exit_status"] == "success"
    assert stop["num_events"] == {"primary": 2}


def test_http_front(served):
    key_file = Path(served.key_where)
    assert key_file == (served.store / "queue" / "api_key").resolve()
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert key

    def code(key: str | None) -> int:
        request = urllib.request.Request(f"{served.http}/api/status")
        if key is not None:
            request.add_header("Authorization", f"ApiKey {key}")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                assert json.loads(answer.read())["manager_state"] == "idle"
                return answer.status
        except urllib.error.HTTPError as err:
            return err.code

    assert code(key) == 200
    assert code("0" * 64) == 401
    assert code(None) == 401


def test_sigint_stops_everything(served):
    """Last: SIGINT ends the command, which ends all it started."""
    assert served.proc.poll() is None, "the command must still run (tests run in file order)"
    redis_pid = served.child("redis-server")
    assert alive(redis_pid, "redis-server")
    started_groups = list(served.children)
    assert any(group_members(pgid) for pgid in started_groups)

    served.proc.send_signal(signal.SIGINT)
    served.read_until("Stopped.", STOP_TIMEOUT)
    try:
        code = served.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_TIMEOUT} s after SIGINT: {served.transcript()}")
    assert code == 0, served.transcript()
    assert "Stopping (interrupted) ..." in served.output
    assert group_members(served.proc.pid) == []
    for pgid in started_groups:
        assert group_members(pgid) == [], f"left of {served.children[pgid]}"
    assert not alive(redis_pid, "redis-server")
    assert processes_in(served.store) == []


def test_bad_redis_address(tmp_path):
    store = tmp_path / "store"
    done = subprocess.run(
        queue_command(store, "--devices", "none", "--redis", "nonsense"),
        capture_output=True, text=True, timeout=60, env=command_env(),
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--redis" in lines[0] and "nonsense" in lines[0]
    assert "Starting" not in done.stdout
    assert not (store / "queue" / "manager").exists()


def test_control_port_in_use(tmp_path):
    store = tmp_path / "store"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            queue_command(store, "--devices", "none", "--control-port", str(port),
                          "--info-port", "0"),
            capture_output=True, text=True, timeout=60, env=command_env(),
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--control-port" in lines[0] and str(port) in lines[0]
    assert "Starting" not in done.stdout
    # nothing was started: no redis-server (its files would be there) and no RE Manager
    assert not (store / "queue" / "redis").exists()
    assert not (store / "queue" / "manager").exists()
    assert processes_in(store) == []
