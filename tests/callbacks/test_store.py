"""The embedded run store: every document kept, crash-safe, clear errors on failing writes."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import event_model
import numpy as np
import pytest
from bluesky import plans as bp
from bluesky.utils import Msg
from event_model import DocumentNames
from ophyd import Signal
from ophyd.sim import det

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.records import RecordReader, read_start
from runengine.callbacks.store import RunStore, StoreError, StoreWarning, default_directory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


def stored(path) -> list[tuple[str, dict]]:
    return list(RecordReader(path))


def validate(name: str, doc: dict) -> None:
    event_model.schema_validators[DocumentNames[name]].validate(doc)


def assert_same(a, b) -> None:
    """Deep equality, with numpy arrays compared by value and tuples as lists.

    A numpy float64 (a float subclass) is stored as a msgpack float: it comes back a float.
    """
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(b, np.ndarray) and isinstance(a, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        same_type = type(a) is type(b) or (isinstance(a, float) and type(b) is float)
        assert a == b and same_type


def every_document_type() -> list[tuple[str, dict]]:
    """A run with one document of every type, made by event-model's composers."""
    run = event_model.compose_run(metadata={"sample": {"color": "red"}, "scan_id": 7})
    out = [("start", run.start_doc)]
    keys = {
        "x": {"dtype": "number", "shape": [], "source": "sim:x"},
        "img": {"dtype": "array", "shape": [3, 4], "source": "sim:img"},
        "ext": {"dtype": "array", "shape": [2], "source": "file", "external": "FILESTORE:"},
    }
    desc = run.compose_descriptor(data_keys=keys, name="primary")
    out.append(("descriptor", desc.descriptor_doc))
    res = run.compose_resource(
        spec="NPY_SEQ", root="/tmp", resource_path="a.npy", resource_kwargs={}
    )
    out.append(("resource", res.resource_doc))
    datum = res.compose_datum(datum_kwargs={"index": 0})
    out.append(("datum", datum))
    out.append(("datum_page", res.compose_datum_page(datum_kwargs={"index": [1, 2]})))
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    out.append(
        (
            "event",
            desc.compose_event(
                data={"x": 1.5, "img": img, "ext": datum["datum_id"]},
                timestamps={"x": 1.0, "img": 1.0, "ext": 1.0},
                seq_num=1,
                filled={"ext": False},
            ),
        )
    )
    page = desc.compose_event_page(
        data={"x": [2.5, 3.5], "img": [img + 1, img + 2], "ext": ["a/1", "a/2"]},
        timestamps={"x": [2.0, 3.0], "img": [2.0, 3.0], "ext": [2.0, 3.0]},
        seq_num=[2, 3],
        filled={"ext": [False, False]},
    )
    out.append(("event_page", page))
    cam_key = {"dtype": "array", "shape": [5, 5], "source": "h5", "external": "STREAM:"}
    stream_keys = {"cam": cam_key}
    cam = run.compose_descriptor(data_keys=stream_keys, name="cam_stream")
    out.append(("descriptor", cam.descriptor_doc))
    sres = run.compose_stream_resource(
        mimetype="application/x-hdf5",
        uri="file://localhost/tmp/a.h5",
        data_key="cam",
        parameters={"dataset": "/data"},
    )
    out.append(("stream_resource", sres.stream_resource_doc))
    out.append(
        (
            "stream_datum",
            sres.compose_stream_datum(
                indices={"start": 0, "stop": 2},
                seq_nums={"start": 1, "stop": 3},
                descriptor=cam.descriptor_doc,
            ),
        )
    )
    out.append(("stop", run.compose_stop()))
    return out


def test_every_document_type_round_trips_and_validates(tmp_path):
    docs = every_document_type()
    names = {name for name, _ in docs}
    assert names == {
        "start", "descriptor", "event", "event_page", "resource", "datum", "datum_page",
        "stream_resource", "stream_datum", "stop",
    }  # fmt: skip
    store = RunStore(tmp_path)
    for name, doc in docs:
        validate(name, doc)
        store(name, doc)
    path = store.path_for(docs[0][1]["uid"])
    back = stored(path)
    assert [n for n, _ in back] == [n for n, _ in docs]
    for (name, original), (_, doc) in zip(docs, back, strict=True):
        validate(name, doc)
        assert_same(original, doc)
    event = back[5][1]
    assert isinstance(event["data"]["img"], np.ndarray)
    assert event["data"]["img"].shape == (3, 4) and event["data"]["img"].dtype == np.float32
    assert store.open_runs == [] and store.failures == 0


