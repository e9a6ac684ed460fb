"""bluesky-queueserver over runengine and the simulated beamline, end to end.

One real redis-server, one real RE Manager whose worker imports our startup module (the
caproto IOCs start with the environment) and our store, all on 127.0.0.1. Each test queues a
scan over the IOCs and interrupts it as an operator would, through queueserver's 0MQ API
(``re_pause``, ``re_resume``, ``re_stop``, ``function_execute``), through a beam loss the
profile's suspender sees, or through the profile's pause files; then it checks that the
manager's history and the stored run agree: the run's uid, its exit status, every planned
point stored exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from bluesky_queueserver_api import BFunc, BPlan

from runengine.callbacks.catalog import Catalog
from runengine.cli.queue.manager import QueueManager
from runengine.scaleout.redis_server import REDIS_SERVER, RedisServer
from runengine.scripts.process import group_members
from tests.devices.procs import is_running

pytest.importorskip("bluesky_queueserver")
pytestmark = [pytest.mark.queueserver, pytest.mark.redis, pytest.mark.integration]

WAIT = 60.0
POINTS = 100  # about 35 ms each over the IOCs: 3.5 s in which to interrupt the scan
SCAN = BPlan("scan", ["det"], "m1", -1, 1, POINTS)


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make system-deps installs it)")
    work = tmp_path_factory.mktemp("queue")
    store = work / "store"
    redis = RedisServer(work / "redis").start()
    manager = QueueManager(
        work / "manager",
        redis.address,
        env={"RUNENGINE_STORE": str(store), "RUNENGINE_QUEUE_DIR": str(work / "files")},
    )
    try:
        manager.start()
        manager.open_environment()
        manager.store, manager.files = store, work / "files"
        manager.iocs = call(manager, "beamline_info")
        yield manager
    finally:
        iocs = getattr(manager, "iocs", {})
        pgid = manager.pgid
        left = manager.stop()
        redis.stop()
    assert left == [], f"processes of the manager had to be killed: {left}"
    assert pgid is None or group_members(pgid) == []
    deadline = time.monotonic() + 10  # the IOCs end with the worker (parent-death signal)
    while any(is_running(i["pid"]) for i in iocs.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [n for n, i in iocs.items() if is_running(i["pid"])], "IOCs outlived the worker"


def call(manager: QueueManager, name: str, *args, **kwargs):
    """Run a profile function through ``function_execute`` in the background; its result."""
    answer = manager.api.function_execute(BFunc(name, *args, **kwargs), run_in_background=True)
    assert answer["success"], answer["msg"]
    manager.api.wait_for_completed_task(answer["task_uid"], timeout=WAIT)
    result = manager.api.task_result(answer["task_uid"])["result"]
    assert result["success"], result["msg"]
    return result["return_value"]


def status(manager: QueueManager) -> dict:
    return manager.api.status(reload=True)


def wait_until(manager: QueueManager, what: str, condition, timeout: float = WAIT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        now = status(manager)
        if condition(now):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout} s: {now}\n{manager.log(30)}")
        time.sleep(0.05)


def suspended(manager: QueueManager, timeout: float = WAIT) -> None:
    """Wait until a suspension holds the plan (the engine's state is "running" meanwhile)."""
    deadline = time.monotonic() + timeout
    while not (now := call(manager, "engine_status"))["suspended"]:
        assert time.monotonic() < deadline, f"not suspended after {timeout} s: {now}"
        time.sleep(0.05)


def start_scan(manager: QueueManager) -> int:
    """Queue the scan, start the queue, wait until its run has begun; the history's length."""
    before = status(manager)["items_in_history"]
    assert manager.api.item_add(SCAN)["success"]
    assert manager.api.queue_start()["success"]
    wait_until(manager, "running", lambda s: s["re_state"] == "running")
    time.sleep(0.3)  # a few points in
    return before


def finished(manager: QueueManager, before: int) -> dict:
    """Wait until the item is in the history; its result."""
    wait_until(
        manager,
        "done",
        lambda s: s["items_in_history"] == before + 1 and s["manager_state"] == "idle",
    )
    return manager.api.history_get()["items"][-1]["result"]


def stored(manager: QueueManager, uid: str) -> tuple[str, np.ndarray]:
    """The stored run's exit status and its m1 positions."""
    run = Catalog(manager.store)[uid]
    return run.metadata["stop"]["exit_status"], np.asarray(run.primary.read()["m1"])


def assert_every_point_once(manager: QueueManager, result: dict) -> None:
    assert result["exit_status"] == "completed", result
    (uid,) = result["run_uids"]
    exit_status, m1 = stored(manager, uid)
    assert exit_status == "success"
    assert len(m1) == POINTS
    np.testing.assert_allclose(m1, np.linspace(-1, 1, POINTS), atol=1e-3)


def test_pause_and_resume_from_the_api(queue):
    before = start_scan(queue)
    assert queue.api.re_pause(option="deferred")["success"]
    wait_until(queue, "paused", lambda s: s["manager_state"] == "paused")
    assert queue.api.re_resume()["success"]
    assert_every_point_once(queue, finished(queue, before))


def test_a_hold_keeps_the_item_paused_until_released(queue):
    before = start_scan(queue)
    assert call(queue, "hold", "alignment", reason="realigning")["holds"] == {
        "alignment": "realigning"
    }
    wait_until(queue, "paused", lambda s: s["manager_state"] == "paused")
    assert queue.api.re_resume()["success"]  # accepted by the manager, refused by the engine
    time.sleep(0.5)
    now = wait_until(queue, "paused again", lambda s: s["manager_state"] == "paused")
    assert now["items_in_history"] == before and now["re_state"] == "paused"
    assert call(queue, "engine_status")["pause_requests"] == ["alignment"]
    call(queue, "release", "alignment")
    assert queue.api.re_resume()["success"]
    assert_every_point_once(queue, finished(queue, before))


def test_a_beam_loss_suspends_and_the_return_of_the_beam_resumes(queue):
    from runengine.devices import faults
    from runengine.devices.epics_env import use_loopback_client

    beam = queue.iocs["beam"]
    use_loopback_client(beam["port"])
    before = start_scan(queue)
    with faults.drop_beam(beam["prefix"]):
        suspended(queue)
        time.sleep(0.5)
        assert status(queue)["items_in_history"] == before  # held, not ended
    assert_every_point_once(queue, finished(queue, before))


def test_pause_files_pause_and_suspend(queue):
    pause, hold = Path(queue.files) / "PAUSE", Path(queue.files) / "HOLD"
    before = start_scan(queue)
    pause.touch()
    wait_until(queue, "paused", lambda s: s["manager_state"] == "paused")
    queue.api.re_resume()  # refused while the file is there
    time.sleep(0.5)
    assert wait_until(queue, "paused", lambda s: s["manager_state"] == "paused")
    pause.unlink()
    assert queue.api.re_resume()["success"]
    wait_until(queue, "running", lambda s: s["re_state"] == "running")
    hold.touch()
    suspended(queue)
    hold.unlink()  # the suspender resumes by itself
    assert_every_point_once(queue, finished(queue, before))


def test_stop_ends_the_item_as_stopped_and_the_run_as_success(queue):
    before = start_scan(queue)
    assert queue.api.re_pause(option="immediate")["success"]
    wait_until(queue, "paused", lambda s: s["manager_state"] == "paused")
    assert queue.api.re_stop()["success"]
    result = finished(queue, before)
    assert result["exit_status"] == "stopped"
    exit_status, m1 = stored(queue, result["run_uids"][0])
    assert exit_status == "success" and 0 < len(m1) < POINTS
    assert len(set(np.round(m1, 6))) == len(m1)  # no point twice
    assert status(queue)["items_in_queue"] == 0  # a stop is a success: not pushed back


def test_panic_fails_the_item_and_all_is_well_lets_the_queue_go_on(queue):
    before = start_scan(queue)
    assert call(queue, "panic")["state"] == "panicked"
    result = finished(queue, before)
    assert result["exit_status"] == "failed"
    assert stored(queue, result["run_uids"][0])[0] == "abort"
    assert status(queue)["items_in_queue"] == 1  # pushed back to the front; the queue stopped
    assert queue.api.queue_clear()["success"]
    assert call(queue, "all_is_well")["state"] == "idle"
    before = status(queue)["items_in_history"]
    assert queue.api.item_add(BPlan("count", ["det"], num=3))["success"]
    assert queue.api.queue_start()["success"]
    assert finished(queue, before)["exit_status"] == "completed"
