"""The document stream: a remote store equal to the local one, through a consumer SIGKILLed."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from tests.runengine.scaleout.conftest import PROJECT_ROOT

pytestmark = pytest.mark.redis


def records(directory):
    from runengine.callbacks.records import RecordReader
    from runengine.callbacks.redis_stream import document_key

    found = []
    for path in sorted(directory.glob("*.msgpack")):
        found += [document_key(name, doc) for name, doc in RecordReader(path)]
    return found


def consumer(url, stream, directory):
    args = [
        sys.executable,
        "-m",
        "tests.runengine.scaleout.workers",
        "consume",
        url,
        stream,
        directory,
    ]
    return subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)


def test_a_consumer_killed_and_restarted_ends_with_every_document_once(redis_url, prefix, tmp_path):
    import bluesky.plans as bp
    from ophyd.sim import det, motor

    from runengine import RunEngine
    from runengine.callbacks.redis_stream import DocumentPublisher
    from runengine.callbacks.store import RunStore

    stream = f"{prefix}:docs"
    RE = RunEngine({}, context_managers=[])
    RunStore(tmp_path / "local").subscribe(RE)
    publisher = DocumentPublisher(redis_url, stream)
    RE.subscribe(publisher)
    remote = tmp_path / "remote"
    first = consumer(redis_url, stream, str(remote))
    runs = threading.Thread(target=lambda: [RE(bp.scan([det], motor, -1, 1, 400)) for _ in "abc"])
    runs.start()
    deadline = time.monotonic() + 30
    while len(records(remote)) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # mid-run
    first.wait(10)
    at_kill = len(records(remote))
    runs.join(60)
    assert publisher.flush()
    second = consumer(redis_url, stream, str(remote))
    out, _ = second.communicate(timeout=60)
    local, copied = records(tmp_path / "local"), records(remote)
    assert len(local) > 3 * 400 and at_kill < len(local)
    assert sorted(copied) == sorted(local)  # every document, each once
    assert not [k for k, n in Counter(copied).items() if n > 1]
    assert '"written"' in out


@pytest.mark.parametrize("policy", ["fail", "fallback"])
def test_redis_dying_fails_the_run_clearly_or_goes_on_locally(own_redis, tmp_path, policy):
    import bluesky.plans as bp
    from ophyd.sim import det, motor

    from runengine import RunEngine
    from runengine.callbacks.redis_stream import DocumentPublisher
    from runengine.callbacks.store import RunStore
    from runengine.scaleout.connection import BackendUnavailable

    RE = RunEngine({}, context_managers=[])
    RunStore(tmp_path).subscribe(RE)
    publisher = DocumentPublisher(own_redis.url, "docs", on_failure=policy, socket_timeout=0.5)
    RE.subscribe(publisher)
    RE(bp.count([det], 3))
    own_redis.kill()
    t0 = time.monotonic()
    failed = []
    for _ in range(3):  # the publisher learns of it in the background, at most a run later
        try:
            RE(bp.scan([det], motor, -1, 1, 5))
        except BackendUnavailable as err:
            failed.append(err)
        publisher.flush(5)
    assert time.monotonic() - t0 < 10 and RE.state == "idle"  # never hangs
    if policy == "fail":
        assert failed and "Document stream 'docs'" in str(failed[0])  # names the culprit
    else:
        assert not failed and publisher.dropped > 0
    assert len(list(tmp_path.glob("*.msgpack"))) == 4  # the local store has every run


def test_hostile_entries_are_set_aside_and_never_wedge_the_consumer(redis_url, prefix, tmp_path):
    import bluesky.plans as bp
    import msgpack
    import redis
    from ophyd.sim import det

    from runengine import RunEngine
    from runengine.callbacks.records import RecordReader
    from runengine.callbacks.redis_stream import DocumentConsumer, DocumentPublisher
    from runengine.callbacks.store import RunStore

    stream, store = f"{prefix}:docs", tmp_path / "store"
    client = redis.Redis.from_url(redis_url)
    local = RunStore(store)  # a run another store is writing, in the consumer's folder
    local("start", {"uid": "busy", "time": 1.0})
    foreign = store / "other.msgpack"
    foreign.write_bytes(b"somebody else's file")

    def record(*items):
        return msgpack.packb(list(items), use_bin_type=True)

    hostile = [
        b"\xc1 not msgpack",
        record(1, "run", "start"),  # three items
        record(2, "../evil", "start", {"uid": "../evil", "time": 1.0}),
        record(3, "/etc/evil", "start", {"uid": "/etc/evil", "time": 1.0}),
        record(4, "a", "start", {"uid": "b", "time": 1.0}),
        record(5, "a", "bogus", {}),
        record(6, "busy", "stop", {"uid": "s", "run_start": "busy", "time": 2.0}),
        record(7, "other", "descriptor", {"uid": "d", "run_start": "other", "time": 2.0}),
    ]
    for data in hostile:
        client.xadd(stream, {"d": data})
    RE = RunEngine({}, context_managers=[])
    publisher = DocumentPublisher(redis_url, stream)
    RE.subscribe(publisher)
    uid = RE(bp.count([det], 3))[0]
    assert publisher.flush()

    consumer = DocumentConsumer(redis_url, store, stream, consumer="c1")
    consumer.run(idle_exit=1.0)
    assert consumer.rejected == len(hostile)
    reasons = [fields[b"reason"].decode() for _, fields in client.xrange(f"{stream}:rejected")]
    assert len(reasons) == len(hostile) and any("'../evil'" in r for r in reasons)
    assert any("being written by another store" in r for r in reasons)
    assert any("not run 'other'" in r for r in reasons)
    assert [name for name, _ in RecordReader(store / f"{uid}.msgpack")][-1] == "stop"
    assert foreign.read_bytes() == b"somebody else's file"  # never truncated
    assert not (tmp_path / "evil.msgpack").exists() and not list(tmp_path.glob("*.msgpack"))
    local("stop", {"uid": "s0", "run_start": "busy", "time": 3.0, "exit_status": "success"})
    assert [name for name, _ in RecordReader(store / "busy.msgpack")] == ["start", "stop"]
    again = DocumentConsumer(redis_url, store, stream, consumer="c1")  # acknowledged: gone
    assert again.poll() == 0 and again.rejected == 0
