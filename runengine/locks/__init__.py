"""Hardware locks: OCS ``TimeoutLock``'s user-facing semantics, without its sharp edges.

A :class:`HardwareLock` is held through a :class:`LockToken`; only the token's holder releases
or yields it, so a failed ``release_and_acquire`` can no longer lead to someone else's lock being
released (OCS's Pitfall B). Waiters are served first come, first served, each acquire has a
single deadline, and a wait is cancellable. Plain threads use the blocking methods; plans use
the ``acquire_lock``/``yield_lock``/``release_lock`` messages (:mod:`.commands`, loaded on first
use) and :class:`SuspendWhileLocked` suspends plans while someone else holds a lock.

``timeout``: None uses ``default_timeout``; 0 tries once; > 0 waits at most that long in total;
``math.inf`` or -1 waits for ever; any other negative number or NaN raises ValueError.
"""

from __future__ import annotations

from ..suspenders.locked import SuspendWhileLocked  # imports nothing of locks at import time
from .lock import HardwareLock
from .token import (
    Acquired,
    LockCancelled,
    LockError,
    LockHolder,
    LockLost,
    LockTimeout,
    LockToken,
    check_timeout,
)

__all__ = [
    "Acquired",
    "HardwareLock",
    "LockCancelled",
    "LockError",
    "LockHolder",
    "LockLost",
    "LockTimeout",
    "LockToken",
    "SuspendWhileLocked",
    "check_timeout",
]
