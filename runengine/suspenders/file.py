"""SuspendWhileFileExists: plans suspend while a file exists at a path.

    RE.install_suspender(SuspendWhileFileExists("/beamline/HOLD", sleep=1.0))

Its pausing form is :class:`runengine.agents.FilePausingAgent`. Also importable from
:mod:`runengine.agents` and :mod:`runengine.agents.files`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bluesky.suspenders import SuspenderBase

__all__ = ["SuspendWhileFileExists"]


class _FileState:
    """The 'signal' a SuspenderBase subscribes to: True while the file exists."""

    def __init__(self, suspender: SuspendWhileFileExists) -> None:
        self.suspender = suspender
        self.name = str(suspender.path)
        self._watchers: dict[Any, PathWatcher] = {}

    def __repr__(self) -> str:
        return f"<file {self.name}>"

    def subscribe(self, cb: Callable, event_type: Any = None, run: bool = True) -> None:
        suspender = self.suspender
        if run:
            exists = os.path.lexists(suspender.path)
            if exists:
                suspender.since = time.time()
            cb(value=exists)

        def look(exists: bool, changed: bool) -> None:
            if changed:
                if exists:
                    suspender.since = time.time()
                cb(value=exists)

        watcher = PathWatcher(
            suspender.path,
            look,
            poll_interval=suspender.poll_interval,
            use_watchdog=suspender.use_watchdog,
            on_error=lambda _, exc: suspender.report(exc),
        )
        self._watchers[cb] = watcher.start()

    def clear_sub(self, cb: Callable, event_type: Any = None) -> None:
        watcher = self._watchers.pop(cb, None)
        if watcher is not None:
            watcher.stop()


class SuspendWhileFileExists(SuspenderBase):
    """A suspender: suspend while a file exists at ``path``, resume ``sleep`` s after it is
    gone. Its watcher thread runs only while installed (``RE.install_suspender``)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        sleep: float = 0,
        pre_plan: Any = None,
        post_plan: Any = None,
        tripped_message: str = "",
        poll_interval: float = 0.25,
        use_watchdog: bool = True,
        on_error: Callable[[Any, BaseException], None] | None = None,
    ) -> None:
        self.path = Path(path).absolute()
        self.poll_interval = poll_interval
        self.use_watchdog = use_watchdog
        self.since: float | None = None
        self._reporter = Agent(f"suspend while {self.path} exists", on_error)
        super().__init__(
            _FileState(self),
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
        )

    @property
    def errors(self) -> list[BaseException]:
        return self._reporter.errors

    def report(self, exc: BaseException) -> None:
        self._reporter.report(exc)

    def _should_suspend(self, value: bool) -> bool:
        return bool(value)

    def _should_resume(self, value: bool) -> bool:
        return not value

    def _get_justification(self) -> str:
        if not self.tripped:
            return ""
        when = "" if self.since is None else f" (since {time.ctime(self.since)})"
        just = f"File {self.path} exists{when}"
        return ": ".join(s for s in (just, self._tripped_message) if s)

    def __repr__(self) -> str:
        return f"SuspendWhileFileExists({str(self.path)!r}, sleep={self._sleep})"


# After the classes: runengine.agents imports this module (through runengine.agents.files).
from ..agents.base import Agent  # noqa: E402
from ..agents.watch import PathWatcher  # noqa: E402
