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

A lock lost while the plan holds it (a :class:`~runengine.scaleout.lock.RedisLock` whose lease
ran out) suspends the plan at once: the loss is told to the engine as a suspension, the lost
token is taken back by the replay's ``_reacquire_locks`` (waiting its turn in the lock's
queue), and only then does the plan go on. A plan that cannot be rewound, or a lock that
cannot be taken back, fails with ``LockLost``: the plan never ends ``success`` on measurements
made without its lock.
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
        self._watched: set[HardwareLock] = set()

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
        """The plan pauses or suspends: let go of release_on_pause locks; prepare the replay
        (lost locks, too, are taken back at its head)."""
        for token in self.tokens.values():
            if token.state == HELD and token.lock.release_on_pause:
                token.lock._let_go(token, DROPPED)
            elif token.state == LOST:
                token.state = DROPPED
        msgs = self.ex.cache.msgs
        if msgs is None:
            return  # no checkpoint: this pause aborts the plan
        if any(token.state == DROPPED for token in self.tokens.values()):
            msgs.insert(0, Msg("_reacquire_locks", None))

    def ended(self, call: CallContext) -> None:
        """The call ends: every lock goes, whatever its count."""
        for lock in self._watched:
            lock.unsubscribe(self._holder_changed)
        self._watched.clear()
        for token in self.tokens.values():
            token.count = 0
            token.lock._let_go(token, RELEASED)
        self.tokens.clear()

    # ---- waiting ------------------------------------------------------------------------------
    def granted(self, msg: Msg, token: LockToken) -> LockToken:
        self.tokens[token.lock] = token
        token.count = max(token.count, 1)
        if token.lock not in self._watched:
            self._watched.add(token.lock)
            token.lock.subscribe(self._holder_changed)
        return token

    def _holder_changed(self, _holder: Any) -> None:
        """(any thread) A lock of the plan changed hands: if one of its tokens was lost,
        suspend the plan now (the engine's inbox carries it to the loop thread)."""
        lost = [t.lock for t in list(self.tokens.values()) if t.state == LOST]
        if lost:
            names = ", ".join(repr(lock.name) for lock in lost)
            self.ex.engine.request_suspend(
                lambda: _until_free(lost),
                justification=f"Lock {names} lost: suspended until it is free to take back",
            )

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


FREE_POLL = 0.2  # seconds between looks at a lost lock while the plan is suspended


async def _until_free(locks: list[HardwareLock]) -> None:
    """The suspension's wait: until each lock's backend answers and nobody holds it (the
    replay's ``_reacquire_locks`` then takes it, in its turn)."""
    loop = asyncio.get_running_loop()
    for lock in locks:
        free = getattr(lock, "free", None)
        while free is not None and not await loop.run_in_executor(None, free):
            await asyncio.sleep(FREE_POLL)


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
