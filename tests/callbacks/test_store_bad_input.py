"""Bad input never loses, hides or misplaces a run: uids, times, torn and foreign files."""

from __future__ import annotations

import os
import time
import warnings

import pytest
from bluesky import RunEngine as BlueskyRunEngine
from bluesky import plans as bp
from bluesky.utils import Msg
from event_model import EventModelValidationError
from ophyd.sim import SynAxis, SynGauss

from runengine.callbacks.catalog import TORN_AFTER, Catalog
from runengine.callbacks.records import CorruptRunError, RecordReader
from runengine.callbacks.store import RunStore, StoreError, pack_record
from runengine.descriptors import EventKeysMismatch
from tests.conftest import fresh_engine, leave_idle


@pytest.fixture
def RE():
    engine = fresh_engine()
    yield engine
    leave_idle(engine)


def _bluesky():
    return BlueskyRunEngine({}, context_managers=[])


# ---- uids and times: the engine sets them -------------------------------------------------
def _open_and_close(**md):
    def plan():
        yield Msg("open_run", **md)
        yield Msg("close_run")

    return plan


@pytest.mark.parametrize("key", ["uid", "time"])
@pytest.mark.parametrize("where", ["call", "RE.md", "open_run"])
def test_uid_and_time_in_the_metadata_are_refused_as_bluesky_refuses_them(RE, key, where):
    value = "../outside" if key == "uid" else "yesterday"
    outcomes = []
    for engine in (RE, _bluesky()):
        docs = []
        engine.subscribe(lambda name, doc, docs=docs: docs.append(name))
        plan = _open_and_close(**({key: value} if where == "open_run" else {}))
        if where == "RE.md":
            engine.md[key] = value
        with pytest.raises(TypeError) as raised:
            if where == "call":
                engine(plan(), **{key: value})
            else:
                engine(plan())
        engine.md.pop(key, None)
        outcomes.append((type(raised.value), "start" in docs, str(engine.state)))
        if engine is RE:
            assert key in str(raised.value) and repr(value) in str(raised.value)
    assert outcomes[0] == outcomes[1] == (TypeError, False, "idle")


