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
    own_redis.stop()
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
