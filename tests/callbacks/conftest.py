"""Fixtures of the callbacks tests: tiled catalogs, made once per session (seconds each)."""

from __future__ import annotations

import secrets

import pytest

from .tiled_kit import free_port, start, stop, tiled_server_argv


@pytest.fixture(scope="session")
def local_client(tmp_path_factory):
    """An embedded SQLite tiled catalog, in-process (creating one costs seconds)."""
    pytest.importorskip("tiled.server")
    from runengine.callbacks import tiled_mirror

    return tiled_mirror.local_client(tmp_path_factory.mktemp("tiled_local"))


@pytest.fixture(scope="session")
def server_client(tmp_path_factory):
    """A tiled server process on 127.0.0.1 (a free port), started here, stopped after.

    A process of its own: tiled apps built in one process share one single-user API key.
    """
    pytest.importorskip("tiled.server")
    from tiled.client import from_uri

    port, key = free_port(), secrets.token_hex(16)
    server = start([*tiled_server_argv(port), "--api-key", key], port,
                   cwd=tmp_path_factory.mktemp("tiled_server"))  # fmt: skip
    try:
        yield from_uri(f"http://127.0.0.1:{port}/api/v1", api_key=key)
    finally:
        stop(server)
