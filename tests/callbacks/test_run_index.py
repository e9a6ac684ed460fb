"""The run index: the same answers as matching every start document, kept up by any process."""

import multiprocessing
import os
import sqlite3
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runengine.callbacks.catalog import Catalog, match
from runengine.callbacks.run_index import INDEX_NAME, RunIndex
from runengine.callbacks.store import SUFFIX, pack_record


def write_run(directory, start, *, stop=True):
    uid = start["uid"]
    records = [("start", start)]
    if stop:
        records.append(("stop", {"uid": str(uuid.uuid4()), "run_start": uid, "time": 1.0,
                                 "exit_status": "success", "num_events": {}}))  # fmt: skip
    path = os.path.join(directory, uid + SUFFIX)
    with open(path, "wb") as file:
        file.write(b"".join(pack_record(n, d) for n, d in records))
    return path


# Field values a start may hold, plain and odd: lists (membership), None, bools, nested.
values = st.one_of(
    st.sampled_from(["scan", "count", "Fe", ""]),
    st.integers(-2, 3),
    st.sampled_from([1.5, True, False, None]),
    st.lists(st.sampled_from(["scan", "Fe", 1, 2]), max_size=2),
    st.fixed_dictionaries({"x": st.integers(0, 2)}),
)
starts = st.lists(
    st.dictionaries(st.sampled_from(["plan_name", "scan_id", "sample", "n"]), values),
    min_size=1,
    max_size=12,
)
FIELDS = ["plan_name", "scan_id", "sample", "n", "uid", "time", "n.x"]
TYPED = {
    "plan_name": ["scan", "count", "Fe"],
    "sample": ["Fe", "scan"],
    "uid": ["0001", "0"],
    "scan_id": [-1, 0, 1, 2, 3],
    "time": [100, 101.0, 102.5],
    "n": [1, 2],
    "n.x": [0, 1],
}
MIXED = ["scan", "Fe", -1, 1, 3, 1.5]
OPS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", None]


@st.composite
def terms(draw):
    """One condition, mostly with an operand of the field's own type (what SQL answers)."""
    key = draw(st.sampled_from(FIELDS))
    pool = TYPED[key] if draw(st.integers(0, 3)) else MIXED
    op = draw(st.sampled_from(OPS))
    if op is None:
        return {key: draw(st.sampled_from(pool))}
    if op == "$exists":
        return {key: {op: draw(st.booleans())}}
    if op in ("$in", "$nin"):
        return {key: {op: draw(st.lists(st.sampled_from(pool), max_size=3))}}
    return {key: {op: draw(st.sampled_from(pool))}}


terms = terms()
queries = st.one_of(
    terms,
    st.builds(lambda a, b: {**a, **b}, terms, terms),
    st.builds(lambda a, b: {"$or": [a, b]}, terms, terms),
    st.builds(lambda a, b: {"$and": [a, b]}, terms, terms),
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(docs=starts, query=queries, second=queries)
def test_searches_agree_with_matching_every_start(tmp_path_factory, docs, query, second):
    """SQL on the index's columns, its JSON pre-filter and the odd rows together give exactly
    what mongoquery gives on every start document, in the same order."""
    directory = tmp_path_factory.mktemp("runs")
    full = []
    for i, fields_ in enumerate(docs):
        start = {**fields_, "uid": f"{i:04d}-{uuid.uuid4()}", "time": 100.0 + i % 4}
        write_run(directory, start)
        full.append(start)
    order = sorted(full, key=lambda s: (s["time"], s["uid"] + SUFFIX))
    expected = [s["uid"] for s in order if match(s, query) and match(s, second)]
    found = Catalog(directory).search(query).search(second)
    assert list(found) == expected
    assert len(found) == len(expected)
    if expected:
        assert found[-1].uid == expected[-1] and found[-len(expected)].uid == expected[0]
    else:
        with pytest.raises(IndexError):
            found[-1]


def test_the_index_is_derived_deleting_it_loses_nothing(tmp_path):
    paths = [write_run(tmp_path, {"uid": str(uuid.uuid4()), "time": t, "scan_id": t})
             for t in range(5)]  # fmt: skip
    before = list(Catalog(tmp_path))
    assert (tmp_path / INDEX_NAME).exists()
    for name in os.listdir(tmp_path / ".index"):
        os.remove(tmp_path / ".index" / name)
    assert list(Catalog(tmp_path)) == before == list(Catalog(tmp_path, index=False))
    os.remove(paths[2])
    assert len(Catalog(tmp_path)) == 4


def test_an_index_of_another_layout_is_rebuilt(tmp_path):
    write_run(tmp_path, {"uid": "a", "time": 1.0})
    (tmp_path / ".index").mkdir()
    db = sqlite3.connect(tmp_path / INDEX_NAME)
    db.execute("CREATE TABLE runs (nonsense)")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    assert list(Catalog(tmp_path)) == ["a"]


def test_a_store_where_no_index_can_be_kept_is_indexed_in_memory(tmp_path):
    write_run(tmp_path, {"uid": "a", "time": 1.0})
    (tmp_path / ".index").write_text("not a folder")  # as a read-only store: mkdir fails
    catalog = Catalog(tmp_path)
    assert list(catalog) == ["a"] and catalog._index.path is None
    assert (tmp_path / ".index").read_text() == "not a folder"


def test_index_false_writes_nothing(tmp_path):
    write_run(tmp_path, {"uid": "a", "time": 1.0})
    index = RunIndex(tmp_path, persistent=False)
    index.sync()
    assert index.path is None and not (tmp_path / ".index").exists()


def test_a_run_rewritten_after_indexing_is_read_again_when_opened(tmp_path):
    path = write_run(tmp_path, {"uid": "a", "time": 1.0})
    assert Catalog(tmp_path)["a"].complete
    write_run(tmp_path, {"uid": "a", "time": 1.0}, stop=False)  # cut back, same size class
    assert not Catalog(tmp_path)["a"].complete
    assert os.path.exists(path)


def test_a_growing_run_gets_its_stop(tmp_path):
    write_run(tmp_path, {"uid": "a", "time": 1.0}, stop=False)
    catalog = Catalog(tmp_path)
    assert not catalog["a"].complete
    write_run(tmp_path, {"uid": "a", "time": 1.0})
    assert Catalog(tmp_path)["a"].complete
    assert catalog._index.db.execute("SELECT stop IS NOT NULL FROM runs").fetchone() == (1,)


def _sync_forever(directory, rounds):
    for _ in range(rounds):
        index = RunIndex(directory)
        index.sync()
        index.close()


def test_processes_syncing_while_runs_are_written_agree_with_the_files(tmp_path):
    """Two processes keep one index while a third writes runs: no row lost or doubled."""
    context = multiprocessing.get_context("spawn")
    syncers = [context.Process(target=_sync_forever, args=(str(tmp_path), 60)) for _ in range(2)]
    for process in syncers:
        process.start()
    uids = []
    for i in range(150):
        uid = f"{i:04d}"
        write_run(tmp_path, {"uid": uid, "time": float(i)}, stop=i % 3 != 0)
        uids.append(uid)
    for process in syncers:
        process.join(timeout=120)
        assert process.exitcode == 0
    catalog = Catalog(tmp_path)
    assert list(catalog) == uids
    db = catalog._index.db
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (150,)
    assert [uid for uid in uids if not catalog[uid].complete] == uids[::3]
