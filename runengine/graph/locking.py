"""Hardware locks held by an action for its whole duration (``Action(..., locks=[lock])``).

Each entry of ``locks`` is a :class:`runengine.locks.HardwareLock` or ``(lock, timeout)``; the
default timeout waits for ever (the action's own ``timeout`` still bounds it). Locks are taken
in the order given, waiting in each lock's FIFO queue, and released on every exit: done, failed,
timed out or cancelled by a failure, a pause or an abort. A wait that runs out raises
``LockTimeout`` naming the holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterable
from typing import Any

__all__ = ["held"]


def _entries(locks: Iterable) -> list[tuple[Any, float]]:
    out = []
    for entry in locks:
        if isinstance(entry, tuple):
            lock, timeout = entry
        else:
            lock, timeout = entry, math.inf
        out.append((lock, timeout))
    return out


async def _acquire(lock: Any, job: str, timeout: float) -> Any:
    """A token holding ``lock``, waiting in its FIFO queue on this loop (cancellable)."""
    owner = f"action {job!r}"
    public = getattr(lock, "acquire_async", None)
    if public is not None:
        return await public(timeout=timeout, job=job, owner=owner)
    # runengine.locks has no public coroutine yet: its loop-side queue, as its plan commands use.
    from ..locks import LockToken, check_timeout

    wait = check_timeout(timeout, lock.default_timeout)
    token = LockToken(lock, job, owner)
    token.timeout = wait
    waiter = lock._enter(token, wait, asyncio.get_running_loop())
    if waiter is not None:
        await lock._wait_async(waiter, wait)
    return token


@contextlib.asynccontextmanager
async def held(locks: Iterable, job: str) -> AsyncIterator[list]:
    """Hold every lock of ``locks`` (tokens owned by the action ``job``) inside the block."""
    if not locks:
        yield []
        return
    tokens: list = []
    try:
        for lock, timeout in _entries(locks):
            tokens.append(await _acquire(lock, job, timeout))
        yield tokens
    finally:
        for token in reversed(tokens):
            if token.valid:
                token.lock.release(token)
