"""bluesky-queueserver round trips, bluesky's RunEngine and ours side by side.

    .venv/bin/python bench/bench_queueserver.py [--rounds 20]

Starts one redis-server and two RE Managers on loopback, whose profiles are the same but for
``RE``'s class (``ophyd.sim`` devices), and measures, interleaving the two each round:

- **item -> first event**: from the client's ``item_add`` (then ``queue_start``) to the first
  event document emitted in the worker (``count([det])``);
- **pause -> paused**: from the client's ``re_pause("immediate")`` to the engine's state hook
  saying ``paused`` (in the worker), and to the manager's status saying ``paused`` (what a
  client polling at 5 ms sees);
- **resume -> next new point**: from ``re_resume`` to the first event of a point not recorded
  before the pause. (bluesky's RunEngine re-emits the point the pause interrupted, under the
  same ``seq_num``: a duplicate, which is not counted as the next point; ours does not.)

Times are ``time.time()`` in both processes (one machine, one clock). Medians and quartiles.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

PROFILE = '''\
"""Profile of bench_queueserver ({engine})."""
import time

{engine_import}
from bluesky.plans import count  # noqa: F401
from ophyd.sim import det  # noqa: F401

RE = RunEngine({{}})
_marks = []


def _on_state(new, old):
    _marks.append(("state", str(new), time.time()))


def _on_doc(name, doc):
    if name == "event":
        _marks.append(("event", doc["seq_num"], time.time()))


RE.state_hook = _on_state
RE.subscribe(_on_doc)


def marks():
    """What happened since the last call: (kind, what, time.time())."""
    found = list(_marks)
    _marks.clear()
    return found
'''

ENGINES = {
    "bluesky": "from bluesky import RunEngine",
    "ours": "from runengine import RunEngine",
}


def start(directory: Path, redis_address: str):
    from runengine.cli.queue.manager import QueueManager

    managers = {}
    for engine, line in ENGINES.items():
        startup = directory / engine / "startup"
        startup.mkdir(parents=True)
        (startup / "00-profile.py").write_text(PROFILE.format(engine=engine, engine_import=line))
        managers[engine] = QueueManager(
            directory / engine, redis_address, startup_dir=startup, functions=("marks",),
            name_prefix=f"bench_{engine}",
        ).start()  # fmt: skip
    for manager in managers.values():
        manager.open_environment()
    return managers


def marks(api) -> list:
    from bluesky_queueserver_api import BFunc

    task = api.function_execute(BFunc("marks"), run_in_background=True)
    api.wait_for_completed_task(task["task_uid"], timeout=30)
    return api.task_result(task["task_uid"])["result"]["return_value"]


def first(found: list, kind: str, what=None, after: float = 0.0) -> float:
    for k, w, t in found:
        if k == kind and (what is None or w == what) and t >= after:
            return t
    raise AssertionError(f"no {kind} {what or ''} in {found}")


def wait_status(api, key: str, value: str, period: float = 0.005, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while api.status(reload=True)[key] != value:
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} never {value}: {api.status(reload=True)}")
        time.sleep(period)
    return time.time()


def one_round(api) -> dict:
    from bluesky_queueserver_api import BPlan

    marks(api)  # forget the past
    t0 = time.time()
    api.item_add(BPlan("count", ["det"], num=1))
    api.queue_start()
    api.wait_for_idle(timeout=30)
    item_to_event = first(marks(api), "event") - t0

    api.item_add(BPlan("count", ["det"], num=400, delay=0.01))
    api.queue_start()
    wait_status(api, "re_state", "running")
    time.sleep(0.1)
    marks(api)
    t0 = time.time()
    api.re_pause(option="immediate")
    seen = wait_status(api, "manager_state", "paused")
    found = marks(api)
    paused_engine = first(found, "state", "paused", after=t0) - t0
    recorded = max(w for k, w, _ in found if k == "event")
    t1 = time.time()
    api.re_resume()
    wait_status(api, "re_state", "running")
    time.sleep(0.1)
    after = marks(api)
    duplicates = sum(1 for k, w, _ in after if k == "event" and w <= recorded)
    resumed = min(t for k, w, t in after if k == "event" and w > recorded) - t1
    api.re_pause(option="immediate")
    wait_status(api, "manager_state", "paused")
    api.re_stop()
    api.wait_for_idle(timeout=30)
    return {
        "item -> first event": item_to_event,
        "pause -> engine paused": paused_engine,
        "pause -> manager paused": seen - t0,
        "resume -> next new point": resumed,
        "points re-emitted": duplicates,
    }


def summary(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{q[1] * 1e3:7.1f} ms  ({q[0] * 1e3:.1f}-{q[2] * 1e3:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    from runengine.scaleout.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        managers = start(Path(tmp), redis.address)
        try:
            results: dict[str, dict[str, list[float]]] = {e: {} for e in managers}
            for _ in range(args.rounds):
                for engine, manager in managers.items():
                    for key, value in one_round(manager.api).items():
                        results[engine].setdefault(key, []).append(value)
        finally:
            for manager in managers.values():
                manager.stop()
            redis.stop()
    print(f"bluesky-queueserver round trips, {args.rounds} rounds, median (quartiles)")
    print(f"{'':26}{'bluesky':>28}{'ours':>28}   bluesky/ours")
    for key in results["ours"]:
        theirs, ours = results["bluesky"][key], results["ours"][key]
        if key == "points re-emitted":
            print(f"{key:26}{sum(theirs):>28}{sum(ours):>28}   (in all rounds)")
            continue
        ratio = statistics.median(theirs) / statistics.median(ours)
        print(f"{key:26}{summary(theirs):>28}{summary(ours):>28}   x{ratio:.2f}")


if __name__ == "__main__":
    main()
