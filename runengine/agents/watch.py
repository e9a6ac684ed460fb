"""Watch one path for existence: inotify through ``watchdog`` when available, polling always.

The watch sits on the nearest existing directory above the path and on its parent, so that
the path's directory may be removed and re-created: the watch moves down again as soon as
the directory is back. Each filesystem event only wakes the watcher, which then looks with a
``stat``; the poll (every ``poll_interval`` s) is the fallback when inotify is unavailable
or misses something (a network filesystem, a watch limit reached, ``watchdog`` missing).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import Agent

__all__ = ["PathWatcher"]


class _Waker:
    """A watchdog event handler that only wakes the watcher's thread."""

    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake

    def dispatch(self, event: Any) -> None:
        self._wake.set()


class PathWatcher(Agent):
    """Call ``callback(exists, changed)`` on the watcher's thread whenever it looks at ``path``:
    at once on a filesystem event near it, and at least every ``poll_interval`` seconds.

    ``mode`` is ``'watchdog'`` (event-driven) or ``'polling'``. ``exists`` is the last state seen.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        callback: Callable[[bool, bool], None],
        *,
        poll_interval: float = 0.25,
        use_watchdog: bool = True,
        name: str | None = None,
        on_error: Callable[[Any, BaseException], None] | None = None,
    ) -> None:
        self.path = Path(path).absolute()
        super().__init__(name or f"watch:{self.path}", on_error)
        self.callback = callback
        self.poll_interval = float(poll_interval)
        self.use_watchdog = use_watchdog
        self.mode = "watchdog" if use_watchdog else "polling"
        self.exists: bool | None = None
        self._wake = threading.Event()
        self._observer: Any = None
        self._watched: tuple[Path, ...] = ()
        self._loop_thread: threading.Thread | None = None

    def start(self) -> PathWatcher:
        """Start watching (idempotent); the first look happens at once."""
        if self._loop_thread is None or not self._loop_thread.is_alive():
            super().start()
            self._loop_thread = self._spawn(self._run, "watch")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching; joins the watcher's thread and watchdog's threads."""
        self._halt.set()
        self._wake.set()
        super().stop(timeout)
        self._loop_thread = None

    def wake(self) -> None:
        """Look at the path now."""
        self._wake.set()

    def _run(self) -> None:
        try:
            while not self._halt.is_set():
                self._wake.clear()
                try:
                    self._ensure_watch()
                except Exception as exc:  # inotify failed: poll only from now on
                    self.report(exc)
                    self._drop_observer()
                    self.use_watchdog, self.mode = False, "polling"
                try:
                    exists = os.path.lexists(self.path)
                    changed = exists != self.exists
                    self.exists = exists
                    self.callback(exists, changed)
                except Exception as exc:
                    self.report(exc)
                self._wake.wait(self.poll_interval)
        finally:
            self._drop_observer()

    def _dirs_to_watch(self) -> tuple[Path, ...]:
        directory = self.path.parent
        while not directory.is_dir() and directory != directory.parent:
            directory = directory.parent
        if directory.parent != directory:
            return directory, directory.parent
        return (directory,)

    def _ensure_watch(self) -> None:
        if not self.use_watchdog:
            return
        dirs = self._dirs_to_watch()
        observer = self._observer
        if (
            observer is not None
            and dirs == self._watched
            and observer.is_alive()
            and all(emitter.is_alive() for emitter in observer.emitters)
        ):
            return
        self._drop_observer()
        try:
            from watchdog.observers import Observer
        except ImportError:
            self.use_watchdog, self.mode = False, "polling"
            return
        observer = Observer()
        observer.name = f"{self.name}:watchdog"
        handler = _Waker(self._wake)
        try:
            for directory in dirs:
                observer.schedule(handler, str(directory), recursive=False)
            observer.daemon = True
            observer.start()
        except OSError as exc:
            _discard(observer)
            if isinstance(exc, FileNotFoundError):
                return  # a directory vanished in between: the next look watches again
            raise
        self._observer, self._watched = observer, dirs  # the caller looks right after

    def _drop_observer(self) -> None:
        observer, self._observer, self._watched = self._observer, None, ()
        if observer is not None:
            try:
                _discard(observer)
            except Exception as exc:
                self.report(exc)


def _discard(observer: Any) -> None:
    """Stop a watchdog observer and every thread it made, even one that failed to start."""
    if observer.is_alive():
        observer.stop()
        observer.join(5.0)
    else:  # its emitters and inotify reader may run although the observer never started
        observer.on_thread_stop()
