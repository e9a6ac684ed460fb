"""The tiled path: a live mirror (TiledWriter) and an export from our store read back the same."""

from __future__ import annotations

import pytest
from bluesky import plans as bp
from ophyd import Signal
from ophyd.sim import det, motor

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.store import RunStore, pack_record

from .tiled_kit import assert_same_table

pytest.importorskip("tiled.server")
pytest.importorskip("pyarrow")

from runengine.callbacks import tiled_mirror


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


@pytest.mark.parametrize("where", ["local_client", "server_client"])
def test_live_mirror_equals_the_store(RE, tmp_path, request, where):
    client = request.getfixturevalue(where)
    RunStore(tmp_path).subscribe(RE)
    tiled_mirror.mirror(RE, client)
    # Scalars only: TiledWriter refuses 2-d array rows, and 1-d ones read back as strings.
    gain = Signal(name="gain", value=3)
    (uid,) = RE(bp.scan([det, gain], motor, -1, 1, 7), sample="Fe", where=where)
    ours = Catalog(tmp_path)[uid]
    theirs = client[uid]
    assert theirs.metadata["start"]["sample"] == "Fe"
    assert theirs.metadata["stop"]["exit_status"] == ours.metadata["stop"]["exit_status"]
    assert list(theirs) == list(ours) == ["primary"]
    assert_same_table(ours.primary.read(), theirs["primary"].read())
    assert set(ours.primary.read().data_vars) == {
        "seq_num",
        "det",
        "gain",
        "motor",
        "motor_setpoint",
    }


def test_export_from_the_store_equals_the_store(RE, tmp_path, local_client):
    RunStore(tmp_path).subscribe(RE)
    uids = [RE(bp.count([det], n), export=True)[0] for n in (3, 5)]
    catalog = Catalog(tmp_path)
    assert tiled_mirror.export_to_tiled(catalog, local_client) == uids
    assert tiled_mirror.export_to_tiled(catalog, local_client) == []  # already there
    for uid in uids:
        theirs = local_client[uid]
        assert theirs.metadata["stop"]["num_events"] == catalog[uid].metadata["stop"]["num_events"]
        assert_same_table(catalog[uid].primary.read(), theirs["primary"].read())
    from tiled.queries import Key

    found = local_client.search(Key("start.export") == True)  # noqa: E712
    assert set(uids) <= set(found)


def test_export_of_a_run_cut_short(RE, tmp_path, local_client):
    RunStore(tmp_path).subscribe(RE)
    (uid,) = RE(bp.count([det], 20))
    path = tmp_path / f"{uid}.msgpack"
    run = Catalog(tmp_path)[uid]
    stop_size = len(path.read_bytes()) - sum(
        len(pack_record(n, d)) for n, d in list(run.documents())[:-1]
    )
    path.write_bytes(path.read_bytes()[:-stop_size])  # as if the process died before stop
    run = Catalog(tmp_path)[uid]
    assert not run.complete
    assert tiled_mirror.export_to_tiled(run, local_client) == [uid]
    theirs = local_client[uid]
    assert "stop" not in theirs.metadata or theirs.metadata["stop"] is None
    assert_same_table(run.primary.read(), theirs["primary"].read())
