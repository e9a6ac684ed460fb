"""Ctrl+C while a plan runs: once, pause at the next checkpoint; twice within 10 s, pause now.

Presses are counted below Python: every SIGINT writes a byte to a pipe (``set_wakeup_fd``),
which a worker thread reads. Python's own handler runs only when the main thread next gets the
interpreter, and two presses before that are one call: while a busy plan keeps the engine's
thread running, the second press used to vanish. The worker decides what the presses mean and
talks to the engine, so presses milliseconds apart never race on a counter (bluesky #1993) and
nothing slow runs in a signal handler. If the engine does not pause after the second press (a
plan or callback is blocking its thread), a few more presses give the prompt back anyway.
"""

from __future__ import annotations

import _thread
import contextlib
import os
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
        self._give_up = False
        self._synthetic = 0  # our own interrupt_main() calls, which write to the pipe too
        self._original: Any = None
        self._old_wakeup_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._worker: threading.Thread | None = None

    def __enter__(self) -> SigintHandler:
        if threading.current_thread() is not threading.main_thread():
            return self
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # set_wakeup_fd needs it; a full pipe drops bytes
        self._pipe = (read_end, write_end)
        self._original = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_signal)
        self._old_wakeup_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self._active = True
        self._worker = threading.Thread(
            target=self._work, args=(read_end,), daemon=True, name="runengine-sigint"
        )
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._active:
            return
        self._active = False
        signal.set_wakeup_fd(self._old_wakeup_fd)
        signal.signal(signal.SIGINT, self._original)
        read_end, write_end = self._pipe
        with contextlib.suppress(OSError):
            os.write(write_end, b"\0")  # not a signal number: tells the worker to finish
        self._worker.join(1.0)
        for fd in (read_end, write_end):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # The press itself reaches the worker through the pipe; only the give-up is acted on
        # here, in the main thread, where it must raise.
        if self._give_up:
            self._give_up = False
            raise PromptRequested

    def _work(self, read_end: int) -> None:
        first = last = None
        count = 0
        while True:
            try:
                data = os.read(read_end, 64)  # one blocking call: few round trips for the GIL
            except OSError:
                return
            if not data or 0 in data:
                return
            presses = data.count(signal.SIGINT)
            ours = min(self._synthetic, presses)
            self._synthetic -= ours
            now = time.monotonic()
            # Bytes read together arrived within the worker's reaction time (milliseconds):
            # one keypress, as are presses closer than DEBOUNCE.
            if presses == ours or (last is not None and now - last < DEBOUNCE):
                continue
            last = now
            if first is None or now - first > WINDOW:
                first, count = now, 1
                self._request(defer=True)  # before printing: a busy plan holds the GIL
                print(FIRST_PRESS, flush=True)
                continue
            count += 1
            if count == 2:
                self._request(defer=False)
                print(SECOND_PRESS, flush=True)
            elif not self.RE.state.is_paused:
                remaining = GIVE_UP_AFTER - (count - 2)
                if remaining > 0:
                    print(NO_ANSWER.format(n=remaining), flush=True)
                else:
                    self._give_up = True
                    self._synthetic += 1
                    _thread.interrupt_main()

    def _request(self, defer: bool) -> None:
        try:
            # Never wait for the engine here: the next press must be heard even if it is busy.
            self.RE._request_pause(defer, None, None, wait=0, who="Ctrl+C")
        except (TransitionError, RuntimeError):
            pass  # not running (idle, already paused, panicked): nothing to pause
