"""Markers and fixtures of the documentation tests (registered here: they belong to this folder)."""

from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "docs_build: builds the documentation site with Sphinx -W (deselect with "
        "-m 'not docs_build')",
    )


@pytest.fixture
def docs_redis_url(tmp_path_factory):
    """A redis-server of the page's own on a free loopback port (pages marked ``redis``)."""
    from tests.runengine.scaleout.conftest import REDIS_SERVER, RedisServer

    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (.ci/run installs it with apt-get)")
    pytest.importorskip("redis", reason="the redis extra is not installed: pip install .[redis]")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()
