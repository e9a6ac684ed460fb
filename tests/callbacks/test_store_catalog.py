"""databroker over our store: the same runs through databroker, our Catalog and the documents."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from ophyd import Signal
from ophyd.sim import det, det1, motor

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.store import RunStore
from runengine.callbacks.store_catalog import TILED_DIR, broker

from .tiled_kit import assert_same_table


@bpp.run_decorator(md={"plan_name": "failing"})
def _failing_plan():
    yield from bps.trigger_and_read([det])
    raise RuntimeError("the plan failed on purpose")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of varied runs, the documents as emitted, and databroker over it."""
    directory = tmp_path_factory.mktemp("store")
    RE = RunEngine({}, context_managers=[])
    RunStore(directory).subscribe(RE)
    emitted: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: emitted.append((name, doc)))
    gain = Signal(name="gain", value=2.5)
    uids = list(RE(bp.count([det, gain], 3), sample="Fe", operator="ann"))
    uids += RE(bp.scan([det], motor, -1, 1, 5), sample="Cu")
    uids += RE(bpp.baseline_wrapper(bp.scan([det1], motor, 0, 2, 3), [gain]), sample="Fe")
    with pytest.raises(RuntimeError):
        RE(_failing_plan())
    uids.append(Catalog(directory)[-1].uid)
    db = broker(directory)
    return directory, uids, emitted, db


def _docs_of(emitted, uid):
    start = next(d for n, d in emitted if n == "start" and d["uid"] == uid)
    stop = next(d for n, d in emitted if n == "stop" and d["run_start"] == uid)
    descs = {d["uid"]: d for n, d in emitted if n == "descriptor" and d["run_start"] == uid}
    events = [d for n, d in emitted if n == "event" and d["descriptor"] in descs]
    return start, stop, descs, events


def test_databroker_catalog_and_documents_agree_value_for_value(store):
    directory, uids, emitted, db = store
    catalog = Catalog(directory)
    assert len(list(db())) == len(uids)
    for uid in uids:
        start, stop, descs, events = _docs_of(emitted, uid)
        header, ours = db[uid], catalog[uid]
        assert header.start["uid"] == ours.start["uid"] == start["uid"]
        assert header.start.get("sample") == ours.start.get("sample") == start.get("sample")
        assert header.stop["exit_status"] == ours.stop["exit_status"] == stop["exit_status"]
        assert header.stop["num_events"] == ours.stop["num_events"] == stop["num_events"]
        for stream in {d["name"] for d in descs.values()}:
            theirs_table, our_table = header.table(stream), ours.table(stream)
            in_stream = [e for e in events if descs[e["descriptor"]]["name"] == stream]
            assert list(our_table.index) == [e["seq_num"] for e in in_stream]
            assert list(theirs_table.index) == list(our_table.index)
            pd.testing.assert_series_equal(theirs_table["time"], our_table["time"])
            for key in in_stream[0]["data"]:
                raw = [e["data"][key] for e in in_stream]
                np.testing.assert_array_equal(our_table[key].to_numpy(), raw, err_msg=key)
                np.testing.assert_array_equal(theirs_table[key].to_numpy(), raw, err_msg=key)
            assert_same_table(ours[stream].read(), db.v2[uid][stream].read())


def test_lookups_and_searches_agree(store):
    directory, uids, _, db = store
    catalog = Catalog(directory)
    assert db[-1].start["uid"] == catalog[-1].uid == uids[-1]
    assert db[-2].start["uid"] == catalog[-2].uid
    assert db[-1].stop["exit_status"] == "fail"
    by_plan = sorted(h.start["uid"] for h in db(plan_name="scan"))
    assert by_plan == sorted(catalog.search({"plan_name": "scan"})) and len(by_plan) == 2
    by_sample = sorted(h.start["uid"] for h in db(sample="Fe"))
    assert by_sample == sorted(catalog.search({"sample": "Fe"})) == sorted([uids[0], uids[2]])
    times = [catalog[uid].start["time"] for uid in uids]

    def stamp(seconds: float) -> str:  # databroker's time strings: whole seconds, local time
        return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")

    low, high = int(times[0]) - 2, int(times[-1]) + 3
    in_range = sorted(h.start["uid"] for h in db(since=stamp(low), until=stamp(high)))
    assert in_range == sorted(uids) == sorted(catalog.search({"time": {"$gte": low, "$lt": high}}))
    assert list(db(since=stamp(high))) == [] and len(catalog.search({"time": {"$gte": high}})) == 0


def test_broker_exports_only_what_is_new(store):
    directory, uids, _, _ = store
    RE = RunEngine({}, context_managers=[])
    RunStore(directory).subscribe(RE)
    (uid,) = RE(bp.count([det], 2), sample="new")
    db = broker(directory)
    assert db[-1].start["uid"] == uid and len(list(db())) == len(uids) + 1
    assert (directory / TILED_DIR / "catalog.db").is_file()
