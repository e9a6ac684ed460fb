"""``runengine serve``: a real tiled server on loopback, fed live; stopped and started again."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import httpx
import numpy as np
import pytest
from bluesky import plans as bp
from ophyd.sim import det

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.follower import Follower
from runengine.callbacks.store import IMAGES_DIR, RunStore, pack_record
from runengine.callbacks.store_catalog import broker

from ..callbacks.tiled_kit import free_port, start, stop

WAIT = 60.0


def _serve(directory, port, key, *options):
    argv = [sys.executable, "-m", "runengine.cli.main", "serve", "--store", str(directory),
            "--port", str(port), "--interval", "0.2", *options]  # fmt: skip
    return start(argv, port, env={"TILED_SINGLE_USER_API_KEY": key}, stdout=subprocess.PIPE)


def _until(condition, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        try:
            value = condition()
            if value:
                return value
        except (KeyError, IndexError):
            pass
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        time.sleep(0.2)


def _growing_run(path, n_events):
    uid, desc = str(uuid.uuid4()), str(uuid.uuid4())
    head = [
        ("start", {"uid": uid, "time": time.time(), "scan_id": 99, "plan_name": "live"}),
        ("descriptor", {"uid": desc, "run_start": uid, "time": time.time(), "name": "primary",
                        "data_keys": {"det": {"dtype": "number", "shape": [], "source": "x"}},
                        "configuration": {}, "object_keys": {"det": ["det"]}}),
    ]  # fmt: skip
    events = [("event", {"uid": str(uuid.uuid4()), "descriptor": desc, "time": time.time(),
                         "seq_num": n + 1, "data": {"det": float(n)},
                         "timestamps": {"det": time.time()}, "filled": {}})
              for n in range(n_events)]  # fmt: skip
    stop_doc = (
        "stop",
        {
            "uid": str(uuid.uuid4()),
            "run_start": uid,
            "time": time.time(),
            "exit_status": "success",
            "num_events": {"primary": n_events},
        },
    )
    return uid, head, events, stop_doc


def _append(path, records):
    with open(path, "ab") as file:
        file.write(b"".join(pack_record(name, doc) for name, doc in records))


def _port_closed(port) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
    except OSError:
        return True
    return False


def test_serve_exports_live_survives_a_restart_and_stops_by_signal(tmp_path):
    key, port = secrets.token_hex(16), free_port()
    url = f"http://127.0.0.1:{port}/api/v1"
    RE = RunEngine({}, context_managers=[])
    RunStore(tmp_path).subscribe(RE)
    uids = [RE(bp.count([det], 3), sample="Fe")[0]]
    server = _serve(tmp_path, port, key)
    try:
        db = broker(uri=url, api_key=key)
        uids += RE(bp.count([det], 5), sample="Cu")
        _until(lambda: len(list(db())) == 2, "both runs in tiled")
        ours = Catalog(tmp_path)
        for uid in uids:
            assert db[uid].table()["det"].tolist() == ours[uid].table()["det"].tolist()
        live_uid, head, events, stop_doc = _growing_run(tmp_path, 6)
        live = tmp_path / f"{live_uid}.msgpack"
        _append(live, head + events[:3])  # a run another process is still writing
        _until(lambda: len(db.v2[live_uid]["primary"].read()["det"]) == 3, "the live rows")
        offline_client = db.v2  # made while the server is up
    finally:
        assert stop(server) == 0  # Ctrl+C: the follower stops, then tiled
    assert b"tiled stopped" in server.stdout.read()
    assert _port_closed(port)

    report = Follower(tmp_path, offline_client, target="offline-check").step()
    assert report.offline is not None and report.failed == {} and report.exported == []

    _append(live, [*events[3:], stop_doc])  # written while nothing served
    uids += RE(bp.count([det], 2), sample="Zn")
    server = _serve(tmp_path, port, key)
    try:
        db = broker(uri=url, api_key=key)
        _until(lambda: len(list(db())) == 4 and db[live_uid].stop is not None, "all four runs")
        found = [h.start["uid"] for h in db()]
        assert sorted(found) == sorted([*uids, live_uid])  # each once
        assert db[live_uid].table()["det"].tolist() == [float(n) for n in range(6)]
    finally:
        assert stop(server, signal.SIGTERM) == 0
    assert _port_closed(port)


@pytest.mark.integration
def test_served_images_come_from_the_store_and_readable_folders_only(beamline, tmp_path):
    key, port = secrets.token_hex(16), free_port()
    store, elsewhere, hidden = tmp_path / "runs", tmp_path / "elsewhere", tmp_path / "hidden"
    RE = RunEngine({}, context_managers=[])
    RunStore(store).subscribe(RE)
    uids = []
    try:
        for folder in (store / IMAGES_DIR, elsewhere, hidden):
            beamline.cam.write_path = folder
            uids += RE(bp.count([beamline.cam], 2))
    finally:
        beamline.cam.write_path = None
    server = _serve(store, port, key, "--readable", str(elsewhere))
    try:
        db = broker(uri=f"http://127.0.0.1:{port}/api/v1", api_key=key)
        _until(lambda: len(list(db())) == 3, "the three runs in tiled")
        ours = Catalog(store)
        for uid in uids[:2]:
            images = db.v2[uid]["primary"].read()["cam_image"].values
            np.testing.assert_array_equal(images, ours[uid].primary.read()["cam_image"])
        with pytest.raises(httpx.HTTPStatusError, match=r"500 .*/cam_image"):
            db.v2[uids[2]]["primary"].read()  # tiled refuses files outside its folders
    finally:
        assert stop(server) == 0


def test_ctrl_c_the_moment_tiled_answers_still_stops_cleanly(tmp_path):
    for _ in range(2):  # the follower may not even exist yet when the press lands
        port = free_port()
        server = _serve(tmp_path, port, secrets.token_hex(16))
        assert stop(server) == 0
        assert b"tiled stopped" in server.stdout.read() and _port_closed(port)


def test_index_command_brings_the_index_up_to_date(tmp_path):
    RE = RunEngine({}, context_managers=[])
    RunStore(tmp_path).subscribe(RE)
    RE(bp.count([det], 1))
    done = subprocess.run(
        [sys.executable, "-m", "runengine.cli.main", "index", "--store", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "indexed 1 changed files" in done.stdout
    assert (tmp_path / ".index" / "runs.sqlite").is_file()
