"""The follower: each run into tiled once, growing runs streamed, a dead follower replaced."""

from __future__ import annotations

import uuid

import pytest
from bluesky import plans as bp
from ophyd.sim import det, motor

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.follower import Follower
from runengine.callbacks.store import RunStore, pack_record

from .tiled_kit import assert_same_table


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


def _target() -> str:
    return f"test-{uuid.uuid4()}"  # the shared catalog, a target of this test's own


def _run_records(n_events: int, uid: str | None = None) -> list[tuple[str, dict]]:
    uid = uid or str(uuid.uuid4())
    desc = str(uuid.uuid4())
    records = [
        ("start", {"uid": uid, "time": 1.7e9, "scan_id": 1, "plan_name": "count"}),
        ("descriptor", {"uid": desc, "run_start": uid, "time": 1.7e9, "name": "primary",
                        "data_keys": {"det": {"dtype": "number", "shape": [], "source": "x"}},
                        "configuration": {}, "object_keys": {"det": ["det"]}}),
    ]  # fmt: skip
    for n in range(n_events):
        records.append(("event", {"uid": str(uuid.uuid4()), "descriptor": desc,
                                  "time": 1.7e9 + n, "seq_num": n + 1,
                                  "data": {"det": float(n)}, "timestamps": {"det": 1.7e9 + n},
                                  "filled": {}}))  # fmt: skip
    stop = {"uid": str(uuid.uuid4()), "run_start": uid, "time": 1.7e9 + 99,
            "exit_status": "success", "num_events": {"primary": n_events}}  # fmt: skip
    records.append(("stop", stop))
    return records


def _write(path, records) -> None:
    with open(path, "ab") as file:
        file.write(b"".join(pack_record(name, doc) for name, doc in records))


def test_runs_go_into_tiled_once_and_read_back_the_same(RE, tmp_path, local_client):
    RunStore(tmp_path).subscribe(RE)
    uids = [RE(bp.count([det], 4))[0], RE(bp.scan([det], motor, -1, 1, 6), sample="Fe")[0]]
    target = _target()
    follower = Follower(tmp_path, local_client, target=target)
    report = follower.step()
    assert report.exported == uids and report.failed == {} and report.offline is None
    assert follower.step().exported == []  # nothing new
    again = Follower(tmp_path, local_client, target=target)  # another process, later
    assert again.step().exported == [] and again.exported() == {uid: True for uid in uids}
    catalog = Catalog(tmp_path)
    for uid in uids:
        theirs = local_client[uid]
        assert theirs.metadata["start"] == catalog[uid].start
        assert theirs.metadata["stop"]["uid"] == catalog[uid].stop["uid"]
        assert_same_table(catalog[uid].primary.read(), theirs["primary"].read())


def test_a_growing_run_is_streamed_and_finished_when_its_stop_arrives(
    tmp_path, local_client, monkeypatch
):
    from tiled.client.dataframe import DataFrameClient

    appends = []  # the table writes: one per step of a growing run, not one per event
    append = DataFrameClient.append_partition
    monkeypatch.setattr(
        DataFrameClient, "append_partition",
        lambda self, *a, **k: appends.append(len(a[0])) or append(self, *a, **k),
    )  # fmt: skip
    records = _run_records(10)
    uid, path = records[0][1]["uid"], tmp_path / f"{records[0][1]['uid']}.msgpack"
    _write(path, records[:6])  # start, descriptor, four events
    follower = Follower(tmp_path, local_client, target=_target())
    report = follower.step()
    assert report.exported == [] and report.documents == 6
    assert len(local_client[uid]["primary"].read()["det"]) == 4  # live: the rows so far
    assert appends == [4]
    _write(path, records[6:9])
    assert follower.step().documents == 3 and appends == [4, 3]
    assert follower.step().documents == 0 and appends == [4, 3]  # nothing new: no write
    _write(path, records[9:])
    assert follower.step().exported == [uid]
    rows = local_client[uid]["primary"].read()["det"].values.tolist()
    assert rows == [float(n) for n in range(10)]  # each once, in order
    assert follower.exported() == {uid: True}


def test_a_run_half_exported_by_a_follower_that_died_is_exported_again_whole(
    tmp_path, local_client
):
    records = _run_records(8)
    uid, path = records[0][1]["uid"], tmp_path / f"{records[0][1]['uid']}.msgpack"
    _write(path, records[:5])
    target = _target()
    Follower(tmp_path, local_client, target=target).step()  # then its process dies
    assert len(local_client[uid]["primary"].read()["det"]) == 3
    _write(path, records[5:])
    successor = Follower(tmp_path, local_client, target=target)
    assert successor.step().exported == [uid]
    rows = local_client[uid]["primary"].read()["det"].values.tolist()
    assert rows == [float(n) for n in range(8)]  # not the first three twice


def test_a_run_tiled_refuses_is_recorded_and_the_others_go_on(tmp_path, local_client):
    bad = _run_records(3)
    bad[3] = ("event", {**bad[3][1], "descriptor": "no-such-descriptor"})
    good = _run_records(2)
    good[0][1]["time"] += 10  # after the bad one
    _write(tmp_path / "bad.msgpack", bad)
    _write(tmp_path / "good.msgpack", good)
    follower = Follower(tmp_path, local_client, target=_target())
    report = follower.step()
    assert report.exported == [good[0][1]["uid"]]
    assert list(report.failed) == [bad[0][1]["uid"]]
    assert "no-such-descriptor" in report.failed[bad[0][1]["uid"]]
    assert follower.step().failed == {}  # not retried while the file is unchanged
    assert follower.exported() == {good[0][1]["uid"]: True}


def test_without_a_client_the_follower_only_indexes(tmp_path):
    _write(tmp_path / "a.msgpack", _run_records(1))
    follower = Follower(tmp_path)
    assert follower.step().indexed == 1 and follower.step().indexed == 0
    assert len(Catalog(tmp_path)) == 1
