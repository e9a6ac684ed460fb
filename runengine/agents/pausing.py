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

import threading
from collections.abc import Callable
from typing import Any

from .base import Agent

__all__ = ["NamedPausingAgent", "TimedPausingAgent"]


class TimedPausingAgent(Agent):
    """Request a pause of ``RE`` after a delay, from a thread of its own.

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
        self.requests = 0  # requests delivered to the engine

    def issue_request(
        self, defer: bool = False, delay: float = 0, *, hard: bool | None = None
    ) -> threading.Thread:
        """Ask for a pause (deferred to the next checkpoint with ``defer``) in ``delay`` s.

        ``hard=`` is the seed's spelling of ``not defer``. Returns the requesting thread.
        """
        if hard is not None:
            defer = not hard
        self._halt.clear()

        def requester() -> None:
            if self._halt.wait(delay):
                return  # cancelled by stop()
            self._request(defer)
            self.requests += 1

        return self._spawn(requester, "request")

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
