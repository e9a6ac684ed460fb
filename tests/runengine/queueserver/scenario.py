"""The steps of the queueserver scenario, each returning what a client can observe of it.

Every step drives one RE Manager (a :class:`QueueServer`) through its 0MQ API and returns an
outcome made only of engine-independent values (states, exit statuses, counts, scan ids,
messages; never uids or times), so that the outcome of a manager whose ``RE`` is bluesky's
RunEngine and of one whose ``RE`` is ours can be compared with ``==``. Every wait is bounded
(:data:`WAIT`).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from bluesky_queueserver_api import BFunc, BPlan
from bluesky_queueserver_api.api_base import WaitTimeoutError

from tests.runengine.queueserver.manager import QueueServer

log = logging.getLogger(__name__)

WAIT = 20.0  #: s, the bound of any single wait for the manager
SLOW_NUM, SLOW_DELAY = 10, 0.2  #: the slow count that pauses land in: ~2 s of readings

#: The status fields a step records after each action.
STATUS_FIELDS = (
    "manager_state",
    "re_state",
    "worker_environment_exists",
    "worker_environment_state",
    "items_in_queue",
    "items_in_history",
)

UID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

QUEUE = [
    BPlan("count", ["det1", "det2"], num=3),
    BPlan("scan", ["det1", "det2"], "motor", -1, 1, 5),
    BPlan("rel_scan", ["det1"], "motor", -1, 1, 3),
    BPlan("grid_scan", ["det1"], "motor1", -1, 1, 3, "motor2", -1, 1, 2),
]
#: Events per run of QUEUE, in order: what a client expects to have been recorded.
QUEUE_EVENTS = [3, 5, 3, 6]

#: Items the manager must refuse when they are added: (what is wrong, the item).
REFUSED = [
    ("unknown plan", BPlan("no_such_plan", ["det1"])),
    ("unknown keyword", BPlan("count", ["det1"], no_such_keyword=1)),
    ("too many arguments", BPlan("count", ["det1"], 1, 2, 3, 4)),
]
#: Items the manager accepts but whose plans raise once the engine runs them. (A name that is
#: not a device passes validation: ``count`` does not annotate ``detectors``.)
FAILING = [
    ("unknown device", BPlan("count", ["no_such_detector"])),
    ("no number of points", BPlan("scan", ["det1"], "motor", -1, 1)),
]


# ---- small helpers ------------------------------------------------------------------------
def snapshot(api: Any) -> dict:
    """The recorded fields of the manager's status, read fresh."""
    status = api.status(reload=True)
    return {key: status[key] for key in STATUS_FIELDS}


def answer(response: dict) -> dict:
    """What a response says: success, and the message if refused."""
    return {"success": response["success"], "msg": "" if response["success"] else response["msg"]}


def wait_for(api: Any, condition, what: str, timeout: float = WAIT) -> None:
    """Wait (bounded) until ``condition(status)``; fail naming ``what`` and the last status."""
    try:
        api.wait_for_condition(condition, timeout=timeout)
    except WaitTimeoutError as exc:
        raise AssertionError(f"not {what} within {timeout} s: {snapshot(api)}") from exc


def wait_idle(api: Any, what: str = "idle") -> None:
    wait_for(api, lambda s: s["manager_state"] == "idle", what)


def wait_env(api: Any, exists: bool) -> None:
    wait_for(
        api,
        lambda s: s["manager_state"] == "idle" and s["worker_environment_exists"] is exists,
        f"idle with environment_exists={exists}",
    )


def recorded_runs(api: Any) -> list[dict]:
    """The runs the profile's recorder saw closed since the last call (a background task)."""
    reply = api.function_execute(BFunc("recorded_runs"), run_in_background=True)
    assert reply["success"], reply
    api.wait_for_completed_task(reply["task_uid"], timeout=WAIT)
    result = api.task_result(reply["task_uid"])["result"]
    assert result["success"], result
    return result["return_value"]


def run_summary(run: dict, partial: bool = False) -> dict:
    """One recorded run, engine-independent: its exit status, its number of events (for a
    ``partial`` run only whether some but fewer than planned were taken: how far an interrupted
    run got depends on when the pause landed, not on the engine), and whether its stop
    document and sequence numbers agree with its events."""
    events = sum(run["events"].values())
    return {
        "exit_status": run["exit_status"],
        "events": 0 < events < SLOW_NUM if partial else events,
        "stop_counts_events": run["num_events"] == run["events"],
        "seq_nums_contiguous": run["seq_nums_contiguous"],
    }


def history_result(item: dict) -> dict:
    """A history item's result without uids and times: exit status, run count, scan ids."""
    result = item["result"]
    assert all(UID.match(uid) for uid in result["run_uids"]), result
    return {
        "name": item["name"],
        "exit_status": result["exit_status"],
        "runs": len(result["run_uids"]),
        "scan_ids": result["scan_ids"],
        "msg": result["msg"],
        "has_traceback": bool(result["traceback"]),
    }


def last_history_item(api: Any) -> dict:
    return api.history_get(reload=True)["items"][-1]


# ---- the steps ----------------------------------------------------------------------------
def open_environment(server: QueueServer) -> dict:
    """environment_open; the plans and devices the manager found; RE's metadata keys."""
    api = server.api
    reply = api.environment_open()
    wait_env(api, True)
    metadata = api.send_request(method="re_metadata")
    return {
        "open": answer(reply),
        "status": snapshot(api),
        "plans": sorted(api.plans_existing(reload=True)["plans_existing"]),
        "devices": sorted(api.devices_existing(reload=True)["devices_existing"]),
        "re_metadata": {"success": metadata["success"], "keys": sorted(metadata["re_metadata"])},
        "recorded_runs": recorded_runs(api),
    }


