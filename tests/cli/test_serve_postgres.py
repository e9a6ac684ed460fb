"""``runengine serve --catalog postgresql://...``: the store's runs in a PostgreSQL-backed tiled
catalog (a real PostgreSQL on loopback, started by the test and stopped by PID)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from bluesky import plans as bp
from ophyd.sim import det, motor

from runengine import RunEngine
from runengine.callbacks.catalog import Catalog
from runengine.callbacks.store import RunStore
from runengine.callbacks.store_catalog import catalog_args, catalog_target

from ..callbacks.tiled_kit import free_port, stop
from .test_serve import _serve, _until


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    assert found[-1], f"no PostgreSQL {name}: `make system-deps` installs Debian's postgresql"
    return found[-1]


@pytest.fixture
def postgres():
    """``postgresql://postgres@127.0.0.1:<port>/postgres`` of a new cluster, removed after.

    Its folder is made in the system's temporary folder, which the ``postgres`` user (the
    server's, when the tests run as root) can reach; pytest's own is the test user's only."""
    home = Path(tempfile.mkdtemp(prefix="runengine-pg-"))
    try:
        yield from _cluster(home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _cluster(home: Path):
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: as its own user, then
        user = "postgres"
        os.chown(home, pwd.getpwnam(user).pw_uid, -1)
    subprocess.run(
        [_postgres_bin("initdb"), "-D", str(home / "data"), "-A", "trust", "-U", "postgres"],
        user=user, check=True, capture_output=True, cwd=home,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [_postgres_bin("postgres"), "-D", str(home / "data"), "-h", "127.0.0.1",
         "-p", str(port), "-k", str(home)],
        user=user, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(
            [_postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
        ).returncode:
            assert server.poll() is None and time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.1)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown
        server.wait(30)


def test_the_catalog_in_postgresql_holds_each_run_once_and_reads_back(postgres, tmp_path):
    from runengine.callbacks import broker

    key, port = "k" * 32, free_port()
    store = tmp_path / "runs"
    RE = RunEngine({}, context_managers=[])
    RunStore(store).subscribe(RE)
    uids = [RE(bp.scan([det], motor, -1, 1, 5), sample="Fe")[0]]
    server = _serve(store, port, key, "--catalog", postgres)
    try:
        db = broker(uri=f"http://127.0.0.1:{port}/api/v1", api_key=key)
        uids += RE(bp.count([det], 3), sample="Cu")
        _until(lambda: len(list(db())) == 2, "both runs in the PostgreSQL catalog")
        ours = Catalog(store)
        for uid in uids:
            assert db[uid].table()["det"].tolist() == ours[uid].table()["det"].tolist()
        assert [h.start["uid"] for h in db(sample="Cu")] == uids[1:]
    finally:
        assert stop(server) == 0
    assert not (store / ".tiled" / "catalog.db").exists()  # not the SQLite one
    server = _serve(store, port, key, "--catalog", postgres)
    try:  # a second server over the same database: the runs are there, not exported twice
        db = broker(uri=f"http://127.0.0.1:{port}/api/v1", api_key=key)
        time.sleep(1.0)  # a few follower steps
        assert sorted(h.start["uid"] for h in db()) == sorted(uids)
    finally:
        assert stop(server) == 0


def test_a_catalog_uri_that_is_not_postgresql_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"catalog 'mysql://x/y': give a postgresql://"):
        catalog_args(tmp_path, catalog="mysql://x/y")
    done = subprocess.run(
        [sys.executable, "-m", "runengine.cli.main", "serve", "--store", str(tmp_path),
         "--catalog", "mysql://x/y"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "mysql://x/y" in done.stderr
    assert not (tmp_path / ".tiled" / "api_key").exists()  # refused before anything was made
    assert catalog_target("postgresql://bob:secret@db:5432/runs") == "postgresql://bob@db:5432/runs"