def test_documents_reach_the_file_one_write_each_before_the_next_subscriber(RE, tmp_path):
    store = RunStore(tmp_path)
    seen = []

    def after_store(name, doc):
        if name == "start":
            seen.append(store.path_for(doc["uid"]))
        seen.append(len(stored(seen[0])))

    RE.subscribe(after_store)
    store.subscribe(RE)  # subscribed last, yet put first
    RE(bp.count([det], 5))
    assert seen[1:] == list(range(1, 9))  # start, descriptor, 5 events, stop


def test_fsync_every_n_documents_and_at_stop(RE, tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    store = RunStore(tmp_path, fsync_every=4, fsync_interval=None)
    RE.subscribe(store)
    RE(bp.count([det], 10))  # 13 documents: synced after the 4th, 8th, 12th and at stop
    assert len(synced) == 4
    synced.clear()
    RE.unsubscribe(0)
    every_time = RunStore(tmp_path / "b", fsync_every=0, fsync_interval=0.0)
    RE.subscribe(every_time)
    RE(bp.count([det], 3))
    assert len(synced) == 6


def test_numpy_arrays_round_trip_through_the_engine(RE, tmp_path):
    image = Signal(name="image", value=np.arange(20.0).reshape(4, 5))
    RunStore(tmp_path).subscribe(RE)
    (uid,) = RE(bp.count([image, det], 3))
    events = [doc for name, doc in stored(tmp_path / f"{uid}.msgpack") if name == "event"]
    assert len(events) == 3
    np.testing.assert_array_equal(events[0]["data"]["image"], np.arange(20.0).reshape(4, 5))


def test_default_directory_follows_xdg_and_is_created(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_directory() == tmp_path / "xdg" / "runengine" / "runs"
    store = RunStore()
    assert store.directory.is_dir()
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_directory() == tmp_path / "home" / ".local" / "share" / "runengine" / "runs"


def test_missing_directory_is_created_and_an_impossible_one_named(tmp_path):
    RunStore(tmp_path / "a" / "b" / "c")
    assert (tmp_path / "a" / "b" / "c").is_dir()
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match=str(tmp_path / "file")):
        RunStore(tmp_path / "file" / "runs")
    with pytest.raises(StoreError, match="not a directory"):
        RunStore(tmp_path / "file")
    with pytest.raises(ValueError, match="on_error"):
        RunStore(tmp_path, on_error="ignore")


def test_nested_runs_go_to_their_own_files(RE, tmp_path):
    def two_runs():
        a = yield Msg("open_run", run="a", purpose="outer")
        b = yield Msg("open_run", run="b", purpose="inner")
        for run in ("a", "b", "a"):
            yield Msg("create", name="primary", run=run)
            yield Msg("read", det, run=run)
            yield Msg("save", run=run)
        yield Msg("close_run", run="b")
        yield Msg("close_run", run="a")
        return a, b

    RunStore(tmp_path).subscribe(RE)
    uid_a, uid_b = RE(two_runs())
    catalog = Catalog(tmp_path)
    assert len(catalog) == 2
    outer, inner = catalog[uid_a], catalog[uid_b]
    assert outer.metadata["start"]["purpose"] == "outer" and outer.complete
    assert inner.metadata["start"]["purpose"] == "inner" and inner.complete
    assert len(outer.primary.read()["det"]) == 2 and len(inner.primary.read()["det"]) == 1
    for run in (outer, inner):
        for name, doc in run.documents():
            assert doc.get("run_start", run.uid) == run.uid or name in ("event", "datum")


CHILD = textwrap.dedent(
    """
    import sys
    from bluesky import plans as bp
    from ophyd import Signal
    from runengine import RunEngine
    from runengine.callbacks.store import RunStore

    RE = RunEngine({}, context_managers=[])
    RunStore(sys.argv[1], fsync_every=0, fsync_interval=None).subscribe(RE)

    def report(name, doc):  # after the store: a printed seq_num was written
        if name == "start":
            print("uid", doc["uid"], flush=True)
        elif name == "event":
            print(doc["seq_num"], flush=True)

    RE.subscribe(report)
    signals = [Signal(name=f"s{i}", value=float(i)) for i in range(3)]
    RE(bp.count(signals, int(sys.argv[2])), who=sys.argv[3])
    print("done", flush=True)
    """
)


def run_child(directory, n, who) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(n), who],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_kill_9_mid_run_keeps_every_reported_event(tmp_path):
    child = run_child(tmp_path, 10_000, "victim")
    try:
        uid = child.stdout.readline().split()[1]
        reported = []
        for line in child.stdout:
            reported.append(int(line))
            if reported[-1] >= 2000:
                break
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert reported == list(range(1, 2001))
    catalog = Catalog(tmp_path)
    run = catalog[uid]
    assert run.complete is False and run.metadata["stop"] is None
    assert run.metadata["start"]["who"] == "victim"
    seq = run.primary.read()["seq_num"].values
    assert 2000 <= len(seq) < 10_000  # killed mid-run, nothing reported is missing
    np.testing.assert_array_equal(seq, np.arange(1, len(seq) + 1))
    assert run.primary.read()["s2"].values.tolist() == [2.0] * len(seq)


