"""bluesky-httpserver (:class:`runengine.cli.queue.http.HTTPFront`) before a real RE Manager.

One redis-server, one RE Manager (ophyd.sim devices, to be quick) and one HTTP server, all on
127.0.0.1, for the module; stopped by PID at its end, where nothing may have needed a SIGKILL
and no process of either group may be left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from runengine.scaleout.redis_server import RedisServer
from runengine.scripts.process import group_members
from tests.cli.queue.stack import skip_without_the_stack

pytestmark = [pytest.mark.queueserver, pytest.mark.redis]

skip_without_the_stack()

from bluesky_queueserver_api import BFunc, BPlan  # noqa: E402
from bluesky_queueserver_api.http import REManagerAPI  # noqa: E402

from runengine.cli.errors import CLIError  # noqa: E402
from runengine.cli.queue.http import API_KEY_ENV, HTTPFront, api_key  # noqa: E402
from runengine.cli.queue.manager import QueueManager  # noqa: E402

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """redis-server, an RE Manager with its environment open, and the HTTP front to it."""
    tmp = tmp_path_factory.mktemp("queue-http")
    redis = RedisServer(tmp / "redis").start()
    manager = QueueManager(
        tmp / "manager",
        redis.address,
        env={"RUNENGINE_STORE": str(tmp / "store"), "RUNENGINE_QUEUE_DEVICES": "sim"},
    )
    front = front_pgid = None
    try:
        manager.start()
        manager.open_environment()
        key, _ = api_key(tmp / "api_key")
        front = HTTPFront(tmp / "http", manager, api_key=key).start()
        assert front.uri.startswith("http://127.0.0.1:")
        front_pgid = front.proc.pid
        assert group_members(front_pgid), "the HTTP server runs in a process group of its own"
        assert len(manager.processes()) >= 2, "watchdog, manager and worker"
        yield SimpleNamespace(tmp=tmp, redis=redis, manager=manager, front=front, key=key)
    finally:
        try:
            if front is not None:
                assert front.stop() == [], "the HTTP server had to be killed"
                assert group_members(front_pgid) == []
        finally:
            try:
                manager_pgid = manager.pgid
                assert manager.stop() == [], "the RE Manager had to be killed"
                if manager_pgid is not None:
                    assert group_members(manager_pgid) == []
                assert manager.processes() == []
            finally:
                redis.stop()


@pytest.fixture
def api(stack):
    """An HTTP client with the right key."""
    client = REManagerAPI(http_server_uri=stack.front.uri, http_auth_provider=None)
    client.set_authorization_key(api_key=stack.key)
    yield client
    client.close()


def http_code(uri: str, key: str | None) -> int:
    request = urllib.request.Request(f"{uri}/api/status")
    if key is not None:
        request.add_header("Authorization", f"ApiKey {key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def execute(api, name: str, background: bool, **kwargs):
    """Run a profile function through ``api``; the task's result."""
    answer = api.function_execute(BFunc(name, **kwargs), run_in_background=background)
    assert answer["success"], answer
    api.wait_for_completed_task(answer["task_uid"], timeout=20)
    return api.task_result(answer["task_uid"])["result"]


def test_status_needs_the_key(stack):
    status = stack.front.status(stack.key)
    assert status is not None
    assert status["manager_state"] == "idle"
    assert status["worker_environment_exists"] is True
    assert stack.front.status("0" * 64) is None
    assert stack.front.status(stack.key[:-1]) is None
    assert stack.front.status(None) is None
    assert http_code(stack.front.uri, stack.key) == 200
    assert http_code(stack.front.uri, "0" * 64) == 401
    assert http_code(stack.front.uri, None) == 401


def test_plan_through_http(stack, api):
    assert api.queue_clear()["success"]
    assert api.history_clear()["success"]
    added = api.item_add(BPlan("count", ["det"], num=3))
    assert added["success"], added
    assert api.queue_start()["success"]
    api.wait_for_idle(timeout=60)

    history = api.history_get()["items"]
    assert len(history) == 1
    result = history[0]["result"]
    assert history[0]["item_uid"] == added["item"]["item_uid"]
    assert result["exit_status"] == "completed", result
    assert len(result["run_uids"]) == 1
    (run_uid,) = result["run_uids"]
    assert api.queue_get()["items"] == []

    runs = execute(api, "stored_runs", background=False)
    assert runs["success"], runs["traceback"]
    stored = {run["uid"]: run for run in runs["return_value"]}
    assert run_uid in stored
    assert stored[run_uid]["exit_status"] == "success"
    assert stored[run_uid]["plan_name"] == "count"
    assert stored[run_uid]["num_events"] == {"primary": 3}

    status = execute(api, "engine_status", background=True)
    assert status["success"], status["traceback"]
    assert status["return_value"]["state"] == "idle"
    assert status["return_value"]["holds"] == {}


def test_stored_runs_in_the_background(stack, api):
    """functions.py says to run the functions with run_in_background=True: another thread
    than the one that opened the profile's catalog (and its SQLite index)."""
    runs = execute(api, "stored_runs", background=True)
    assert runs["success"], runs["msg"]
    assert [run["exit_status"] for run in runs["return_value"]][-1:] == ["success"]


def test_wrong_key_is_refused(stack, api):
    before = api.queue_get()
    wrong = REManagerAPI(http_server_uri=stack.front.uri, http_auth_provider=None)
    wrong.set_authorization_key(api_key="0" * 64)
    try:
        with pytest.raises(wrong.HTTPClientError) as refused:
            wrong.item_add(BPlan("count", ["det"], num=1))
        assert refused.value.response.status_code == 401
    finally:
        wrong.close()
    after = api.queue_get()
    assert after["items"] == before["items"]
    assert after["plan_queue_uid"] == before["plan_queue_uid"]


def test_log_file_is_private(stack):
    log = stack.front.log_path
    assert log.is_file()
    assert log.stat().st_mode & 0o777 == 0o600
    assert stack.key in log.read_text(errors="replace"), "the log holds the key: hence 0600"
    assert stack.key not in stack.front.log(lines=10_000)


def test_api_key_file(tmp_path, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    path = tmp_path / "sub" / "api_key"
    key, where = api_key(path)
    assert where == str(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == key
    assert len(key) >= 32 and int(key, 16) >= 0
    assert api_key(path) == (key, str(path))
    other, _ = api_key(tmp_path / "other")
    assert other != key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_api_key_file_readable_by_others(tmp_path, monkeypatch, mode):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    path = tmp_path / "api_key"
    api_key(path)
    path.chmod(mode)
    with pytest.raises(CLIError, match="readable by others") as refused:
        api_key(path)
    assert str(path) in str(refused.value)


def test_api_key_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "api_key"
    monkeypatch.setenv(API_KEY_ENV, "from-the-environment")
    assert api_key(path) == ("from-the-environment", f"${API_KEY_ENV}")
    assert not path.exists()
    path.write_text("from-the-file")
    path.chmod(0o600)
    assert api_key(path)[0] == "from-the-environment"


@pytest.mark.parametrize("module", ["runengine.cli.queue.manager", "runengine.cli.queue.http"])
def test_launcher_modules_import_on_their_own(module):
    """No import cycle through runengine.cli.main (the command registers itself there)."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
