"""How the engine speaks on a console: status lines, the help after an interruption, IPython.

Standard library only at import time: the engine core imports this module. tqdm, bluesky and
IPython are used only if the process has already imported them.

* :func:`announce` writes an engine status line (``Pausing...``) at once, on a line of its
  own: above a visible progress bar, over the ``^C`` the terminal has just echoed, and never
  interleaved with another thread's status line.
* :func:`interruption_help` and :func:`help_for` say what can be done after ``RE(plan)`` came
  back interrupted, for the state the engine is really in (paused, panicked, idle, ...).
* :func:`install_interruption_display` shows ``RunEngineInterrupted`` in IPython as that help,
  not as a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from types import TracebackType
from typing import Any, TextIO

__all__ = [
    "PAUSED_HELP",
    "announce",
    "bars_hidden",
    "help_for",
    "install_interruption_display",
    "interruption_help",
    "note_keypress_echo",
    "output_lock",
    "show_prompt",
]

#: Held while a status line is written. A thread may hold it around an action and the line that
#: describes it, so that the engine's own reply to the action is written after that line.
output_lock = threading.RLock()
_echo_pending = False  # the terminal echoed "^C" where the cursor was: overwrite it

PAUSED_HELP = """
Your RunEngine is entering a paused state. These are your options for changing
the state of the RunEngine:

RE.resume()    Resume the plan.
RE.abort()     Perform cleanup, then kill plan. Mark exit_status='abort'.
RE.stop()      Perform cleanup, then kill plan. Mark exit_status='success'.
RE.halt()      Emergency Stop: Do not perform cleanup --- just stop. Mark exit_status='abort'.
"""

_PANICKED = (
    "\nThe RunEngine panicked (RE.panic()): {fate}\n"
    "Nothing runs or resumes until RE.all_is_well() is called, once it is safe.{then}\n"
)
_PANIC_PAUSED = "the paused plan stays paused."
_PANIC_ABORTED = "the plan is aborted (its runs close with exit_status 'abort')."
_PANIC_THEN_PAUSED = "\nThen RE.resume(), RE.stop(), RE.abort() or RE.halt() as usual."
_IDLE = (
    "\nThe RunEngine is idle: the plan has ended (its runs are closed, see their "
    "exit_status). There is nothing to resume.\n"
)
_BUSY = (
    "\nThe RunEngine is {state}: its thread is busy and it pauses as soon as it is free.\n"
    "RE.state says when it is 'paused'; then RE.resume(), RE.stop(), RE.abort() or RE.halt().\n"
)
_ENDING = "\nThe RunEngine is {state}: the plan is winding down; it will then be idle.\n"


def note_keypress_echo() -> None:
    """The terminal has just echoed a key (``^C``): the next status line is written over it."""
    global _echo_pending
    _echo_pending = True


def announce(text: str) -> None:
    """Write an engine status line on stdout, on a fresh line, and flush it.

    A visible tqdm progress bar is cleared first and drawn again below the line (as
    ``tqdm.write`` does); a ``^C`` the terminal has just echoed is overwritten. The whole line
    is one write under :data:`output_lock`, so lines of two threads never glue together.
    Output errors (a closed or broken stdout) are ignored: a status line never stops the engine.
    """
    global _echo_pending
    with output_lock:
        out = sys.stdout
        if out is None:
            return
        prefix = _over_the_echo(out) if _echo_pending else ""
        _echo_pending = False
        try:
            with _bars_cleared(out):
                out.write(prefix + text + "\n")
                out.flush()
        except (OSError, ValueError):
            pass


def show_prompt(text: str) -> None:
    """Write ``text`` on stdout with no line end, as a prompt the next typed line answers."""
    with output_lock:
        out = sys.stdout
        if out is None:
            return
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):
            pass


def _over_the_echo(out: TextIO) -> str:
    """What moves a terminal's cursor back over an echoed ``^C`` and erases it."""
    if not _isatty(out):
        return ""
    return "\r" if os.environ.get("TERM", "dumb") == "dumb" else "\r\x1b[K"


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _bars_cleared(out: TextIO) -> contextlib.AbstractContextManager:
    """tqdm's external write mode if tqdm is in use and has a bar on screen; else nothing."""
    std = sys.modules.get("tqdm.std")
    tqdm = getattr(std, "tqdm", None)
    if tqdm is None or not getattr(tqdm, "_instances", None):
        return contextlib.nullcontext()
    return tqdm.external_write_mode(file=out)


