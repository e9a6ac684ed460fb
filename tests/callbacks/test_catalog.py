"""The catalog over a store directory: lookup, search, streams as tables, replay, bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.callbacks import LiveTable
from ophyd import Signal
from ophyd.sim import det, motor

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog, CorruptRunError, match
from runengine.callbacks.filling import FillError
from runengine.callbacks.store import RunStore, pack_record
from tests.callbacks.test_store import assert_same, every_document_type


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


@pytest.fixture
def filled(RE, tmp_path):
    """Five runs, with the documents each one emitted: ``(catalog, {uid: docs})``."""
    RunStore(tmp_path).subscribe(RE)
    emitted: dict[str, list] = {}

    def keep(name, doc):
        if name == "start":
            emitted[doc["uid"]] = []
        list(emitted.values())[-1].append((name, doc))  # runs one after the other

    RE.subscribe(keep)
    RE(bp.scan([det], motor, -1, 1, 5), sample={"name": "Fe", "color": "grey"}, operator="ada")
    RE(bp.count([det], 3), sample={"name": "Cu", "color": "red"}, operator="bob")
    RE(bp.count([det], 2), sample={"name": "Fe", "color": "grey"}, operator="bob", temp=300)
    RE.md["scan_id"] = 1  # the next run repeats scan_id 2
    RE(bp.count([det], 4), sample="loose string", operator="cy", temp=10)
    RE(bp.count([det], 1), operator="ada")
    return Catalog(tmp_path), emitted


def test_listing_and_lookup(filled):
    catalog, emitted = filled
    uids = list(emitted)
    assert len(catalog) == 5 and list(catalog) == uids == catalog.keys()
    assert catalog[-1].uid == uids[-1] and catalog[-5].uid == uids[0]
    assert catalog[uids[2]].uid == uids[2]
    assert catalog[uids[3][:8]].uid == uids[3]
    assert catalog[2].uid == uids[3]  # scan_id 2 twice: the most recent
    assert catalog[1].uid == uids[0]
    assert uids[1] in catalog and "nope" not in catalog
    with pytest.raises(IndexError, match="5 runs"):
        catalog[-6]
    with pytest.raises(KeyError, match="scan_id 99"):
        catalog[99]
    with pytest.raises(KeyError, match="No run 'zzz'"):
        catalog["zzz"]
    with pytest.raises(KeyError, match="ambiguous"):
        catalog[""]
    with pytest.raises(TypeError):
        catalog[1.5]
    run = catalog[-5]
    assert_same(emitted[uids[0]][0][1], run.metadata["start"])
    assert_same(emitted[uids[0]][-1][1], run.metadata["stop"])
    assert run.complete and list(run) == ["primary"] and "primary" in run
    assert run["primary"].metadata["descriptors"][0]["data_keys"]["det"]["dtype"] == "number"
    with pytest.raises(KeyError, match="no stream 'baseline'"):
        run["baseline"]
    with pytest.raises(AttributeError):
        run.baseline  # noqa: B018
    assert "scan_id=1" in repr(run) and "5 runs" in repr(catalog)


def test_search(filled):
    catalog, emitted = filled
    uids = list(emitted)

    def found(query, within=catalog):
        return list(within.search(query))

    assert found({"operator": "bob"}) == uids[1:3]
    assert found({"sample.name": "Fe"}) == [uids[0], uids[2]]
    assert found({"sample": "loose string"}) == [uids[3]]
    assert found({"temp": {"$gt": 10}}) == [uids[2]]
    assert found({"temp": {"$gte": 10, "$lt": 300}}) == [uids[3]]
    assert found({"temp": {"$exists": False}}) == [uids[0], uids[1], uids[4]]
    assert found({"operator": {"$in": ["ada", "cy"]}}) == [uids[0], uids[3], uids[4]]
    assert found({"operator": {"$nin": ["ada", "cy"]}}) == uids[1:3]
    assert found({"operator": {"$ne": "ada"}}) == uids[1:4]
    assert found({"plan_name": {"$regex": "^sc"}}) == [uids[0]]
    assert found({"detectors": "det"}) == uids  # a list field matches a member
    assert found({"$or": [{"temp": 10}, {"plan_name": "scan"}]}) == [uids[0], uids[3]]
    assert found({"scan_id": 2}) == [uids[1], uids[3]]
    bob = catalog.search({"operator": "bob"})
    assert len(bob) == 2 and bob[-1].uid == uids[2] and found({"temp": 300}, bob) == [uids[2]]
    assert len(bob.search({"sample.color": "red"})) == 1
    assert found({"operator": "nobody"}) == []
    with pytest.raises(ValueError, match=r"\$near"):
        found({"temp": {"$near": 3}})
    assert match({"a": {"b": [1, 2]}}, {"a.b": 2}) and not match({"a": 1}, {"a.b": 1})


def test_primary_read_equals_the_events_data(filled):
    catalog, emitted = filled
    for uid, docs in emitted.items():
        events = [doc for name, doc in docs if name == "event"]
        ds = catalog[uid].primary.read()
        assert ds.sizes["time"] == len(events)
        np.testing.assert_array_equal(ds["time"].values, [e["time"] for e in events])
        np.testing.assert_array_equal(ds["seq_num"].values, [e["seq_num"] for e in events])
        assert set(ds.data_vars) == {"seq_num", *events[0]["data"]}
        for key in events[0]["data"]:
            np.testing.assert_array_equal(ds[key].values, [e["data"][key] for e in events])
        table = catalog[uid].primary.to_pandas()
        assert list(table.index) == [e["seq_num"] for e in events]
        for key in events[0]["data"]:
            assert table[key].tolist() == [e["data"][key] for e in events]
        keys = list(events[0]["data"])
        assert ds.to_dataframe()[keys].shape == (len(events), len(keys))


def test_arrays_event_pages_and_other_streams(tmp_path):
    store = RunStore(tmp_path)
    docs = every_document_type()
    for name, doc in docs:
        store(name, doc)
    run = Catalog(tmp_path)[-1]
    assert sorted(run) == ["cam_stream", "primary"]
    with pytest.raises(FillError, match=r"cannot read datum .* from /tmp/a\.npy"):  # no such file
        run.primary.read()
    ds = run.primary.read(fill=False)
    assert ds["x"].values.tolist() == [1.5, 2.5, 3.5]  # one event, then a page of two
    assert ds["img"].dims == ("time", "img_dim_0", "img_dim_1") and ds["img"].shape == (3, 3, 4)
    np.testing.assert_array_equal(ds["img"].values[2], np.arange(12).reshape(3, 4) + 2)
    assert ds["ext"].values.tolist()[1:] == ["a/1", "a/2"]  # external: datum ids
    assert run.cam_stream.read().sizes["time"] == 0
    table = run.primary.to_pandas()
    assert table.shape == (3, 4) and table["img"].iloc[0].shape == (3, 4)


def test_documents_replay_into_bluesky_callbacks(filled):
    catalog, emitted = filled
    uid = next(iter(emitted))
    replayed = list(catalog[uid].documents())
    assert len(replayed) == len(emitted[uid])
    for (name, doc), (name_back, back) in zip(emitted[uid], replayed, strict=True):
        assert name == name_back
        assert_same(doc, back)
    lines: list[str] = []
    catalog[uid].replay(LiveTable(["det", "motor"], out=lines.append))
    body = [line for line in lines if line.startswith("|") and "|" in line[1:]]
    assert len(body) == 1 + 5  # the header and one row per point
    assert "0.607" in "".join(lines)


def test_new_runs_show_up_in_an_open_catalog(RE, tmp_path):
    catalog = Catalog(tmp_path / "not yet")
    assert len(catalog) == 0
    RunStore(tmp_path / "not yet").subscribe(RE)
    (uid,) = RE(bp.count([det], 2))
    assert list(catalog) == [uid]


def test_a_run_cut_short_reads_up_to_its_last_whole_document(RE, tmp_path):
    RunStore(tmp_path).subscribe(RE)
    sig = Signal(name="sig", value=3.0)
    (uid,) = RE(bp.count([sig], 50))
    path = tmp_path / f"{uid}.msgpack"
    data = path.read_bytes()
    stop_len = len(pack_record("stop", Catalog(tmp_path)[uid].metadata["stop"]))
    event_len = (len(data) - stop_len) // 100  # roughly half an event
    path.write_bytes(data[: len(data) - stop_len - event_len])  # no stop, a torn last event
    run = Catalog(tmp_path)[uid]
    assert run.complete is False and run.metadata["stop"] is None
    assert run.primary.read()["seq_num"].values.tolist() == list(range(1, 50))
    assert [name for name, _ in run.documents()][-1] == "event"


def test_a_long_stop_document_is_still_found_from_the_tail(RE, tmp_path):
    RunStore(tmp_path).subscribe(RE)

    def fail():
        yield from bps.open_run()
        yield from bps.trigger_and_read([det])
        raise ValueError("x" * 200_000)

    with pytest.raises(ValueError):
        RE(fail())
    run = Catalog(tmp_path)[-1]
    assert run.complete and run.metadata["stop"]["reason"] == "x" * 200_000


def test_corrupt_files_are_named_and_left_out_of_the_listing(RE, tmp_path):
    RunStore(tmp_path).subscribe(RE)
    (good,) = RE(bp.count([det], 3))
    (tmp_path / "garbage.msgpack").write_bytes(b"\xc1\xc1 this is not msgpack")
    (tmp_path / "number.msgpack").write_bytes(pack_record("event", {})[1:])
    (tmp_path / "just-created.msgpack").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored: not a run file")
    catalog = Catalog(tmp_path)
    with pytest.warns(UserWarning, match="left out of the catalog") as warned:
        assert list(catalog) == [good]
    named = sorted(str(w.message).split(" at byte")[0].rsplit("/", 1)[1] for w in warned)
    assert named == ["garbage.msgpack", "number.msgpack"]
    assert list(catalog) == [good]  # warned once per file
    assert set(p.name for p in catalog.corrupt) == {"garbage.msgpack", "number.msgpack"}
    with pytest.raises(CorruptRunError, match=r"garbage\.msgpack at byte 0"):
        catalog["garbage"]
    assert catalog[-1].uid == good  # the listing goes on working


def test_corruption_inside_a_run_strict_and_lenient(RE, tmp_path):
    RunStore(tmp_path).subscribe(RE)
    (uid,) = RE(bp.count([det], 6))
    path = tmp_path / f"{uid}.msgpack"
    catalog = Catalog(tmp_path)
    records = list(catalog[uid].documents())
    offset = sum(len(pack_record(name, doc)) for name, doc in records[:4])  # after 2 events
    data = bytearray(path.read_bytes())
    data[offset : offset + 3] = b"\xc1\xc1\xc1"  # never-used msgpack bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptRunError, match=f"{path.name} at byte {offset}"):
        Catalog(tmp_path)[uid].primary.read()
    lenient = Catalog(tmp_path, strict=False)
    with pytest.warns(UserWarning, match=f"at byte {offset}"):
        ds = lenient[uid].primary.read()
    assert ds["seq_num"].values.tolist() == [1, 2]
    assert lenient[uid].complete  # the stop at the end is intact
    assert os.path.getsize(path) == len(data)  # reading never writes


def test_databrokers_header_spellings_agree_with_the_documents(filled):
    catalog, emitted = filled
    for uid, docs in emitted.items():
        run = catalog[uid]
        by_name: dict = {}
        for name, doc in docs:
            by_name.setdefault(name, []).append(doc)
        assert_same(by_name["start"][0], run.start)  # emitted, then stored
        assert_same(by_name["stop"][0], run.stop)
        assert [d["uid"] for d in run.descriptors] == [d["uid"] for d in by_name["descriptor"]]
        described = run.describe()
        assert described["uid"] == uid and described["complete"] is True
        assert_same(by_name["descriptor"][0]["data_keys"], described["streams"]["primary"])
        table = run.table()
        assert run.table(convert_times=False).equals(run.primary.to_pandas())
        assert table["time"].dtype.kind == "M"  # datetimes, as databroker gives them
        assert table["det"].tolist() == [e["data"]["det"] for e in by_name["event"]]
    with pytest.raises(KeyError, match="no stream 'baseline'"):
        catalog[-1].table("baseline")
