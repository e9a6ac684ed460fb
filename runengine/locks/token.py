"""What a lock hands out and raises: tokens, holders, the lock errors, timeouts checked once."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import RunEngineError

if TYPE_CHECKING:
    from .lock import HardwareLock

__all__ = [
    "Acquired",
    "LockCancelled",
    "LockError",
    "LockHolder",
    "LockLost",
    "LockTimeout",
    "LockToken",
    "check_timeout",
]

HELD, YIELDING, DROPPED, RELEASED, LOST = "held", "yielding", "dropped", "released", "lost"


class LockError(RunEngineError, RuntimeError):
    """A lock used wrongly (releasing a token one does not hold), or a failed wait.

    The root of the lock errors (a RunEngineError and a RuntimeError).
    """

    def __init__(self, message: str, holder: LockHolder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class LockTimeout(LockError, TimeoutError):
    """The lock could not be had in time; ``holder`` says who had it."""


class LockLost(LockError):
    """A yield could not get the lock back in time: the token is no longer valid."""


class LockCancelled(LockError):
    """The wait was cancelled (:meth:`HardwareLock.cancel_waiting`)."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: the job, its owner (a thread or a plan), since when, who waits."""

    job: str | None
    owner: str
    since: float
    waiters: tuple[str | None, ...]

    def describe(self) -> str:
        ago = max(0.0, time.time() - self.since)
        text = f"job {self.job!r} ({self.owner}, for {ago:.1f} s"
        if self.waiters:
            text += f"; {len(self.waiters)} waiting: {', '.join(map(repr, self.waiters))}"
        return text + ")"


class LockToken:
    """Proof of holding a lock. ``valid`` while held; counted when a plan re-acquires it."""

    __slots__ = ("_key", "_thread", "count", "job", "lock", "owner", "since", "state", "timeout")

    def __init__(self, lock: HardwareLock, job: str | None, owner: str, key: Any = None) -> None:
        self.lock = lock
        self.job = job
        self.owner = owner
        self._key = key  # who the owner is, for "is this mine?" (a RunEngine for plans)
        self._thread: threading.Thread | None = None  # the holder, for release()
        self.state = RELEASED
        self.count = 0
        self.since = 0.0
        self.timeout: float | None = 0.0

    @property
    def valid(self) -> bool:
        """Whether this token holds its lock now."""
        return self.state == HELD and self.lock._token is self

    def __repr__(self) -> str:
        return f"<LockToken {self.lock.name!r} job={self.job!r} {self.state}>"


class Acquired:
    """What ``acquire_timeout`` yields: truthy if the lock was had, with the token and holder."""

    __slots__ = ("holder", "token")

    def __init__(self, token: LockToken | None, holder: LockHolder | None) -> None:
        self.token = token
        self.holder = holder

    def __bool__(self) -> bool:
        return self.token is not None and self.token.valid

    def __repr__(self) -> str:
        return f"<Acquired {bool(self)}>"


def check_timeout(timeout: float | None, default: float | None = 0.0) -> float | None:
    """Normalise a timeout: 0 = try once, a positive number of seconds, or None = for ever."""
    if timeout is None:
        timeout = default
    if timeout is None or timeout == -1 or timeout == math.inf:
        return None
    timeout = float(timeout)
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"A lock timeout must be >= 0, inf or -1 (for ever), not {timeout!r}")
    return timeout
