"""Ctrl+C while a plan runs: once, pause at the next checkpoint; twice within 10 s, pause now.

Presses are counted below Python: every SIGINT writes a byte to a pipe (``set_wakeup_fd``),
which a worker thread reads. Python's own handler runs only when the main thread next gets the
interpreter, and two presses before that are one call: while a busy plan keeps the engine's
thread running, the second press used to vanish. The worker decides what the presses mean and
talks to the engine, so presses milliseconds apart never race on a counter (bluesky #1993) and
nothing slow runs in a signal handler. If the engine does not pause after the second press (a
plan or callback is blocking its thread), a few more presses give the prompt back anyway.

When a call returns interrupted (or after a press), presses are swallowed for :data:`GRACE`
seconds more: a person's second press often lands just after a quick first press has paused,
while the shell prints the pause, and a KeyboardInterrupt there would print a traceback from
inside the shell's display code. A call that ends without a press gives Ctrl+C back at once.

A terminal throws away, on Ctrl+C, the output it has not displayed yet: the answer to the
first press ("Pausing...", the prompt) when the second arrives before the terminal has read
it. The first call sets NOFLSH on the terminal for good (see
:func:`runengine.console.keep_output_on_ctrl_c`), and each press heard here throws away what
was typed ahead, as the terminal did. Neither the handler nor anything it calls takes a lock
or prints: it runs on the main thread between two bytecodes, wherever that thread is.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from .console import (
    announce,
    discard_typeahead,
    keep_output_on_ctrl_c,
    note_keypress_echo,
    output_lock,
)
from .states import TransitionError

__all__ = ["GRACE", "PromptRequested", "SigintHandler"]

DEBOUNCE = 0.1  # presses closer than this are one press
WINDOW = 10.0  # a second press within this many seconds pauses now
GIVE_UP_AFTER = 3  # presses after "pause now" with no answer before the prompt comes back
GRACE = 1.0  # seconds after the call returns during which presses are swallowed

FIRST_PRESS = "Ctrl+C: pausing at the next checkpoint. Press Ctrl+C again within 10 s to pause now."
SECOND_PRESS = "Ctrl+C again: pausing now."
NO_ANSWER = (
    "The engine has not paused: its thread is busy (a plan or callback is blocking it). "
    "Press Ctrl+C {n} more time(s) to get the prompt back anyway."
)
_CAN_PAUSE = ("running", "suspending")
_CAN_PAUSE_NOW = ("running", "suspending", "pausing")


class PromptRequested(KeyboardInterrupt):
    """Raised in the blocked call when Ctrl+C could not get an answer from a busy engine."""


class _AfterCall:
    """The SIGINT handler for the moments after a call returns: presses until ``until`` are
    swallowed; the first one later puts ``original`` back and is handled by it."""

    def __init__(self, original: Any, until: float) -> None:
        self.original = original
        self.until = until

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        discard_typeahead()  # what a press typed ahead is not an answer (no lock, no output)
        if time.monotonic() < self.until:
            return None
        original = self.original
        if signal.getsignal(signal.SIGINT) is self:
            signal.signal(signal.SIGINT, original)
        if callable(original):
            return original(signum, frame)
        if original == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)  # the default action, as if never caught
        return None  # SIG_IGN


def _python_handler(current: Any) -> Any:
    """What SIGINT did before any of ours (a handler set outside Python counts as the default)."""
    if isinstance(current, _AfterCall):
        current = current.original
    return signal.default_int_handler if current is None else current


def _terminal_echoes_ctrl_c() -> bool:
    """Whether a Ctrl+C on our terminal leaves ``^C`` on the screen (ECHO and ECHOCTL set)."""
    try:
        import termios

        stdin = sys.stdin
        if stdin is None or not stdin.isatty():
            return False
        lflag = termios.tcgetattr(stdin.fileno())[3]
        echoctl = getattr(termios, "ECHOCTL", 0)
        return bool(echoctl and lflag & termios.ECHO and lflag & echoctl)
    except (ImportError, OSError, ValueError, AttributeError):
        return False


class SigintHandler:
    """Context manager the engine enters around every blocking call (``RE.context_managers``).

    Off the main thread it does nothing: signals are only delivered to the main thread.
    ``immediate``: the first press already pauses now (a move: ``%mov`` stops at once), with
    ``notice`` as what it says. ``presses`` counts the presses heard (closer than
    :data:`DEBOUNCE` count once).
    """

    def __init__(self, RE: Any, *, immediate: bool = False, notice: str | None = None) -> None:
        self.RE = RE
        self.immediate = immediate
        self.notice = notice
        self.presses = 0
        self._active = False
        self._give_up = False
        self._echoes = False
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
        self._original = _python_handler(signal.getsignal(signal.SIGINT))
        keep_output_on_ctrl_c()  # a press must never erase what answers the last one
        self._echoes = _terminal_echoes_ctrl_c()
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
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self._pipe[1], b"\0")  # not a signal number: tells the worker to finish
        if self._worker is not None:
            self._worker.join(1.0)
        if self.presses or str(self.RE.state) != "idle":
            # Interrupted: not the original handler yet. A press now would raise
            # KeyboardInterrupt wherever the caller is, typically in the shell printing the pause.
            signal.signal(signal.SIGINT, _AfterCall(self._original, time.monotonic() + GRACE))
        else:
            signal.signal(signal.SIGINT, self._original)
        if self._pipe is not None:
            # The read end is the worker's: it closes it as it ends, which may be after this
            # join gave up (a busy engine, a starved CPU). Closed here, its number could be
            # reused by the next file opened, which the worker would then read from.
            read_end, write_end = self._pipe
            with contextlib.suppress(OSError):
                os.close(write_end)
            if self._worker is None:
                with contextlib.suppress(OSError):
                    os.close(read_end)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # The press itself reaches the worker through the pipe; only the give-up is acted on
        # here, in the main thread, where it must raise.
        if self._give_up:
            self._give_up = False
            raise PromptRequested

    def _work(self, read_end: int) -> None:
        try:
            self._listen(read_end)
        finally:
            with contextlib.suppress(OSError):
                os.close(read_end)

    def _listen(self, read_end: int) -> None:
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
            if presses > ours:
                discard_typeahead()
            now = time.monotonic()
            # Bytes read together arrived within the worker's reaction time (milliseconds):
            # one keypress, as are presses closer than DEBOUNCE.
            if presses == ours or (last is not None and now - last < DEBOUNCE):
                continue
            last = now
            self.presses += 1
            if self._echoes:
                note_keypress_echo()
            if first is None or now - first > WINDOW:
                first, count = now, 0
            count += 1
            self._press(count if self.immediate else count - 1)

    def _press(self, stage: int) -> None:
        """Act on a press: stage 0 pauses at the next checkpoint, 1 pauses now, later ones
        count down to giving the prompt back."""
        state = str(self.RE.state)
        if stage == 0:
            # Under the lock, the request and then its line: the engine's reply ("Deferred
            # pause acknowledged") waits for the lock, so it comes out after our line. The
            # request goes first because a busy plan holds the GIL.
            with output_lock:
                self._request(defer=True)
                if state in _CAN_PAUSE:
                    announce(FIRST_PRESS)
        elif stage == 1:
            with output_lock:
                self._request(defer=False)
                if state in _CAN_PAUSE_NOW:
                    announce(self.notice or SECOND_PRESS)
        elif state != "paused":
            remaining = GIVE_UP_AFTER - (stage - 1)
            if remaining > 0:
                announce(NO_ANSWER.format(n=remaining))
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
