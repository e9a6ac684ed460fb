"""StoredMetadata: RE.md kept in the store, across processes, crash-safe, scan_ids unique."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from bluesky import plans as bp

from runengine import RunEngine
from runengine.callbacks.metadata import METADATA_FILE, StoredMetadata
from runengine.callbacks.store import StoreError
from tests.conftest import leave_idle


def test_values_survive_a_new_instance_as_a_new_process_would_see_them(tmp_path):
    md = StoredMetadata(tmp_path, {"owner": "me"})
    md["sample"] = {"name": "Fe", "mass": 1.5}
    md["positions"] = np.arange(3.0)
    del md["owner"]
    again = StoredMetadata(tmp_path, {"owner": "someone else"})  # initial: only what is missing
    assert again["sample"] == {"name": "Fe", "mass": 1.5}
    assert list(again["positions"]) == [0.0, 1.0, 2.0]
    assert again["owner"] == "someone else"
    md["beamline"] = "X1"  # the first one writes: the second sees it on its next read
    assert again["beamline"] == "X1" and set(again) == {"sample", "positions", "owner", "beamline"}


def test_a_value_the_store_cannot_keep_is_refused_and_not_kept(tmp_path):
    md = StoredMetadata(tmp_path)
    with pytest.raises(StoreError, match="cannot be stored"):
        md["handle"] = object()
    assert "handle" not in md and "handle" not in StoredMetadata(tmp_path)


def test_scan_id_carries_over_to_the_next_engine(tmp_path):
    for expected in ([1, 2], [3, 4]):
        md = StoredMetadata(tmp_path)
        RE = RunEngine(md, context_managers=[], scan_id_source=md.next_scan_id)
        try:
            docs = []
            RE.subscribe(lambda name, doc, docs=docs: docs.append(doc["scan_id"]), "start")
            RE(bp.count([]))
            RE(bp.count([]))
            assert docs == expected
        finally:
            leave_idle(RE)
    assert StoredMetadata(tmp_path)["scan_id"] == 4


_TAKER = """
import json, sys
from runengine.callbacks.metadata import StoredMetadata
md = StoredMetadata(sys.argv[1])
print(json.dumps([md.next_scan_id() for _ in range(int(sys.argv[2]))]))
"""


def test_processes_sharing_a_store_never_take_one_scan_id_twice(tmp_path):
    takers = [
        subprocess.Popen(
            [sys.executable, "-c", _TAKER, str(tmp_path), "40"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    taken = [json.loads(p.communicate(timeout=120)[0]) for p in takers]
    everything = sorted(scan_id for ids in taken for scan_id in ids)
    assert everything == list(range(1, 121))
    assert StoredMetadata(tmp_path)["scan_id"] == 120


_WRITER = """
import sys
from runengine.callbacks.metadata import StoredMetadata
md = StoredMetadata(sys.argv[1])
md["counter"] = 0
print("ready", flush=True)  # one whole version is on disk
i = 0
while True:
    i += 1
    md["counter"] = i
    md["payload"] = "x" * (i % 5000)
"""


@pytest.mark.parametrize("trial", range(3))
def test_kill_9_while_writing_leaves_the_last_whole_version(tmp_path, trial):
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "ready"
    time.sleep(0.05 + 0.1 * trial)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(30)
    md = StoredMetadata(tmp_path)
    assert md["counter"] >= 0  # a whole version: read without error, with its keys
    assert (tmp_path / METADATA_FILE).is_file()
