"""A hardware lock shared by processes and hosts through Redis, with fencing tokens.

    lock = RedisLock("mono", "redis://127.0.0.1:6379/0", default_timeout=3, lease=10)
    with lock.acquire_timeout(5, job="scan") as acquired:   # the TimeoutLock API, unchanged
        if acquired:
            device.write(value, fence=lock.fence)           # the device refuses stale fences
    tok = yield from bps.acquire_lock(lock, ...)            # plan messages work unchanged

It is a :class:`~runengine.locks.HardwareLock` (same tokens, ``LockTimeout``/``LockLost``, FIFO
order, one deadline per wait, cancellable waits), held in Redis: ``SET NX``-style acquire with
a lease (``lease`` seconds, renewed at a third of it while held), a FIFO queue of tickets,
and a fencing number (``INCR``) per grant. A holder that cannot renew (the key expired, the
network broke) loses its token once its lease has run out locally: ``token.valid`` turns
False, a plan's next lock message raises ``LockLost``, and a device guarded by
:class:`FenceGuard` (:mod:`runengine.scaleout.fence`) refuses its stale fence even if it goes
on.

Two holders are never admitted, given a Redis that keeps what it acknowledged: the lock
refuses (:class:`UnsafeLockBackend`, at its first acquire) a server without
``appendonly yes`` and ``appendfsync always``, since one that restarts without its data
forgets the holder and resets the fence counter, and a second process would be granted the
lock while the first still trusts its lease (``require_persistence=False`` accepts that, for
tests and throw-away setups). The holder's lease is checked locally at the moment it runs out,
not only at the next renewal.

A plan that loses its lock (the lease ran out: Redis unreachable or the key gone) is
suspended at once, not left to go on: on resuming, the lock is taken back (waiting in its
queue, within the plan's acquire timeout) before any replayed message, so every point after
the last checkpoint is taken again under a valid holding; if it cannot be taken back, the
plan fails with ``LockLost``. Suspending rather than failing keeps a long scan alive through a
brief Redis outage, while nothing is measured without the lock.

``on_failure``: ``"fail"`` raises :class:`LockBackendUnavailable` (a LockError and a
BackendUnavailable) when Redis does not answer; ``"fallback"`` continues as an in-process lock
(exclusion within this process only, logged loudly); waits in progress at that moment fail
with LockBackendUnavailable.

Not shared across processes: :class:`SuspendWhileLocked` and ``subscribe`` see this process's
holders only (the lock's ``holder`` and ``job`` do report remote holders).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..locks.lock import HardwareLock, _Waiter
from ..locks.token import HELD, LOST, YIELDING, LockError, LockHolder, LockLost, LockToken
from . import lock_scripts as lua
from .connection import (
    BackendUnavailable,
    ScaleoutError,
    check_policy,
    connect,
    describe,
    redis_errors,
)
from .fence import FenceGuard, StaleFence

__all__ = ["FenceGuard", "LockBackendUnavailable", "RedisLock", "StaleFence", "UnsafeLockBackend"]

logger = logging.getLogger(__name__)


class LockBackendUnavailable(LockError, BackendUnavailable):
    """The lock's backend (Redis) does not answer."""


class UnsafeLockBackend(LockError, ScaleoutError):
    """The Redis server may lose an acknowledged write (no ``appendfsync always``): after a
    restart two holders could overlap, so the lock refuses it; the message says what to set."""


#: The Redis settings under which a restart keeps the holder and the fence counter.
PERSISTENCE = {"appendonly": "yes", "appendfsync": "always"}


