"""The seed's pausing agents: pause after a delay; pause by name and hold the resume.

agent = TimedPausingAgent(RE)
agent.issue_request(defer=True, delay=2)     # a deferred pause two seconds from now
RE(do_nothing())                             # -> paused

agent = NamedPausingAgent(RE, "Timed Pausing Agent")
agent.issue_request(defer=True, delay=2)
RE(do_nothing())
RE.resume()                 # refused: ['Timed Pausing Agent']
agent.permission = True     # or agent.grant()
RE.resume()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from ..loop import settle
from .base import Agent

__all__ = ["NamedPausingAgent", "PauseRequest", "TimedPausingAgent"]


class PauseRequest:
    """A pause request waiting on the engine's event loop: ``join``, ``is_alive``, ``cancel``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done = threading.Event()
        self._timer: asyncio.TimerHandle | None = None  # written on the loop only
        self.cancelled = False

    def is_alive(self) -> bool:
        """Whether it has neither been delivered nor cancelled yet."""
        return not self._done.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until it has been delivered (or failed, or was cancelled)."""
        self._done.wait(timeout)

    def cancel(self) -> None:
        """Withdraw it, if not delivered yet."""
        self.cancelled = True
        self._done.set()
        with contextlib.suppress(RuntimeError):  # a closed loop runs no timer anyway
            self._loop.call_soon_threadsafe(self._cancel_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class TimedPausingAgent(Agent):
    """Request a pause of ``RE`` after a delay, by a timer on the engine's own event loop.

    ``stop()`` cancels requests still waiting. A request that fails (the engine idle or
    panicked when the delay runs out) is reported, not raised.
    """

    def __init__(
        self,
        RE: Any,
        name: str | None = None,
        *,
        on_error: Callable[[Any, BaseException], None] | None = None,
    ) -> None:
        super().__init__(name or type(self).__name__, on_error)
        self.RE = RE
        self.requests = 0  # requests delivered to the engine (counted on its loop)
        self._pending: set[PauseRequest] = set()
        self._pending_lock = threading.Lock()

    def issue_request(
        self, defer: bool = False, delay: float = 0, *, hard: bool | None = None
    ) -> PauseRequest:
        """Ask for a pause (deferred to the next checkpoint with ``defer``) in ``delay`` s.

        ``hard=`` is the seed's spelling of ``not defer``. Returns the waiting request.
        """
        if hard is not None:
            defer = not hard
        self._halt.clear()
        loop = self.RE.loop
        request = PauseRequest(loop)
        with self._pending_lock:
            self._pending.add(request)

        def deliver() -> None:  # on the loop
            try:
                if not request.cancelled:
                    self._request(defer)
                    self.requests += 1
            except Exception as exc:
                self.report(exc)
            finally:
                self._settle(request)

        def schedule() -> None:  # on the loop
            if not request.cancelled:
                request._timer = loop.call_later(max(0.0, float(delay)), deliver)

        try:
            loop.call_soon_threadsafe(schedule)
        except RuntimeError as exc:  # the engine's loop is closed
            self.report(exc)
            self._settle(request)
        return request

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the requests still waiting, then stop as every agent does."""
        with self._pending_lock:
            pending, self._pending = self._pending, set()
        for request in pending:
            request.cancel()
        settle(self.RE.loop, timeout)  # a delivery under way ends before stop() returns
        super().stop(timeout)

    def _settle(self, request: PauseRequest) -> None:
        with self._pending_lock:
            self._pending.discard(request)
        request._done.set()

    def _request(self, defer: bool) -> None:
        self.RE.request_pause(defer)


class NamedPausingAgent(TimedPausingAgent):
    """A pausing agent with a name and a permission: the engine refuses to resume while
    ``permission`` is False, and ``RE.resume()`` returns the agent's name."""

    def __init__(
        self,
        RE: Any,
        name: str,
        *,
        on_error: Callable[[Any, BaseException], None] | None = None,
    ) -> None:
        super().__init__(RE, name, on_error=on_error)
        self.permission = True

    def grant(self) -> None:
        """Allow the resume."""
        self.permission = True

    def revoke(self) -> None:
        """Hold the resume."""
        self.permission = False

    def allows_resume(self) -> bool:
        """The permission callback given to the engine."""
        return self.permission

    def _request(self, defer: bool) -> None:
        self.permission = False
        self.RE.request_pause(defer, self.name, self.allows_resume)
