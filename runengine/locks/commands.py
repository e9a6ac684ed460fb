"""Hardware locks in plans: ``acquire_lock``, ``yield_lock`` and ``release_lock``.

The locks a plan holds belong to its ``RE(plan)`` call and are released when the call ends,
whatever ends it. Waiting is a future completed by the lock's hand-over, so a pause or a stop
cancels it and leaves nobody in the lock's queue.

Rewind: after a pause or a suspension the messages since the last checkpoint are replayed.
``acquire_lock`` and ``release_lock`` are ``replay="once"`` commands: the core answers a replay
of one already carried out with its first answer, so the lock state is that of the moment of
the pause, not replayed over it. A ``yield_lock`` is carried out again (it only lets waiters
in). Locks
made with ``release_on_pause=True`` are let go when the plan pauses or suspends, and a
``_reacquire_locks`` message at the head of the replay takes them back before anything else.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bluesky.utils import Msg

from ..call import CallHooks
from ..commands.spec import UnsupportedObject, command
from ..eager import start
from .lock import HardwareLock
from .token import DROPPED, HELD, LOST, RELEASED, LockError, LockLost, LockToken, check_timeout

if TYPE_CHECKING:
    from ..call import CallContext


class PlanLocks(CallHooks):
    """The locks of one ``RE(plan)`` call, told of its pauses and end as its hooks."""

    def __init__(self, call: CallContext) -> None:
        self.ex = call
        plan = call.plan
        self.plan_name = getattr(plan, "__name__", None) or type(plan).__name__
        self.owner = f"RE:{self.plan_name}"
        self.tokens: dict[HardwareLock, LockToken] = {}

    def mine(self, token: Any, what: str) -> LockToken:
        if not isinstance(token, LockToken) or self.tokens.get(token.lock) is not token:
            raise LockError(f"Msg({what!r}) needs a token this plan holds, not {token!r}")
        if token.state == LOST:
            raise LockLost(f"Msg({what!r}): {token!r} was lost", token.lock.holder)
        if not token.valid:
            raise LockError(f"Msg({what!r}): {token!r} does not hold its lock")
        return token

    # ---- the call's hooks --------------------------------------------------------------------
    def paused(self, call: CallContext) -> None:
        """The plan pauses or suspends: let go of release_on_pause locks; prepare the replay."""
        for token in self.tokens.values():
            if token.state == HELD and token.lock.release_on_pause:
                token.lock._let_go(token, DROPPED)
        msgs = self.ex.cache.msgs
        if msgs is None:
            return  # no checkpoint: this pause aborts the plan
        if any(token.state == DROPPED for token in self.tokens.values()):
            msgs.insert(0, Msg("_reacquire_locks", None))

    def ended(self, call: CallContext) -> None:
        """The call ends: every lock goes, whatever its count."""
        for token in self.tokens.values():
            token.count = 0
            token.lock._let_go(token, RELEASED)
        self.tokens.clear()

    # ---- waiting ------------------------------------------------------------------------------
    def granted(self, msg: Msg, token: LockToken) -> LockToken:
        self.tokens[token.lock] = token
        token.count = max(token.count, 1)
        return token

    async def wait(self, msg: Msg, token: LockToken, waiter: Any, wait: float | None) -> Any:
        """Wait for ``waiter``'s grant; what each kind of message does if that fails."""
        kind = msg.command
        try:
            await token.lock._wait_async(waiter, wait)
        except asyncio.CancelledError:
            if kind != "acquire_lock":
                token.state = DROPPED  # had it, let it go: the replay's head takes it back
            ex = self.ex
            if ex.interrupt is not None and not (ex.cache.rewindable and ex.cache.msgs is not None):
                raise LockError(
                    f"Msg({kind!r}) on {token.lock!r} was interrupted and cannot be replayed "
                    "(no checkpoint, or not rewindable)"
                ) from None
            raise
        except LockError as err:
            if kind == "acquire_lock":
                raise
            token.state = LOST
            raise LockLost(
                f"Lock {token.lock.name!r} lost by job {token.job!r}: {err}", err.holder
            ) from None
        if kind == "acquire_lock":
            return self.granted(msg, token)
        return token


def plan_locks(call: CallContext) -> PlanLocks:
    """The lock bookkeeping of the engine's current call (made on first use)."""
    return call.slot(PlanLocks, lambda: call.attach(PlanLocks(call)))


@command("acquire_lock", replay="once")
def acquire_lock(call: CallContext, msg: Msg) -> Any:
    """Take a HardwareLock: ``Msg('acquire_lock', lock, job=, timeout=)``; returns a token."""
    lock = msg.obj
    if not isinstance(lock, HardwareLock):
        raise UnsupportedObject(f"Msg('acquire_lock') needs a HardwareLock, not {lock!r}")
    locks = plan_locks(call)
    wait = check_timeout(msg.kwargs.get("timeout"), lock.default_timeout)
    token = locks.tokens.get(lock)
    if token is not None and token.valid:  # the plan takes it again: counted
        token.count += 1
        return token
    job = msg.kwargs.get("job") or locks.plan_name
    token = LockToken(lock, job, locks.owner, key=call.engine)
    token.timeout = wait
    waiter = lock._enter(token, wait, call.loop)
    if waiter is None:
        return locks.granted(msg, token)
    return start(locks.wait(msg, token, waiter, wait))


@command("yield_lock")
def yield_lock(call: CallContext, msg: Msg) -> Any:
    """Let everyone waiting for the lock in, then take it back: ``Msg('yield_lock', token)``."""
    locks = plan_locks(call)
    token = locks.mine(msg.obj, "yield_lock")
    wait = check_timeout(msg.kwargs.get("timeout"), token.lock.default_timeout)
    waiter = token.lock._yield(token, call.loop)
    if waiter is None:
        return token
    return start(locks.wait(msg, token, waiter, wait))


@command("release_lock", replay="once")
def release_lock(call: CallContext, msg: Msg) -> None:
    """Release a lock taken with acquire_lock: ``Msg('release_lock', token)``."""
    token = plan_locks(call).mine(msg.obj, "release_lock")
    token.count -= 1
    if token.count <= 0:
        token.lock._let_go(token, RELEASED)


@command("_reacquire_locks")
def reacquire_locks(call: CallContext, msg: Msg) -> Any:
    """Internal: take back the locks a pause let go, before the replay goes on."""
    locks = plan_locks(call)
    dropped = [token for token in locks.tokens.values() if token.state == DROPPED]
    if not dropped:
        return None
    return start(_reacquire(locks, msg, dropped))


async def _reacquire(locks: PlanLocks, msg: Msg, dropped: list[LockToken]) -> None:
    for token in dropped:
        try:
            waiter = token.lock._enter(token, token.timeout, locks.ex.loop)
        except LockError as err:
            token.state = LOST
            raise LockLost(
                f"Lock {token.lock.name!r} could not be taken back after the pause: {err}",
                err.holder,
            ) from None
        if waiter is not None:
            await locks.wait(msg, token, waiter, token.timeout)