@contextlib.contextmanager
def bars_hidden() -> Any:
    """Clear the visible tqdm bars while a prompt waits for an answer; draw them again after.

    Unlike :func:`announce` it holds no lock while waiting: the engine may still write.
    """
    std = sys.modules.get("tqdm.std")
    bars = list(getattr(getattr(std, "tqdm", None), "_instances", None) or ())
    for bar in bars:
        with contextlib.suppress(Exception):
            bar.clear()
    try:
        yield
    finally:
        for bar in bars:
            with contextlib.suppress(Exception):
                if not bar.disable and getattr(bar, "last_print_n", None) is not None:
                    bar.refresh()


# ---- what to do after an interruption --------------------------------------------------
def interruption_help(state: str, message: str | None = None, beneath: str | None = None) -> str:
    """What a person can do now that ``RE(plan)`` came back interrupted, in ``state``.

    ``message`` is the interruption's own text (``RE.pause_msg``): shown when paused unless it
    is bluesky's default, which :data:`PAUSED_HELP` replaces. ``beneath`` is, while panicked,
    the state of the plan underneath the panic.
    """
    state = str(state)
    if state == "paused":
        if message and message.strip() and not _is_default_pause_msg(message):
            return message
        return PAUSED_HELP
    if state == "panicked":
        fate = _PANIC_PAUSED if beneath == "paused" else _PANIC_ABORTED
        then = _PANIC_THEN_PAUSED if beneath == "paused" else ""
        return _PANICKED.format(fate=fate, then=then)
    if state == "idle":
        return _IDLE
    if state in ("running", "pausing", "suspending"):
        return _BUSY.format(state=state)
    return _ENDING.format(state=state)


def help_for(RE: Any, message: str | None = None) -> str:
    """:func:`interruption_help` for the engine ``RE`` as it is now."""
    controller = getattr(RE, "_controller", None)
    beneath = getattr(controller, "beneath", None)
    return interruption_help(str(RE.state), message, beneath)


def _is_default_pause_msg(message: str) -> bool:
    defaults = {PAUSED_HELP.strip()}
    bluesky = sys.modules.get("bluesky.run_engine")
    if bluesky is not None:
        defaults.add(str(getattr(bluesky, "PAUSE_MSG", "")).strip())
    return message.strip() in defaults


# ---- IPython ---------------------------------------------------------------------------
def _engine_in(tb: TracebackType | None) -> Any:
    """The innermost RunEngine whose method the traceback passes through, or None."""
    found = None
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if any(cls.__name__ == "RunEngine" for cls in type(candidate).__mro__):
            found = candidate
        tb = tb.tb_next
    return found


def _show_interruption(
    shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None
) -> list[str]:
    """IPython's custom display of RunEngineInterrupted: the help for the engine's state."""
    message = str(value)
    try:
        RE = _engine_in(tb) or shell.user_ns.get("RE")
        text = help_for(RE, message) if RE is not None and hasattr(RE, "state") else message
    except Exception:  # never let the display fail: IPython would unregister it
        text = message
    line = f"{etype.__name__}: {text}".rstrip()
    # IPython also renders every error for its history, with stack_data: slow, and a Ctrl+C
    # landing in it prints a traceback. The one line is the rendering.
    with contextlib.suppress(AttributeError, TypeError):
        value._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    for _ in range(3):  # a Ctrl+C while printing is taken as read, and the line printed again
        try:
            announce(line)
            break
        except KeyboardInterrupt:
            continue
    return []


def install_interruption_display() -> bool:
    """In IPython, show RunEngineInterrupted as the help for the engine's state, not a crash.

    Returns whether an IPython shell was found (nothing happens outside IPython).
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    from bluesky.utils import RunEngineInterrupted

    shell.set_custom_exc((RunEngineInterrupted,), _show_interruption)
    return True
