"""Ctrl+C while a plan runs: once, pause at the next checkpoint; twice within 10 s, pause now.

The signal handler only records the press; a worker thread decides what it means and talks to
the engine, so presses that arrive milliseconds apart (one keypress can send two) never race
on a counter (bluesky #1993), and nothing slow or blocking runs inside the handler. If the
engine does not pause after the second press (a plan or callback is blocking its thread), a
few more presses give the prompt back anyway.
"""

from __future__ import annotations

import _thread
import collections
import signal
import threading
import time
from types import FrameType
from typing import Any

from .states import TransitionError

__all__ = ["PromptRequested", "SigintHandler"]

DEBOUNCE = 0.1  # presses closer than this are one press
WINDOW = 10.0  # a second press within this many seconds pauses now
GIVE_UP_AFTER = 3  # presses after "pause now" with no answer before the prompt comes back

FIRST_PRESS = "Ctrl+C: pausing at the next checkpoint. Press Ctrl+C again within 10 s to pause now."
SECOND_PRESS = "Ctrl+C again: pausing now."
NO_ANSWER = (
    "The engine has not paused: its thread is busy (a plan or callback is blocking it). "
    "Press Ctrl+C {n} more time(s) to get the prompt back anyway."
)


class PromptRequested(KeyboardInterrupt):
    """Raised in the blocked call when Ctrl+C could not get an answer from a busy engine."""


class SigintHandler:
    """Context manager the engine enters around every blocking call (``RE.context_managers``).

    Off the main thread it does nothing: signals are only delivered to the main thread.
    """

    def __init__(self, RE: Any) -> None:
        self.RE = RE
        self._active = False
        self._presses: collections.deque[float] = collections.deque()
        self._wake = threading.Event()
        self._done = False
        self._give_up = False
        self._original: Any = None
        self._worker: threading.Thread | None = None

    def __enter__(self) -> SigintHandler:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._original = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_signal)
        self._active = True
        self._worker = threading.Thread(target=self._work, daemon=True, name="runengine-sigint")
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._active:
            return
        signal.signal(signal.SIGINT, self._original)
        self._done = True
        self._wake.set()
        self._active = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._give_up:
            self._give_up = False
            raise PromptRequested
        self._presses.append(time.monotonic())
        self._wake.set()

    def _work(self) -> None:
        first = last = None
        count = 0
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._done:
                return
            while self._presses:
                now = self._presses.popleft()
                if last is not None and now - last < DEBOUNCE:
                    continue
                last = now
                if first is None or now - first > WINDOW:
                    first, count = now, 1
                    print(FIRST_PRESS, flush=True)
                    self._request(defer=True)
                    continue
                count += 1
                if count == 2:
                    print(SECOND_PRESS, flush=True)
                    self._request(defer=False)
                elif not self.RE.state.is_paused:
                    remaining = GIVE_UP_AFTER - (count - 2)
                    if remaining > 0:
                        print(NO_ANSWER.format(n=remaining), flush=True)
                    else:
                        self._give_up = True
                        _thread.interrupt_main()

    def _request(self, defer: bool) -> None:
        try:
            # Never wait for the engine here: the next press must be heard even if it is busy.
            self.RE._request_pause(defer, None, None, wait=0, who="Ctrl+C")
        except (TransitionError, RuntimeError):
            pass  # not running (idle, already paused, panicked): nothing to pause