@pytest.mark.parametrize(
    "uid", ["../outside", "/tmp/absolute", "a/b", ".hidden", "", "x" * 201, None, 42, "a\0b"]
)
def test_a_start_with_an_unsafe_uid_is_refused_naming_it_and_writes_nothing(tmp_path, uid):
    store = RunStore(tmp_path / "store")
    with pytest.raises(StoreError) as raised:
        store("start", {"uid": uid, "time": time.time()})
    assert repr(uid)[:40] in str(raised.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["store"]
    store("stop", {"uid": "s", "run_start": uid, "time": time.time(), "exit_status": "success"})
    assert list((tmp_path / "store").iterdir()) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_run_files_are_read_write_as_the_umask_allows_never_executable(RE, tmp_path, umask, mode):
    store = RunStore(tmp_path)
    store.subscribe(RE)
    old = os.umask(umask)
    try:
        RE(bp.count([]))
    finally:
        os.umask(old)
    (path,) = tmp_path.iterdir()
    assert path.stat().st_mode & 0o777 == mode


# ---- listing: one bad file never hides the others -----------------------------------------
def _write(path, *records) -> None:
    with open(path, "wb") as file:
        for name, doc in records:
            file.write(pack_record(name, doc))


def _good_run(RE, directory) -> str:
    store = RunStore(directory)
    token = store.subscribe(RE)
    (uid,) = RE(bp.count([SynGauss("det", SynAxis(name="m"), "m", center=0, Imax=1)], 2))
    RE.unsubscribe(token)
    return uid


@pytest.mark.parametrize(
    ("start", "reason"),
    [
        ({"uid": "bad-time", "time": "yesterday"}, "time is 'yesterday'"),
        ({"uid": "no-time"}, "time is None"),
        ({"uid": "nan-time", "time": float("nan")}, "time is nan"),
        ({"uid": 7, "time": 1.0}, "uid is 7"),
    ],
)
def test_a_foreign_start_that_cannot_be_sorted_goes_to_corrupt(RE, tmp_path, start, reason):
    good = [_good_run(RE, tmp_path), _good_run(RE, tmp_path)]
    _write(tmp_path / "foreign.msgpack", ("start", start))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        catalog = Catalog(tmp_path)
        assert list(catalog) == good
    assert [path.name for path in catalog.corrupt] == ["foreign.msgpack"]
    assert reason in str(catalog.corrupt[tmp_path / "foreign.msgpack"])
    assert any("foreign.msgpack" in str(w.message) for w in caught)
    assert catalog[-1].metadata["start"]["uid"] == good[-1]


def test_a_torn_start_is_waited_for_then_reported_once_it_is_old(RE, tmp_path):
    good = _good_run(RE, tmp_path)
    torn = tmp_path / "torn.msgpack"
    torn.write_bytes(pack_record("start", {"uid": "torn", "time": 1.0})[:7])
    catalog = Catalog(tmp_path)
    assert list(catalog) == [good] and catalog.corrupt == {}  # may still be being written
    old = time.time() - TORN_AFTER - 1
    os.utime(torn, (old, old))
    with pytest.warns(UserWarning, match="torn"):
        assert list(catalog) == [good]
    assert "torn" in str(catalog.corrupt[torn])
    torn.write_bytes(pack_record("start", {"uid": "torn", "time": 2e9}))  # the writer was slow
    assert list(catalog) == [good, "torn"] and catalog.corrupt == {}


def test_garbage_after_the_stop_does_not_make_a_complete_run_incomplete(RE, tmp_path):
    uid = _good_run(RE, tmp_path)
    (path,) = tmp_path.iterdir()
    before = Catalog(tmp_path)[uid].primary.read()
    with open(path, "ab") as file:
        file.write(b"\xc1garbage after the stop")
    run = Catalog(tmp_path)[uid]
    assert run.complete and run.metadata["stop"]["exit_status"] == "success"
    assert run.primary.read().equals(before)
    reader = RecordReader(path)
    assert [name for name, _ in reader][-1] == "stop"
    assert reader.trailing == len(b"\xc1garbage after the stop")


def test_a_second_start_record_is_corruption_named_with_its_offset(RE, tmp_path):
    uid = _good_run(RE, tmp_path)
    (path,) = tmp_path.iterdir()
    data = path.read_bytes()
    stop_at = data.rfind(b"\x92\xa4stop")
    path.write_bytes(data[:stop_at] + pack_record("start", {"uid": "x", "time": 1.0}))
    with pytest.raises(CorruptRunError, match="second start") as raised:
        list(RecordReader(path))
    assert raised.value.offset == stop_at
    run = Catalog(tmp_path, strict=False)[uid]
    with pytest.warns(UserWarning, match="second start"):
        names = [name for name, _ in run.documents()]
    assert "start" not in names[1:]


# ---- events must have their descriptor's keys -----------------------------------------------
class ShiftingDetector(SynGauss):
    """A detector whose read() gains a key after its first reading."""

    reads = 0

    def read(self):
        reading = super().read()
        type(self).reads += 1
        if type(self).reads > 1:
            reading["surprise"] = {"value": 1.0, "timestamp": time.time()}
        return reading


def test_an_event_whose_keys_are_not_its_descriptors_fails_the_run_as_in_bluesky(RE, tmp_path):
    outcomes = []
    for engine in (RE, _bluesky()):
        ShiftingDetector.reads = 0
        det = ShiftingDetector("det", SynAxis(name="m"), "m", center=0, Imax=1)
        docs = []
        engine.subscribe(lambda name, doc, docs=docs: docs.append((name, doc)))
        # bluesky: a KeyError for a key not described (EventModelValidationError for a
        # missing one); ours is both
        with pytest.raises((KeyError, EventModelValidationError)) as raised:
            engine(bp.count([det], 3))
        (stop,) = [doc for name, doc in docs if name == "stop"]
        events = [doc for name, doc in docs if name == "event"]
        outcomes.append((stop["exit_status"], len(events)))
        if engine is RE:
            assert isinstance(raised.value, EventKeysMismatch)
            assert isinstance(raised.value, KeyError | EventModelValidationError)
            assert "surprise" in str(raised.value) and "det" in str(raised.value)
    assert outcomes[0] == outcomes[1] == ("fail", 1)
