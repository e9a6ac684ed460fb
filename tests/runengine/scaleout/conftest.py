"""A real redis-server on a free loopback port for the session (skipped only if not installed)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from runengine.scaleout.redis_server import REDIS_SERVER, RedisServer, free_port

__all__ = ["PROJECT_ROOT", "REDIS_SERVER", "RedisServer", "free_port"]

PROJECT_ROOT = str(Path(__file__).resolve().parents[3])  # where `python -m tests...` runs


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The session's redis-server (``.url``, ``.port``)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (.ci/run installs it with apt-get)")
    pytest.importorskip("redis", reason="the redis extra is not installed: pip install .[redis]")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()  # a test killed it
    return redis_server.url


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, which the test may kill."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (.ci/run installs it with apt-get)")
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
