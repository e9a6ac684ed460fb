"""What every agent shares: error reporting, its threads, start/stop and ``with``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Agent"]

logger = logging.getLogger("runengine.agents")


class Agent:
    """Base of the agents: ``errors`` (exceptions caught in the agent's threads, in order),
    ``on_error(agent, exc)`` called for each, ``start()``/``stop()`` and the context manager."""

    def __init__(self, name: str, on_error: Callable[[Any, BaseException], None] | None = None):
        self.name = name
        self.on_error = on_error
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._halt = threading.Event()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def start(self) -> Agent:
        """Start the agent's work (idempotent); returns the agent."""
        self._halt.clear()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the agent and join every thread it started (at most ``timeout`` s each)."""
        self._halt.set()
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(timeout)
                if thread.is_alive():
                    self.report(TimeoutError(f"{thread.name} did not end within {timeout} s"))
        self._threads = [t for t in self._threads if t.is_alive()]

    @property
    def stopped(self) -> bool:
        return self._halt.is_set()

    def __enter__(self) -> Agent:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def report(self, exc: BaseException) -> None:
        """Record an error: logged, appended to ``errors``, passed to ``on_error``."""
        logger.error("%s: %s: %s", self.name, type(exc).__name__, exc)
        self.errors.append(exc)
        if self.on_error is not None:
            try:
                self.on_error(self, exc)
            except Exception as again:  # the error handler itself failed: log only
                logger.exception("%s: on_error raised %s", self.name, again)

    def _spawn(self, target: Callable[[], None], label: str) -> threading.Thread:
        """Start a daemon thread running ``target``; its exceptions are reported."""

        def guarded() -> None:
            try:
                target()
            except Exception as exc:
                self.report(exc)

        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=guarded, name=f"{self.name}:{label}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread
