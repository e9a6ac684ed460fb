"""SuspendWhileLocked: plans suspend while someone else holds a hardware lock.

A :class:`bluesky.suspenders.SuspenderBase` whose 'signal' is the lock: the lock calls it back
with its holder's token on every change of holder, from whichever thread made the change, and
``_should_suspend`` / ``_should_resume`` decide on that token. What bluesky's template cannot
express is kept here: the wait re-checks the lock after ``sleep`` and may time out.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from bluesky.suspenders import SuspenderBase
from bluesky.utils import Msg, ensure_generator

from ..console import announce

if TYPE_CHECKING:
    from ..locks import HardwareLock, LockToken

__all__ = ["SuspendWhileLocked"]


class _LockState:
    """The 'signal' a SuspenderBase subscribes to: the lock's holder (a token, or None)."""

    def __init__(self, lock: HardwareLock) -> None:
        self.lock = lock
        self.name = lock.name
        self._funcs: dict[Any, Callable] = {}

    def __repr__(self) -> str:
        return repr(self.lock)

    def subscribe(self, cb: Callable, event_type: Any = None, run: bool = True) -> None:
        skip = [not run]  # the lock calls back at once: skip that call unless asked to run

        def on_change(token: LockToken | None) -> None:
            if skip[0]:
                skip[0] = False
                return
            cb(value=token)

        self._funcs[cb] = on_change
        self.lock.subscribe(on_change)

    def clear_sub(self, cb: Callable, event_type: Any = None) -> None:
        func = self._funcs.pop(cb, None)
        if func is not None:
            self.lock.unsubscribe(func)


class _Trip:
    """What SuspenderBase keeps as its event (``_ev``) while a trip is outstanding; its
    ``wait`` (the awaitable factory handed to ``RE.request_suspend``) is the suspender's."""

    __slots__ = ("wait",)

    def __init__(self, wait: Callable) -> None:
        self.wait = wait


class SuspendWhileLocked(SuspenderBase):
    """Suspend the plan while ``lock`` is held by anyone but the RunEngine's own plans.

    A plan started while it is held waits; it goes on ``sleep`` seconds after the release (if
    the lock is still free of others then). With ``timeout``, waiting longer than that throws
    :class:`~runengine.locks.LockTimeout`, naming the holder, into the plan.
    """

    hardened = True  # its event is made on any thread and get_futures reads under the lock

    def __init__(
        self,
        lock: HardwareLock,
        *,
        sleep: float = 0.0,
        pre_plan: Any = None,
        post_plan: Any = None,
        tripped_message: str = "",
        timeout: float | None = None,
    ) -> None:
        super().__init__(
            _LockState(lock),
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
        )
        self.lock = lock
        self._user_post_plan = post_plan
        self._timeout = timeout
        self._expired: LockToken | None = None  # holding that already timed a wait out
        self._wakers: set[asyncio.Future] = set()  # the waits in progress (under self._lock)
        self._pending_error: Exception | None = None

    def __repr__(self) -> str:
        return f"SuspendWhileLocked({self.lock!r}, sleep={self._sleep})"

    # ---- SuspenderBase's template ----------------------------------------------------------
    def _should_suspend(self, value: LockToken | None) -> bool:
        return self._foreign(value) and value is not self._expired

    def _should_resume(self, value: LockToken | None) -> bool:
        return not self._should_suspend(value)

    def install(self, RE: Any, *, event_type: Any = None) -> None:
        """Start watching the lock for ``RE`` (trips at once if a foreign holder has it)."""
        super().install(RE, event_type=event_type)

    @property
    def tripped(self) -> bool:
        """Whether a foreign owner holds the lock (and no wait for that holding timed out)."""
        return self._tripped and self._should_suspend(self.lock._token)

    def get_futures(self) -> tuple[list, str]:
        """``([awaitable factory], justification)`` while tripped, else ``([], '')``."""
        with self._lock:
            if not self.tripped or self._make_event() is None:
                return [], ""
            return [functools.partial(self._wait, True)], self._get_justification()

    def _make_event(self) -> _Trip | None:
        """SuspenderBase's private hook (under ``self._lock``): the trip's event, made on any
        thread; a new trip also sets the post plan that request_suspend gets."""
        if self._ev is None and self.RE is not None:
            self._ev = _Trip(functools.partial(self._wait, False))
            self._post_plan = functools.partial(self._post, self.RE.rewindable)
        return self._ev

    def _set_event(self, loop: asyncio.AbstractEventLoop) -> None:
        """SuspenderBase's private hook (under ``self._lock``), on release and on remove: the
        waits re-check the lock (and sleep); bluesky's version prints and sets an event."""
        for waker in self._wakers:
            loop.call_soon_threadsafe(_resolve, waker)
        if not self._wakers:
            self._ev = None  # else the last wait to end clears it

    _SuspenderBase__make_event = _make_event
    _SuspenderBase__set_event = _set_event

    def _get_justification(self) -> str:
        return self._justification()

    # ---- the lock ---------------------------------------------------------------------------
    def _foreign(self, token: LockToken | None) -> bool:
        return token is not None and (self.RE is None or token._key is not self.RE)

    def _justification(self) -> str:
        holder = self.lock.holder
        who = holder.describe() if holder is not None else "nobody (released)"
        text = f"Hardware lock {self.lock.name!r} is held by {who}"
        return ": ".join(part for part in (text, self._tripped_message) if part)

    async def _wait(self, inject: bool) -> None:
        """Until no foreign owner has held the lock for ``sleep`` s (or the timeout)."""
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout is None else loop.time() + self._timeout
        try:
            while True:
                waker = loop.create_future()
                with self._lock:
                    self._wakers.add(waker)
                try:
                    if not self.tripped:
                        if self._sleep:
                            announce(f"{self!r}: the lock is free; resuming in {self._sleep} s.")
                            await asyncio.sleep(self._sleep)
                        if not self.tripped:
                            return
                        continue
                    remaining = None if deadline is None else deadline - loop.time()
                    if remaining is not None and remaining <= 0:
                        self._time_out(inject)
                        return
                    await asyncio.wait((waker,), timeout=remaining)
                finally:
                    with self._lock:
                        self._wakers.discard(waker)
        finally:
            with self._lock:
                if not self._wakers and not self.tripped:
                    self._ev = None  # the next trip asks for a suspension again

    def _time_out(self, inject: bool) -> None:
        from ..locks import LockTimeout

        holder = self.lock.holder
        with self._lock:
            self._expired = self.lock._token
            self._tripped = False
        who = holder.describe() if holder is not None else "nobody"
        err = LockTimeout(
            f"Suspended for more than {self._timeout} s waiting for lock {self.lock.name!r}, "
            f"held by {who}",
            holder,
        )
        ex = getattr(self.RE, "_exec", None)
        if not inject:
            self._pending_error = err  # raised by the post plan, once the suspension is over
        elif ex is not None and ex.statuses.failure is None:
            # The engine throws a pending status failure into the plan at its next message; a
            # suspender's awaitable cannot fail the plan otherwise (Msg('wait_for') ignores it).
            ex.statuses.failure = err

    def _post(self, rewindable: bool) -> Generator:
        if self._user_post_plan is not None:
            plan = self._user_post_plan
            yield from ensure_generator(plan() if callable(plan) else plan)
        err, self._pending_error = self._pending_error, None
        if err is not None:
            yield Msg("rewindable", None, rewindable)  # what the suspension would have restored
            raise err


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
