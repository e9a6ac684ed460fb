"""Two RE Managers on loopback for the module: one whose ``RE`` is bluesky's, one ours.

Both use one redis-server (the scale-out tests' :class:`RedisServer`, on a free port, each
manager under its own key prefix). Each manager is one process group; the finalizer stops both
by PID and group and fails the module's teardown if any process had to be killed.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.runengine.queueserver.manager import ENGINES, QueueServer
from tests.runengine.scaleout.conftest import REDIS_SERVER, RedisServer

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def qs_redis(tmp_path_factory):
    """A redis-server of the module's own, on a free loopback port."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make system-deps installs it)")
    server = RedisServer(tmp_path_factory.mktemp("qs-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def queue_servers(qs_redis, tmp_path_factory):
    """``{"bluesky": QueueServer, "runengine": QueueServer}``, started side by side."""
    pytest.importorskip("bluesky_queueserver", reason="pip install .[test]")
    pytest.importorskip("bluesky_queueserver_api", reason="pip install .[test]")
    servers = {
        engine: QueueServer(engine, tmp_path_factory.mktemp(f"qs-{engine}"), qs_redis.port)
        for engine in ENGINES
    }
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            for future in [pool.submit(server.start) for server in servers.values()]:
                future.result()
        yield servers
    finally:
        left = {engine: server.stop() for engine, server in servers.items()}
        still = {engine: server.processes() for engine, server in servers.items()}
        assert not any(left.values()), f"processes had to be killed: {left}"
        assert not any(still.values()), f"processes left running: {still}"
