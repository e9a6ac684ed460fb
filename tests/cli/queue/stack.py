"""What the queue tests need installed: redis-server, queueserver, its API and httpserver."""

from __future__ import annotations

import pytest

from runengine.scaleout.redis_server import REDIS_SERVER


def skip_without_the_stack() -> None:
    """Skip the calling test module unless the whole queue stack is installed."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)", allow_module_level=True)
    for module in ("bluesky_queueserver", "bluesky_httpserver", "bluesky_queueserver_api"):
        pytest.importorskip(module, reason="pip install .[queue]")
