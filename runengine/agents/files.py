"""File-triggered pausing: a file at a path pauses the plan and holds it until removed.

with FilePausingAgent(RE, "/beamline/PAUSE", auto_resume=True):
    RE(plan)       # touch /beamline/PAUSE -> paused; RE.resume() refused while it exists;
                   # rm it -> resumed by the agent (auto_resume) or by RE.resume()

RE.install_suspender(SuspendWhileFileExists("/beamline/HOLD"))   # the suspender form

``SuspendWhileFileExists`` lives in :mod:`runengine.suspenders.file` (re-exported here).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bluesky.run_engine import TransitionError
from bluesky.utils import RunEngineInterrupted

from ..suspenders.file import SuspendWhileFileExists
from .base import Agent
from .watch import PathWatcher

__all__ = ["FilePausingAgent", "SuspendWhileFileExists"]


class FilePausingAgent(Agent):
    """While a file exists at ``path``, pause ``RE`` (deferred with ``defer``) under the
    agent's ``name``; ``RE.resume()`` is refused, naming the agent, until the file is gone.

    A file that appears while the engine is idle pauses the next plan once it runs.
    ``auto_resume``: when the file is removed, resume a pause this agent caused (in a thread
    of the agent's; ``results`` collects what ``RE.resume()`` returned). Reaction is
    event-driven (inotify) with a ``poll_interval`` fallback.
    """

    def __init__(
        self,
        RE: Any,
        path: str | os.PathLike,
        name: str | None = None,
        *,
        defer: bool = False,
        auto_resume: bool = False,
        poll_interval: float = 0.25,
        use_watchdog: bool = True,
        on_error: Callable[[Any, BaseException], None] | None = None,
    ) -> None:
        self.path = Path(path).absolute()
        super().__init__(name or f"file {self.path}", on_error)
        self.RE = RE
        self.defer = defer
        self.auto_resume = auto_resume
        self.requests = 0  # pause requests sent to the engine
        self.results: list[Any] = []  # what each automatic resume returned
        self.triggered_at: float | None = None  # perf_counter() when the file was last seen new
        self._paused_it = False  # the current pause is this agent's doing
        self._holding = False  # the engine has this agent's request for the current pause
        self._resume_pending = False
        self.watcher = PathWatcher(
            self.path,
            self._look,
            poll_interval=poll_interval,
            use_watchdog=use_watchdog,
            name=f"{self.name}:watch",
            on_error=self._forward,
        )

    def _forward(self, watcher: Any, exc: BaseException) -> None:
        self.errors.append(exc)  # the watcher has logged it
        if self.on_error is not None:
            self.on_error(self, exc)

    @property
    def mode(self) -> str:
        """``'watchdog'`` (event-driven) or ``'polling'``."""
        return self.watcher.mode

    def start(self) -> FilePausingAgent:
        super().start()
        self.watcher.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching. An automatic resume in progress is waited for (``timeout``)."""
        self.watcher.stop(timeout)
        super().stop(timeout)

    def allows_resume(self) -> bool:
        """The permission callback: the file is gone."""
        return not os.path.lexists(self.path)

    def _look(self, exists: bool, changed: bool) -> None:
        state = str(self.RE.state)
        if not exists:
            self._holding = False
            if changed and self.auto_resume and self._paused_it:
                self._resume_pending = True
            if self._resume_pending and state != "pausing":
                self._resume_pending = self._paused_it = False
                if state == "paused":
                    self._spawn(self._resume, "resume")
            return
        if changed:
            self.triggered_at = time.perf_counter()
        self._resume_pending = False
        try:
            if state in ("pausing", "paused"):
                if not self._holding:  # paused by someone else: hold it too
                    self.RE.request_pause(self.defer, self.name, self.allows_resume)
                    self._holding = True
            elif state in ("running", "suspending"):
                if not (self.defer and self.RE.deferred_pause_requested):
                    self._paused_it = self._holding = True
                    self.requests += 1
                    self.RE.request_pause(self.defer, self.name, self.allows_resume)
            else:
                self._holding = False
        except TransitionError:
            pass  # the plan ended between looking at the state and asking: nothing to pause

    def _resume(self) -> None:
        if self.stopped or not self.RE.state.is_paused:
            return
        try:
            result = self.RE.resume()
        except RunEngineInterrupted:
            result = "paused again"
        self.results.append(result)