def run_queue(server: QueueServer) -> dict:
    """Queue count, scan, rel_scan and grid_scan; start; wait; read the history."""
    api = server.api
    added = [answer(api.item_add(item)) for item in QUEUE]
    before = snapshot(api)
    started = answer(api.queue_start())
    wait_for(api, lambda s: s["items_in_queue"] == 0 and s["manager_state"] == "idle", "done")
    items = api.history_get(reload=True)["items"][-len(QUEUE) :]
    uids = [uid for item in items for uid in item["result"]["run_uids"]]
    runs = recorded_runs(api)
    return {
        "added": added,
        "before": before,
        "start": started,
        "after": snapshot(api),
        "history": [history_result(item) for item in items],
        "distinct_run_uids": len(set(uids)),
        "runs": [run_summary(run) for run in runs],
        "events_as_planned": [sum(run["events"].values()) for run in runs] == QUEUE_EVENTS,
    }


def pause_then(server: QueueServer, pause: str, then: str) -> dict:
    """A slow count, paused (``deferred`` or ``immediate``) once its run is open, then
    ``then`` (``resume``, ``stop``, ``abort`` or ``halt``); what each step left.

    Also asks to pause and to continue when nothing runs: both must be refused.
    """
    api = server.api
    refused_idle = {
        "pause_when_idle": answer(api.re_pause(pause)),
        f"{then}_when_idle": answer(getattr(api, f"re_{then}")()),
    }
    answer(api.item_add(BPlan("count", ["det1", "det2"], num=SLOW_NUM, delay=SLOW_DELAY)))
    started = answer(api.queue_start())
    wait_for(api, lambda s: s["re_state"] == "running", "running")
    open_runs: list = []
    deadline = time.monotonic() + WAIT
    while not open_runs and time.monotonic() < deadline:
        open_runs = api.re_runs("open", reload=True)["run_list"]
        time.sleep(0.02)
    paused = answer(api.re_pause(pause))
    wait_for(api, lambda s: s["manager_state"] in ("paused", "idle"), "paused")
    at_pause = snapshot(api)
    active = api.re_runs("active", reload=True)["run_list"]
    continued = answer(getattr(api, f"re_{then}")())
    wait_idle(api, f"idle after {then}")
    after = snapshot(api)
    item = last_history_item(api)
    runs = recorded_runs(api)
    queue_left = api.queue_get(reload=True)["items"]
    api.queue_clear()
    return {
        **refused_idle,
        "start": started,
        "run_open_before_pause": len(open_runs),
        "pause": paused,
        "at_pause": at_pause,
        "active_runs_at_pause": [(run["is_open"], run["exit_status"]) for run in active],
        "paused_run_is_history_run": [run["uid"] for run in active] == item["result"]["run_uids"],
        then: continued,
        "after": after,
        "history": history_result(item),
        "runs": [run_summary(run, partial=then != "resume") for run in runs],
        "queue_left": [queued["name"] for queued in queue_left],
    }


def invalid_plans(server: QueueServer) -> dict:
    """Items refused when added (nothing queued), and plans that raise once running: each
    fails alone (a failure stops the queue and leaves its item at the front)."""
    api = server.api
    before = snapshot(api)
    refused = {what: answer(api.item_add(item)) for what, item in REFUSED}
    outcome: dict[str, Any] = {"refused": refused, "after_refused": snapshot(api)}
    in_history = before["items_in_history"]
    for what, item in FAILING:
        accepted = answer(api.item_add(item))
        started = answer(api.queue_start())
        in_history += 1
        wait_for(
            api,
            lambda s, n=in_history: s["manager_state"] == "idle" and s["items_in_history"] == n,
            f"the failing plan ({what}) done",
        )
        outcome[what] = {
            "add": accepted,
            "start": started,
            "history": history_result(last_history_item(api)),
            "after": snapshot(api),
            "queue_left": [queued["name"] for queued in api.queue_get(reload=True)["items"]],
        }
        api.queue_clear()
    outcome["runs"] = [run_summary(run) for run in recorded_runs(api)]
    return outcome


def environment_lifecycle(server: QueueServer) -> dict:
    """environment_close, environment_open (and a count in it), environment_destroy.

    The manager's live processes are counted too: the worker is one of them while an
    environment exists.
    """
    api = server.api
    processes = server.processes
    outcome: dict[str, Any] = {"with_env": len(processes())}
    outcome["close"] = answer(api.environment_close())
    wait_env(api, False)
    outcome["closed"] = snapshot(api)
    outcome["closed_processes"] = _settled_count(processes, outcome["with_env"] - 1)
    outcome["reopen"] = answer(api.environment_open())
    wait_env(api, True)
    outcome["reopened"] = snapshot(api)
    outcome["reopened_processes"] = len(processes())
    outcome["add"] = answer(api.item_add(BPlan("count", ["det1"], num=2)))
    outcome["start"] = answer(api.queue_start())
    wait_for(api, lambda s: s["manager_state"] == "idle" and s["items_in_queue"] == 0, "done")
    outcome["history"] = history_result(last_history_item(api))
    outcome["runs"] = [run_summary(run) for run in recorded_runs(api)]
    outcome["destroy"] = answer(api.environment_destroy())
    wait_env(api, False)
    outcome["destroyed"] = snapshot(api)
    outcome["destroyed_processes"] = _settled_count(processes, outcome["with_env"] - 1)
    outcome["close_when_closed"] = answer(api.environment_close())
    return outcome


def _settled_count(processes, expected: int, timeout: float = 5.0) -> int:
    """How many processes are left once the count reaches ``expected`` (or the bound ends)."""
    deadline = time.monotonic() + timeout
    while len(processes()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(processes())