class _RedisWaiter(_Waiter):
    __slots__ = ("error", "ticket", "withdrawn")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLock(HardwareLock):
    """A :class:`HardwareLock` held in Redis (see the module). ``poll``: the longest a waiter
    sleeps between looks at the queue (a release wakes the next waiter at once)."""

    def __init__(
        self,
        name: str = "lock",
        url: str | Any = "redis://127.0.0.1:6379/0",
        default_timeout: float | None = 0.0,
        release_on_pause: bool = False,
        *,
        lease: float = 10.0,
        prefix: str = "runengine",
        on_failure: str = "fail",
        socket_timeout: float = 1.0,
        poll: float = 0.2,
        require_persistence: bool = True,
    ) -> None:
        self._local: LockToken | None = None
        super().__init__(name, default_timeout, release_on_pause)
        if lease <= 3 * socket_timeout:
            raise ValueError("lease must be longer than 3 x socket_timeout")
        self.on_failure = check_policy(on_failure)
        self.lease = float(lease)
        self.poll = float(poll)
        self.redis = connect(url, socket_timeout)
        self._blocking = connect(url, socket_timeout + poll)  # BLPOP outlasts its block
        base = f"{prefix}:lock:{name}"
        self._keys = [base, f"{base}:queue", f"{base}:fence", f"{base}:tickets"]
        self._prefixes = [f"{base}:w:", f"{base}:k:"]
        self._waiter_ttl = int(max(2.0, 10 * poll + 2 * socket_timeout) * 1000)
        self._scripts = {
            name: self.redis.register_script(getattr(lua, name))
            for name in ("ACQUIRE", "RELEASE", "YIELD", "WITHDRAW", "RENEW", "IS_HOLDER")
        }
        self._fences: dict[int, int] = {}  # id(token) -> fence of its current holding
        self._lease_until = 0.0  # monotonic: the local holding is trusted until then
        self._renewer: threading.Thread | None = None
        self.fallen_back: str | None = None
        self._persistence_checked = not require_persistence

    def __repr__(self) -> str:
        return f"RedisLock({self.name!r}, {describe(self.redis)})"

    # ---- the local holder, trusted only within its lease ------------------------------------
    @property
    def _token(self) -> LockToken | None:
        token = self._local
        if token is not None and not self.fallen_back and time.monotonic() > self._lease_until:
            self._lose(token, "its lease ran out before it could be renewed")
            return None
        return token

    @_token.setter
    def _token(self, token: LockToken | None) -> None:
        self._local = token

    def _lose(self, token: LockToken, why: str) -> None:
        with self._mutex:
            if self._local is not token:
                return
            self._local = None
            token.state = LOST
            self._fences.pop(id(token), None)
        logger.error("Lock %r lost by job %r: %s", self.name, token.job, why)
        self._changed()

    @property
    def fence(self) -> int | None:
        """The fencing number of this process's current holding (None if it holds nothing)."""
        token = self._token
        return None if token is None else self._fences.get(id(token))

    def fence_of(self, token: LockToken) -> int | None:
        """The fencing number of ``token``'s holding (None if not held)."""
        return self._fences.get(id(token)) if token.valid else None

    # ---- Redis calls ------------------------------------------------------------------------
    def _call(self, name: str, args: list, what: str) -> Any:
        try:
            return self._scripts[name](keys=self._keys, args=[*self._prefixes, *args])
        except redis_errors() as err:
            raise self._unreachable(what, err) from err

    def _unreachable(self, what: str, err: BaseException) -> LockBackendUnavailable:
        """The error for Redis not answering; under ``fallback``, the lock goes in-process."""
        message = f"Lock {self.name!r}: {describe(self.redis)} unreachable while {what}: {err}"
        if self.on_failure == "fallback" and self.fallen_back is None:
            self.fallen_back = message
            logger.error("%s; falling back to an in-process lock", message)
        return LockBackendUnavailable(message)

    def _holder(self) -> LockHolder | None:
        try:
            pipe = self.redis.pipeline()
            raw, tickets = pipe.get(self._keys[0]).zrange(self._keys[1], 0, -1).execute()
            keys = [self._prefixes[0] + _text(t) for t in tickets]
            jobs = self.redis.mget(keys) if keys else []
        except redis_errors():
            return super()._holder() if self.fallen_back else None
        if raw is None:
            return None
        _, since, job, owner = [*_text(raw).split("\t", 3), "", "", ""][:4]
        waiters = tuple(_text(j) or None for j in jobs if j is not None)
        return LockHolder(job or None, owner, float(since or 0), waiters)

    def free(self) -> bool:
        """Whether Redis answers and nobody holds the lock (blocking: at most a timeout)."""
        try:
            return not self.redis.exists(self._keys[0])
        except redis_errors():
            return False

    @property
    def job(self) -> str | None:
        """The holder's job, wherever it runs (None if free)."""
        holder = self.holder
        return None if holder is None else holder.job

    @property
    def locked(self) -> bool:
        return self.holder is not None

    # ---- the HardwareLock internals, on Redis -----------------------------------------------
    def _grant_local(self, token: LockToken, fence: int, asked: float) -> None:
        """(under _mutex) ``token`` holds the lock with ``fence`` since the request at ``asked``."""
        self._local = token
        token.state = HELD
        token.since = time.time()
        self._fences[id(token)] = fence
        self._lease_until = asked + self.lease - self.redis_timeout
        if self._renewer is None or not self._renewer.is_alive():
            self._renewer = threading.Thread(target=self._renew, name="lock-renew", daemon=True)
            self._renewer.start()

    @property
    def redis_timeout(self) -> float:
        return float(self.redis.connection_pool.connection_kwargs.get("socket_timeout") or 1.0)

    def _check_persistence(self) -> None:
        """Once, before the first grant: refuse a server that may forget the holder."""
        if self._persistence_checked:
            return
        try:
            found = {key: _text(self.redis.config_get(key).get(key, "?")) for key in PERSISTENCE}
        except redis_errors() as err:
            raise self._unreachable("checking its persistence", err) from err
        except Exception as err:  # CONFIG refused (a managed Redis): cannot be verified
            found = {"CONFIG GET": f"refused ({err})"}
        if found != PERSISTENCE:
            wanted = ", ".join(f"{k} {v}" for k, v in PERSISTENCE.items())
            raise UnsafeLockBackend(
                f"Lock {self.name!r}: {describe(self.redis)} has {found}; a lock needs "
                f"{wanted} (in redis.conf), or two holders can overlap after a restart. "
                "RedisLock(..., require_persistence=False) accepts that risk."
            )
        self._persistence_checked = True

    def _enter(self, token: LockToken, wait: float | None, loop: Any = None) -> _Waiter | None:
        if self.fallen_back:
            return super()._enter(token, wait, loop)
        asked = time.monotonic()
        try:
            self._check_persistence()
            got, value, _ = self._acquire(token, "", wait == 0, "acquiring")
        except LockBackendUnavailable:
            if self.fallen_back:
                return super()._enter(token, wait, loop)
            raise
        if got == 1:
            with self._mutex:
                self._grant_local(token, int(value), asked)
            self._changed()
            return None
        if wait == 0:
            with self._mutex:
                raise self._timeout_error(token, wait)
        return self._start_waiter(token, loop, _text(value))

    def _acquire(self, token: LockToken, ticket: str, try_only: bool, doing: str) -> list:
        """One ACQUIRE: ``[1, fence, _]`` granted, else ``[0, ticket, holder]`` (queued as
        ``ticket``; ``try_only``: not queued) or ``[-2, _, holder]`` (``ticket`` was dropped)."""
        job = "" if token.job is None else str(token.job)
        lease, ttl = int(self.lease * 1000), self._waiter_ttl
        args = [ticket, f"{job}\t{token.owner}", lease, int(try_only), ttl, job]
        return self._call("ACQUIRE", args, f"{token.job!r} {doing}")

    def _start_waiter(self, token: LockToken, loop: Any, ticket: str) -> _RedisWaiter:
        waiter = _RedisWaiter(token, loop)
        waiter.ticket, waiter.error, waiter.withdrawn = ticket, None, False
        with self._mutex:
            self._queue.append(waiter)
        threading.Thread(target=self._wait_turn, args=(waiter,), daemon=True).start()
        return waiter

    def _wait_turn(self, waiter: _RedisWaiter) -> None:
        """A waiter's thread: look when woken (or every ``poll`` s) until granted or gone."""
        token = waiter.token
        while True:  # until granted, withdrawn (the caller's deadline), cancelled or failed
            if waiter.withdrawn or waiter.cancelled:
                self._forget(waiter)
                return
            asked = time.monotonic()
            try:
                got, value, _ = self._acquire(token, waiter.ticket, False, "waiting")
                if got == -2:  # dropped from the queue (this thread stalled): queue again
                    waiter.ticket = ""
                    continue
                if got == 0:
                    waiter.ticket = _text(value)
                    self._blocking.blpop([self._prefixes[1] + waiter.ticket], timeout=self.poll)
                    continue
            except LockError as err:
                waiter.error = err
                waiter.wake()
                return
            except redis_errors() as err:  # the BLPOP
                waiter.error = LockBackendUnavailable(f"Lock {self.name!r}: {err}")
                waiter.wake()
                return
            with self._mutex:
                give_back = waiter.withdrawn or waiter.cancelled
                if not give_back:
                    if waiter in self._queue:
                        self._queue.remove(waiter)
                    waiter.granted = True
                    self._grant_local(token, int(value), asked)
            if give_back:
                self._release_fence(int(value))
                return
            self._changed()
            waiter.wake()
            return

    def _forget(self, waiter: _RedisWaiter) -> None:
        if waiter.ticket:
            try:
                self._call("WITHDRAW", [waiter.ticket], "withdrawing a waiter")
            except LockBackendUnavailable:
                pass  # its liveness key expires: the queue drops it

    def _withdraw(self, waiter: _Waiter) -> bool:
        if not isinstance(waiter, _RedisWaiter):
            return super()._withdraw(waiter)
        with self._mutex:
            if waiter.granted:
                return True
            waiter.withdrawn = True
            if waiter in self._queue:
                self._queue.remove(waiter)
        self._forget(waiter)
        return False

    def _outcome(self, waiter: _Waiter, wait: float | None) -> None:
        error = getattr(waiter, "error", None)
        if error is not None and not self._withdraw(waiter):
            raise error
        super()._outcome(waiter, wait)

    def _release_fence(self, fence: int) -> None:
        try:
            self._call("RELEASE", [fence], "releasing")
        except LockBackendUnavailable:
            pass  # the lease runs out on its own

    def _let_go(self, token: LockToken, state: str) -> None:
        if self.fallen_back:  # in-process from now on: pass it to the local queue
            self._fences.pop(id(token), None)
            return super()._let_go(token, state)
        with self._mutex:
            holding = self._local is token
            token.state = state
            fence = self._fences.pop(id(token), None) if holding else None
            if holding:
                self._local = None
        if fence is not None:
            self._release_fence(fence)
        if holding:
            self._changed()

    def _yield(self, token: LockToken, loop: Any) -> _Waiter | None:
        if self.fallen_back:
            return super()._yield(token, loop)
        fence = self._fences.get(id(token))
        job = "" if token.job is None else str(token.job)
        result, ticket = self._call("YIELD", [fence, job, self._waiter_ttl], f"{job!r} yielding")
        if result == 0:
            return None
        if result == -1:
            self._lose(token, "it was no longer the holder in Redis")
            raise LockLost(f"Lock {self.name!r} was lost by job {token.job!r} (lease expired)")
        with self._mutex:
            token.state = YIELDING
            self._local = None
            self._fences.pop(id(token), None)
        self._changed()
        return self._start_waiter(token, loop, _text(ticket))

    def _renew(self) -> None:
        """While this process holds the lock: extend the lease every third of it."""
        while True:
            token = self._local
            fence = self._fences.get(id(token)) if token is not None else None
            if token is None or fence is None or self.fallen_back:
                return
            asked = time.monotonic()
            try:
                ok = self._call("RENEW", [fence, int(self.lease * 1000)], "renewing the lease")
            except LockBackendUnavailable:
                ok = None
            with self._mutex:
                if self._local is token and self._fences.get(id(token)) == fence and ok:
                    self._lease_until = asked + self.lease - self.redis_timeout
            if ok == 0:
                self._lose(token, "its key expired or was taken (fence mismatch)")
            # wake for the next renewal, or at the moment the lease runs out if that is sooner
            time.sleep(max(0.0, min(self.lease / 3, self._lease_until - time.monotonic())))
            _ = self._token  # loses the token if its lease ran out

    # ---- fencing checks ---------------------------------------------------------------------
    def assert_holder(self, token: LockToken | None = None) -> int:
        """Check with Redis that ``token`` (default: this process's) holds the lock now;
        its fence, or LockLost."""
        token = self._local if token is None else token
        fence = None if token is None else self._fences.get(id(token))
        if fence is None or not token.valid or not self.check_fence(fence):
            raise LockLost(f"Lock {self.name!r}: {token!r} does not hold it")
        return fence

    def check_fence(self, fence: int) -> bool:
        """Whether ``fence`` is the current holding's fencing number (a Redis round trip)."""
        if self.fallen_back:
            return any(f == fence for f in self._fences.values())
        return bool(self._call("IS_HOLDER", [int(fence)], "checking a fence"))

    def reset(self) -> None:
        """Delete the lock's keys (commissioning and tests only: breaks current holders)."""
        self.redis.delete(*self._keys)
