"""How the engine speaks on a console: status lines, the help after an interruption, IPython.

Standard library only at import time: the engine core imports this module. tqdm, bluesky and
IPython are used only if the process has already imported them.

* :func:`announce` writes an engine status line (``Pausing...``) at once, on a line of its
  own: above a visible progress bar, over the ``^C`` the terminal has just echoed, and never
  interleaved with another thread's status line.
* :func:`keep_output_on_ctrl_c` stops the terminal from throwing away what was written just
  before a Ctrl+C (the status lines and the prompt that answer the previous press), and
  :func:`discard_typeahead` throws away what was typed, as the terminal itself did.
* :func:`interruption_help` and :func:`help_for` say what can be done after ``RE(plan)`` came
  back interrupted, for the state the engine is really in (paused, panicked, idle, ...).
* :func:`install_interruption_display` shows ``RunEngineInterrupted`` in IPython as that help,
  not as a traceback (and, in ``runengine shell``, a refused control call as one line).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from types import TracebackType
from typing import Any, TextIO

try:
    import termios
except ImportError:  # not on a POSIX system: no terminal settings to mind
    termios = None  # type: ignore[assignment]
_TERMINAL_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, AttributeError) + (
    (termios.error,) if termios is not None else ()
)

__all__ = [
    "PAUSED_HELP",
    "announce",
    "bars_hidden",
    "discard_typeahead",
    "help_for",
    "install_interruption_display",
    "interruption_help",
    "keep_output_on_ctrl_c",
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


# ---- the terminal and Ctrl+C ------------------------------------------------------------
# A terminal that receives Ctrl+C (ISIG) throws away, unless NOFLSH is set, the output written
# to it that it has not displayed yet, and the input typed that nobody has read. A program that
# dies on Ctrl+C loses nothing by it; ours goes on and answers the press ("Pausing...", the
# prompt): a second press arriving before the terminal had read that answer erased it, and
# `runengine run` waited at a prompt nobody saw (a terminal reads late under load).
_noflsh_fd: int | None = None  # the terminal on which we set NOFLSH: we discard its input


def _terminal_fd() -> int | None:
    """The file descriptor of our terminal (stdin) if we are its foreground process group."""
    try:
        stdin = sys.stdin
        if stdin is None or not stdin.isatty():
            return None
        fd = stdin.fileno()
        # Only the foreground may change the terminal (a background one would be stopped),
        # and only the foreground gets the terminal's Ctrl+C.
        if os.tcgetpgrp(fd) != os.getpgrp():
            return None
        return fd
    except (AttributeError, OSError, ValueError):
        return None


def keep_output_on_ctrl_c() -> bool:
    """Set NOFLSH on our terminal: a Ctrl+C no longer throws away output not yet displayed.

    Done once, from the main thread, for the rest of the process (an answer to a press may be
    printed, and a next press arrive, any time after the call that heard the first), and undone
    at exit. The input a press used to throw away, :func:`discard_typeahead` throws away: call
    it for every press. Returns whether NOFLSH is set by us now.
    """
    global _noflsh_fd
    if _noflsh_fd is not None:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    fd = _terminal_fd()
    if fd is None or termios is None:
        return False
    try:
        attrs = termios.tcgetattr(fd)
        if attrs[3] & termios.NOFLSH:
            return False  # someone wants it so already; their input is theirs to discard
        attrs[3] |= termios.NOFLSH
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except _TERMINAL_ERRORS:
        return False
    _noflsh_fd = fd
    atexit.register(_restore_flush_on_ctrl_c, fd)
    return True


def _restore_flush_on_ctrl_c(fd: int) -> None:
    global _noflsh_fd
    _noflsh_fd = None
    if termios is None:
        return
    with contextlib.suppress(*_TERMINAL_ERRORS):
        if os.tcgetpgrp(fd) != os.getpgrp():
            return  # in the background now: changing the terminal would stop us
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~termios.NOFLSH
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


def discard_typeahead() -> None:
    """Throw away the input typed and not read yet, as a Ctrl+C did before NOFLSH was set.

    Call it for each press heard (any thread; it only asks the terminal, no lock, no output),
    so that a half-typed line never becomes part of the answer to the next prompt.
    """
    fd = _noflsh_fd
    if fd is None or termios is None:
        return
    with contextlib.suppress(*_TERMINAL_ERRORS):
        termios.tcflush(fd, termios.TCIFLUSH)


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
    tqdm's lock is taken here with a ``with`` statement, never by ``bar.clear()`` or
    ``bar.refresh()`` themselves: they release it only if they return, and this runs on the
    main thread, where a Ctrl+C raises KeyboardInterrupt anywhere. A lock left held there
    stops the engine's thread at its next bar update, for good.
    """
    std = sys.modules.get("tqdm.std")
    bars = list(getattr(getattr(std, "tqdm", None), "_instances", None) or ())
    for bar in bars:
        with contextlib.suppress(Exception), bar.get_lock():
            bar.clear(nolock=True)
    try:
        yield
    finally:
        for bar in bars:
            with contextlib.suppress(Exception), bar.get_lock():
                if not bar.disable and getattr(bar, "last_print_n", None) is not None:
                    bar.refresh(nolock=True)


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
    """IPython's custom display of RunEngineInterrupted: the help for the engine's state;
    of a refusal type given to :func:`install_interruption_display`: ``Type: message``."""
    from bluesky.utils import RunEngineInterrupted

    message = str(value)
    text = message
    if isinstance(value, RunEngineInterrupted):
        try:
            RE = _engine_in(tb) or shell.user_ns.get("RE")
            if RE is not None and hasattr(RE, "state"):
                text = help_for(RE, message)
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


def install_interruption_display(refusals: tuple[type[BaseException], ...] = ()) -> bool:
    """In IPython, show RunEngineInterrupted as the help for the engine's state, not a crash.

    ``refusals`` (e.g. TransitionError: ``RE.resume()`` while idle) are shown as one line
    ``Type: message`` too, from then on in this shell, even when called again without them.
    Returns whether an IPython shell was found (nothing happens outside IPython).
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    from bluesky.utils import RunEngineInterrupted

    kept = tuple(getattr(shell, "_runengine_refusals", ()))
    refusals = (*kept, *(cls for cls in refusals if cls not in kept))
    with contextlib.suppress(AttributeError):
        shell._runengine_refusals = refusals
    shell.set_custom_exc((RunEngineInterrupted, *refusals), _show_interruption)
    return True
