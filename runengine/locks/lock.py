"""HardwareLock: one queue of waiters, served first come, first served, for threads and plans.

A thread waits on an event, a plan on a future of the engine's loop (:mod:`.commands`); each
waiter has one deadline and can be withdrawn, and only a token's holder releases or yields it.
What the timeouts mean is said in :mod:`runengine.locks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .token import (
    HELD,
    LOST,
    RELEASED,
    YIELDING,
    Acquired,
    LockCancelled,
    LockError,
    LockHolder,
    LockLost,
    LockTimeout,
    LockToken,
    check_timeout,
)

__all__ = ["HardwareLock"]

logger = logging.getLogger(__name__)


class _Waiter:
    __slots__ = ("cancelled", "event", "future", "granted", "loop", "token")

    def __init__(self, token: LockToken, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.token = token
        self.granted = False
        self.cancelled = False
        self.loop = loop
        if loop is None:
            self.event: threading.Event | None = threading.Event()
            self.future: asyncio.Future | None = None
        else:
            self.event = None
            self.future = loop.create_future()

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()
        else:
            self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class HardwareLock:
    """A lock on a piece of hardware, for threads (OCS Tasks/Processes) and plans alike.

    ``release_on_pause``: a plan holding it lets it go while paused or suspended and takes it
    back before its replay goes on.
    """

    def __init__(
        self,
        name: str = "lock",
        default_timeout: float | None = 0.0,
        release_on_pause: bool = False,
    ) -> None:
        check_timeout(default_timeout)
        self.name = name
        self.default_timeout = default_timeout
        self.release_on_pause = release_on_pause
        self._mutex = threading.Lock()
        self._token: LockToken | None = None
        self._queue: deque[_Waiter] = deque()
        self._subscribers: list[Callable[[LockToken | None], None]] = []
        self._notifying = threading.RLock()

    def __repr__(self) -> str:
        return f"HardwareLock({self.name!r})"

    # ---- what anyone may look at ------------------------------------------------------------
    @property
    def holder(self) -> LockHolder | None:
        """Who holds the lock now (None if free)."""
        with self._mutex:
            return self._holder()

    @property
    def job(self) -> str | None:
        """The holder's job, or None (OCS ``lock.job``)."""
        token = self._token
        return token.job if token is not None else None

    @property
    def locked(self) -> bool:
        return self._token is not None

    def _holder(self) -> LockHolder | None:
        token = self._token
        if token is None:
            return None
        waiters = tuple(w.token.job for w in self._queue)
        return LockHolder(token.job, token.owner, token.since, waiters)

    def _timeout_error(self, token: LockToken, wait: float | None) -> LockTimeout:
        holder = self._holder()
        who = holder.describe() if holder is not None else "others waiting before it"
        return LockTimeout(
            f"Lock {self.name!r}: job {token.job!r} could not get it within {wait} s; "
            f"held by {who}",
            holder,
        )

    # ---- the queue (callers hold self._mutex) -----------------------------------------------
    def _grant(self, token: LockToken) -> None:
        self._token = token
        token.state = HELD
        token.since = time.time()

    def _pass_on(self) -> _Waiter | None:
        """The lock is free: give it to the first waiter, if any (returned, to be woken)."""
        self._token = None
        if not self._queue:
            return None
        waiter = self._queue.popleft()
        waiter.granted = True
        self._grant(waiter.token)
        return waiter

    def _enter(self, token: LockToken, wait: float | None, loop: Any = None) -> _Waiter | None:
        """Take the lock now (None) or queue a waiter; LockTimeout if ``wait`` is 0."""
        with self._mutex:
            if self._token is None and not self._queue:
                self._grant(token)
                waiter = None
            elif wait == 0:
                raise self._timeout_error(token, wait)
            else:
                waiter = _Waiter(token, loop)
                self._queue.append(waiter)
        if waiter is None:
            self._changed()
        return waiter

    def _withdraw(self, waiter: _Waiter) -> bool:
        """Stop waiting; True if the lock was granted meanwhile (the waiter then holds it)."""
        with self._mutex:
            if waiter.granted:
                return True
            with contextlib.suppress(ValueError):
                self._queue.remove(waiter)
            return False

    def _let_go(self, token: LockToken, state: str) -> None:
        with self._mutex:
            if self._token is not token:
                token.state = state  # not holding (yielding or dropped): nothing to pass on
                return
            token.state = state
            waiter = self._pass_on()
        if waiter is not None:
            waiter.wake()
        self._changed()

    def _owned(self, token: LockToken | None, what: str) -> LockToken:
        if token is None:
            token = self._token
            if token is None or token._thread is not threading.current_thread():
                holder = self._holder()
                raise LockError(
                    f"Cannot {what} lock {self.name!r}: this thread does not hold it "
                    f"(held by {holder.describe() if holder else 'nobody'})",
                    holder,
                )
        elif not token.valid:
            raise LockError(f"Cannot {what} lock {self.name!r} with {token!r}: not held")
        return token

    # ---- threads ----------------------------------------------------------------------------
    def acquire_token(
        self, timeout: float | None = None, job: str | None = None, *, owner: str | None = None
    ) -> LockToken:
        """Wait for the lock (see the module's timeout rules); the token that holds it.

        Raises LockTimeout naming the holder, or LockCancelled.
        """
        wait = check_timeout(timeout, self.default_timeout)
        me = threading.current_thread()
        token = LockToken(self, job, owner or f"thread {me.name}")
        token._thread, token.timeout = me, wait
        current = self._token
        if current is not None and current._thread is me:
            wait = 0  # it would wait for itself: not reentrant, fail at once (OCS returns False)
        waiter = self._enter(token, wait)
        if waiter is not None:
            self._wait_thread(waiter, wait)
        return token

    def _wait_thread(self, waiter: _Waiter, wait: float | None) -> None:
        waiter.event.wait(wait)
        self._outcome(waiter, wait)

    def _outcome(self, waiter: _Waiter, wait: float | None) -> None:
        """After a wait: return if granted, else raise LockCancelled or LockTimeout."""
        if waiter.cancelled:
            raise LockCancelled(f"Lock {self.name!r}: {waiter.token.job!r} stopped waiting")
        if not self._withdraw(waiter):
            with self._mutex:
                raise self._timeout_error(waiter.token, wait)

    def acquire(self, timeout: float | None = None, job: str | None = None) -> bool:
        """OCS-style: True if the calling thread now holds the lock, else False."""
        try:
            self.acquire_token(timeout, job)
        except LockError:
            return False
        return True

    def release(self, token: LockToken | None = None) -> None:
        """Release ``token`` (from any thread), or the lock the calling thread holds.

        LockError if the token, or this thread, does not hold it.
        """
        token = self._owned(token, "release")
        token.count = 0
        self._let_go(token, RELEASED)

    def yield_token(self, token: LockToken | None = None, timeout: float | None = None) -> None:
        """Let every waiter queued now have the lock, then take it back within ``timeout``.

        Free with nobody waiting. On failure the token is lost (LockLost); with timeout 0 and
        someone waiting that is certain (OCS's Pitfall A).
        """
        token = self._owned(token, "yield")
        wait = check_timeout(timeout, self.default_timeout)
        waiter = self._yield(token, None)
        if waiter is None:
            return
        try:
            self._wait_thread(waiter, wait)
        except LockError as err:
            token.state = LOST
            raise LockLost(
                f"Lock {self.name!r} lost by job {token.job!r}: {err}", err.holder
            ) from None

    def _yield(self, token: LockToken, loop: Any) -> _Waiter | None:
        with self._mutex:
            if not self._queue:
                return None
            token.state = YIELDING
            mine = _Waiter(token, loop)
            self._queue.append(mine)
            first = self._pass_on()
        first.wake()
        self._changed()
        return mine

    def release_and_acquire(self, timeout: float | None = None) -> bool:
        """OCS-style yield for the calling thread's lock: False if it was lost (not held now)."""
        try:
            self.yield_token(None, timeout)
        except LockLost:
            return False
        return True

    @contextlib.contextmanager
    def acquire_timeout(
        self, timeout: float | None = None, job: str | None = "unnamed"
    ) -> Iterator[Acquired]:
        """``with lock.acquire_timeout(3, job='print') as acquired: if not acquired: ...``

        Releases on leaving only if its token still holds the lock.
        """
        try:
            token: LockToken | None = self.acquire_token(timeout, job)
        except LockError:
            token = None
        result = Acquired(token, self.holder)
        try:
            yield result
        finally:
            if token is not None and token.valid:
                self.release(token)

    def cancel_waiting(self, job: str | None = None) -> int:
        """Cancel the waits of ``job`` (every wait if None); how many were cancelled."""
        with self._mutex:
            gone = [w for w in self._queue if job is None or w.token.job == job]
            for waiter in gone:
                self._queue.remove(waiter)
                waiter.cancelled = True
        for waiter in gone:
            if waiter.event is not None:
                waiter.event.set()
            else:
                waiter.loop.call_soon_threadsafe(_resolve, waiter.future)
        if gone:
            self._changed()
        return len(gone)

    # ---- asyncio (the RunEngine's loop) -----------------------------------------------------
    async def _wait_async(self, waiter: _Waiter, wait: float | None) -> None:
        """Wait on the loop for ``waiter``; on any failure it is out of the queue."""
        try:
            await asyncio.wait((waiter.future,), timeout=wait)
        except BaseException:
            if self._withdraw(waiter):
                self._let_go(waiter.token, RELEASED)  # granted as we gave up: pass it on
            raise
        self._outcome(waiter, wait)

    # ---- watching ---------------------------------------------------------------------------
    def subscribe(self, func: Callable[[LockToken | None], None]) -> None:
        """Call ``func(token_or_None)`` now and whenever the holder changes (on that thread)."""
        self._subscribers.append(func)
        with self._notifying:
            func(self._token)

    def unsubscribe(self, func: Callable) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(func)

    def _changed(self) -> None:
        if not self._subscribers:
            return
        with self._notifying:  # each call reports the state of its time: the last one wins
            token = self._token
            for func in list(self._subscribers):
                try:
                    func(token)
                except Exception:
                    logger.exception("Subscriber %r of %r failed", func, self)
