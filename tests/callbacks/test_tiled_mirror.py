"""The tiled path: a live mirror (TiledWriter) and an export from our store read back the same."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from bluesky import plans as bp
from ophyd import Signal
from ophyd.sim import det, motor

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.store import RunStore, pack_record

pytest.importorskip("tiled.server")
pytest.importorskip("pyarrow")

from runengine.callbacks import tiled_mirror


@pytest.fixture(scope="session")
def local_client(tmp_path_factory):
    """An embedded SQLite tiled catalog, in-process (creating one costs seconds)."""
    return tiled_mirror.local_client(tmp_path_factory.mktemp("tiled_local"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server_client(tmp_path_factory):
    """A tiled server process on 127.0.0.1 (a free port), started here, stopped after.

    A process of its own: tiled apps built in one process share one single-user API key.
    """
    from tiled.client import from_uri

    port, key = free_port(), secrets.token_hex(16)
    serve = ["serve", "catalog", "--temp", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", "tiled", *serve, "--api-key", key],
        cwd=tmp_path_factory.mktemp("tiled_server"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "the tiled server exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the tiled server did not start in 60 s"
                time.sleep(0.2)
        yield from_uri(f"http://127.0.0.1:{port}/api/v1", api_key=key)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


def assert_same_table(ours, theirs) -> None:
    """Our stream's Dataset against tiled's: same rows, times, seq_nums and data.

    bluesky-tiled-plugins' run client (databroker's) reads a stream without ``seq_num``;
    the plain tiled table has it."""
    assert ours.sizes["time"] == len(theirs["time"])
    if "seq_num" in theirs:
        np.testing.assert_array_equal(ours["seq_num"].values, np.asarray(theirs["seq_num"]))
    np.testing.assert_allclose(ours["time"].values, np.asarray(theirs["time"]), rtol=0, atol=0)
    for key in ours.data_vars:
        if key == "seq_num":
            continue  # compared above where tiled gives it
        values = theirs[key].values
        if values.dtype == object:  # rows of arrays
            values = np.stack(list(values))
        np.testing.assert_array_equal(ours[key].values, values, err_msg=key)


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
