"""The device side of fencing: refuse a fencing number older than the newest one seen.

A :class:`~runengine.scaleout.lock.RedisLock` hands out a larger fencing number with each
grant (``lock.fence``); a device that passes every write through :class:`FenceGuard` refuses
the write of a holder that lost the lock and goes on regardless (:class:`StaleFence`).
"""

from __future__ import annotations

import threading
from typing import Any

from ..locks import LockLost
from . import lock_scripts as lua
from .connection import ScaleoutError, connect

__all__ = ["FenceGuard", "StaleFence"]


class StaleFence(LockLost, ScaleoutError):
    """A device refused a fencing number older than the newest it has seen."""


class FenceGuard:
    """The device side of fencing: refuse a fence older than the newest one seen.

    Kept in Redis under ``key`` (shared by every process talking to the device), or in this
    process when ``url`` is None.
    """

    def __init__(self, key: str, url: str | Any | None = None, socket_timeout: float = 1.0):
        self.key = key
        self._seen = 0
        self._mutex = threading.Lock()
        self.redis = None if url is None else connect(url, socket_timeout)
        self._admit = None if self.redis is None else self.redis.register_script(lua.ADMIT)

    def admit(self, fence: int | None) -> int:
        """Let ``fence`` through (returned) or raise :class:`StaleFence`."""
        if fence is None:
            raise StaleFence(f"{self.key}: no fencing number: the caller holds no lock")
        if self._admit is not None:
            ok = self._admit(keys=[self.key], args=[int(fence)])
        else:
            with self._mutex:
                ok = fence >= self._seen
                self._seen = max(self._seen, fence)
        if not ok:
            raise StaleFence(f"{self.key}: fence {fence} is older than the newest seen")
        return fence
