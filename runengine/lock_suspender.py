"""SuspendWhileLocked: plans suspend while someone else holds a hardware lock.

It follows bluesky's suspender contract (``install``, ``remove``, ``tripped``, ``get_futures``,
``RE.request_suspend`` with pre/post plans and a justification, ``sleep`` before resuming), but
watches the lock itself rather than an ophyd signal: the lock calls it back on every change of
holder, from whichever thread made the change.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Generator
from typing import Any

from bluesky.utils import Msg, ensure_generator

from .console import announce
from .locks import HardwareLock, LockTimeout, LockToken, _resolve

__all__ = ["SuspendWhileLocked"]


class SuspendWhileLocked:
    """Suspend the plan while ``lock`` is held by anyone but the RunEngine's own plans.

    A plan started while it is held waits; it goes on ``sleep`` seconds after the release (if
    the lock is still free of others then). With ``timeout``, waiting longer than that throws
    :class:`LockTimeout`, naming the holder, into the plan.
    """

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
        self.lock = lock
        self.RE: Any = None
        self._sleep = sleep
        self._pre_plan = pre_plan
        self._post_plan = post_plan
        self._tripped_message = tripped_message
        self._timeout = timeout
        self._mutex = threading.Lock()
        self._tripped = False
        self._expired: LockToken | None = None  # holding that already timed a wait out
        self._wakers: set[asyncio.Future] = set()
        self._pending_error: LockTimeout | None = None

    def __repr__(self) -> str:
        return f"SuspendWhileLocked({self.lock!r}, sleep={self._sleep})"

    # ---- the suspender contract -------------------------------------------------------------
    def install(self, RE: Any, *, event_type: Any = None) -> None:
        """Start watching the lock for ``RE`` (trips at once if a foreign holder has it)."""
        with self._mutex:
            self.RE = RE
        self.lock.subscribe(self._on_change)

    def remove(self) -> None:
        """Stop watching; a suspension waiting on this suspender goes on."""
        self.lock.unsubscribe(self._on_change)
        with self._mutex:
            RE, self.RE, self._tripped = self.RE, None, False
            wakers = list(self._wakers)
        for waker in wakers:
            RE._loop.call_soon_threadsafe(_resolve, waker)

    @property
    def tripped(self) -> bool:
        """Whether a foreign owner holds the lock (and no wait for that holding timed out)."""
        token = self.lock._token
        return self._tripped and self._foreign(token) and token is not self._expired

    def get_futures(self) -> tuple[list, str]:
        """``([awaitable factory], justification)`` while tripped, else ``([], '')``."""
        if not self.tripped:
            return [], ""
        return [functools.partial(self._wait, True)], self._justification()

    # ---- watching the lock ------------------------------------------------------------------
    def _foreign(self, token: LockToken | None) -> bool:
        return token is not None and (self.RE is None or token._key is not self.RE)

    def _justification(self) -> str:
        holder = self.lock.holder
        who = holder.describe() if holder is not None else "nobody (released)"
        text = f"Hardware lock {self.lock.name!r} is held by {who}"
        return ": ".join(part for part in (text, self._tripped_message) if part)

    def _on_change(self, token: LockToken | None) -> None:
        with self._mutex:
            RE = self.RE
            if RE is None:
                return
            was, self._tripped = self._tripped, self._foreign(token)
            wakers = list(self._wakers)
        for waker in wakers:  # a suspension in progress re-checks the lock
            RE._loop.call_soon_threadsafe(_resolve, waker)
        if self._tripped and not was and not wakers:
            RE._loop.call_soon_threadsafe(self._request, RE)

    def _request(self, RE: Any) -> None:
        """On the loop: ask the engine to suspend, if still tripped and running."""
        if self.RE is not RE or not self.tripped or self._wakers:
            return
        if RE.state.is_idle or RE.state.is_panicked:
            return
        RE.request_suspend(
            functools.partial(self._wait, False),
            pre_plan=self._pre_plan,
            post_plan=functools.partial(self._post, RE.rewindable),
            justification=self._justification(),
        )

    async def _wait(self, inject: bool) -> None:
        """Until no foreign owner has held the lock for ``sleep`` s (or the timeout)."""
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout is None else loop.time() + self._timeout
        while True:
            waker = loop.create_future()
            with self._mutex:
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
                with self._mutex:
                    self._wakers.discard(waker)

    def _time_out(self, inject: bool) -> None:
        holder = self.lock.holder
        self._expired = self.lock._token
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
        if self._post_plan is not None:
            plan = self._post_plan
            yield from ensure_generator(plan() if callable(plan) else plan)
        err, self._pending_error = self._pending_error, None
        if err is not None:
            yield Msg("rewindable", None, rewindable)  # what the suspension would have restored
            raise err