def test_two_processes_write_runs_to_one_directory(tmp_path):
    children = [run_child(tmp_path, 1500, who) for who in ("left", "right")]
    outs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    catalog = Catalog(tmp_path)
    assert len(catalog) == 2
    for who, out in zip(("left", "right"), outs, strict=True):
        assert out.splitlines()[-1] == "done"
        (run,) = catalog.search({"who": who}).values()
        assert run.complete and run.metadata["stop"]["num_events"] == {"primary": 1500}
        assert run.primary.read()["seq_num"].values.tolist() == list(range(1, 1501))


def test_threads_writing_runs_of_their_own(tmp_path):
    store = RunStore(tmp_path)

    def write_run(i):
        docs = every_document_type()
        for name, doc in docs:
            store(name, doc)

    threads = [threading.Thread(target=write_run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    catalog = Catalog(tmp_path)
    assert len(catalog) == 4 and all(run.complete for run in catalog.values())


# ---- failing writes ----------------------------------------------------------------------
def fail_writes(monkeypatch, directory, err: int, after: int = 0, times: int | None = None):
    """Make os.write to files under ``directory`` fail with ``err`` after ``after`` writes:
    the failing call first writes half its bytes (a torn record), then raises."""
    real_write = os.write
    state = {"writes": 0, "failed": 0}

    def write(fd, data):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if not target.startswith(str(directory)):
            return real_write(fd, data)
        state["writes"] += 1
        if state["writes"] > after and (times is None or state["failed"] < times):
            state["failed"] += 1
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(err, os.strerror(err))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    return state


def collect(RE):
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    return docs


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
def test_full_disk_aborts_the_run_cleanly_and_keeps_what_was_stored(RE, tmp_path, monkeypatch, err):
    RunStore(tmp_path, on_error="abort").subscribe(RE)
    docs = collect(RE)
    fail_writes(monkeypatch, tmp_path, err, after=5)  # start, descriptor, 3 events
    with pytest.raises(StoreError) as info:
        RE(bp.count([det], 10))
    path = tmp_path / f"{docs[0][1]['uid']}.msgpack"
    assert str(path) in str(info.value) and os.strerror(err) in str(info.value)
    assert info.value.errno == err and info.value.filename == str(path)
    assert RE.state == "idle"
    stop = docs[-1][1]
    assert docs[-1][0] == "stop" and stop["exit_status"] == "fail"
    assert str(path) in stop["reason"]
    run = Catalog(tmp_path)[-1]
    assert run.complete is False  # the stop could not be written either
    assert run.primary.read()["seq_num"].values.tolist() == [1, 2, 3]
    monkeypatch.undo()
    assert RE(bp.count([det], 1)) and RE.state == "idle"  # the engine goes on


def test_full_disk_that_recovers_stores_the_failed_stop(RE, tmp_path, monkeypatch):
    RunStore(tmp_path, on_error="abort").subscribe(RE)
    fail_writes(monkeypatch, tmp_path, errno.ENOSPC, after=4, times=1)
    with pytest.raises(StoreError):
        RE(bp.count([det], 10))
    run = Catalog(tmp_path)[-1]
    assert run.complete and run.metadata["stop"]["exit_status"] == "fail"
    assert "No space left on device" in run.metadata["stop"]["reason"]
    assert len(run.primary.read()["det"]) == 2


def test_full_disk_continue_warns_counts_and_keeps_running(RE, tmp_path, monkeypatch):
    store = RunStore(tmp_path, on_error="continue")
    store.subscribe(RE)
    docs = collect(RE)
    state = fail_writes(monkeypatch, tmp_path, errno.ENOSPC, after=4, times=3)
    with pytest.warns(StoreWarning) as warned:
        (uid,) = RE(bp.count([det], 10))
    assert RE.state == "idle" and docs[-1][1]["exit_status"] == "success"
    assert state["failed"] == 3 and store.failures == 3
    messages = [str(w.message) for w in warned]
    assert any("No space left on device" in m and uid in m for m in messages)
    assert any("3 document(s)" in m for m in messages)
    run = Catalog(tmp_path)[uid]
    assert run.complete  # space came back: the rest, the stop included, was stored
    assert run.primary.read()["seq_num"].values.tolist() == [1, 2, 6, 7, 8, 9, 10]


def fail_opens(monkeypatch, directory, err=errno.EROFS):
    real_open = os.open

    def open_(path, flags, *args, **kwargs):
        if str(path).startswith(str(directory)) and flags & os.O_CREAT:
            raise OSError(err, os.strerror(err), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)


def test_read_only_directory_refuses_the_run_with_abort(RE, tmp_path, monkeypatch):
    RunStore(tmp_path, on_error="abort").subscribe(RE)
    fail_opens(monkeypatch, tmp_path)
    with pytest.raises(StoreError, match="Read-only file system") as info:
        RE(bp.count([det], 3))
    assert str(tmp_path) in str(info.value) and "cannot create the file" in str(info.value)
    assert RE.state == "idle" and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    (uid,) = RE(bp.count([det], 3))
    assert Catalog(tmp_path)[uid].complete


def test_read_only_directory_with_continue_runs_on(RE, tmp_path, monkeypatch):
    store = RunStore(tmp_path, on_error="continue")
    store.subscribe(RE)
    docs = collect(RE)
    fail_opens(monkeypatch, tmp_path, errno.EACCES)
    with pytest.warns(StoreWarning) as warned:
        RE(bp.count([det], 3))
    messages = [str(w.message) for w in warned]
    assert "Permission denied" in messages[0] and "6 document(s)" in messages[-1]
    assert docs[-1][1]["exit_status"] == "success" and store.failures == 6
    assert store.open_runs == [] and len(Catalog(tmp_path)) == 0


def test_failing_fsync_at_stop_is_reported(RE, tmp_path, monkeypatch):
    RunStore(tmp_path, fsync_every=0, fsync_interval=None).subscribe(RE)

    def broken_fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match=r"could not be synced.*Input/output error"):
        RE(bp.count([det], 2))
    assert RE.state == "idle"
    assert Catalog(tmp_path)[-1].complete  # written, only not synced


def test_metadata_that_cannot_be_serialized(RE, tmp_path):
    RunStore(tmp_path).subscribe(RE)
    with pytest.raises(StoreError, match=r"'start' document .* cannot be serialized"):
        RE(bp.count([det], 2), weird=object())
    assert RE.state == "idle" and list(tmp_path.iterdir()) == []


def test_start_read_alone(tmp_path):
    store = RunStore(tmp_path)
    docs = every_document_type()
    store(*docs[0])
    assert read_start(store.path_for(docs[0][1]["uid"])) == docs[0][1]
    store.close()
    assert store.open_runs == []
