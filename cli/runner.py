"""``runengine run``: one plan from the command line, with a prompt when it is paused."""

from __future__ import annotations

import dataclasses
import inspect
import os
import select
import sys
from collections.abc import Callable
from typing import Any, TextIO

from bluesky.utils import RunEngineInterrupted

from runengine.console import announce, bars_hidden, discard_typeahead, help_for, show_prompt
from runengine.states import TransitionError

__all__ = ["RunOutcome", "make_plan", "run_plan"]

CHOICES = {"r": "resume", "s": "stop", "a": "abort", "h": "halt"}
PROMPT = "Paused. [r]esume, [s]top, [a]bort or [h]alt? "
CTRL_C_AT_PROMPT = "Ctrl+C: the run is already paused; only an answer decides. Type r, s, a or h."
END_OF_INPUT = "End of input: nobody can answer, aborting (the data taken so far is kept)."
SLICE = 0.05  # seconds: the longest a Ctrl+C waits at the prompt to be acted on


@dataclasses.dataclass
class RunOutcome:
    """How a command-line run ended: the last run's ``exit_status`` and the run uids."""

    exit_status: str
    uids: list[str]
    reason: str = ""
    error: BaseException | None = None  # what the plan raised, even after its run closed


def make_plan(text: str, namespace: dict[str, Any]) -> Any:
    """Evaluate ``text`` (e.g. ``scan([det], m1, -1, 1, 10)``) among the session's names.

    Raises ValueError naming what is wrong: a syntax error, an unknown name (with the
    devices there are), or something that is not a plan.
    """
    try:
        plan = eval(text, namespace)  # the user's own command line, in their own session
    except SyntaxError as err:
        raise ValueError(f"{text!r} is not Python: {err.msg}") from None
    except NameError as err:
        devices = ", ".join(sorted(namespace.get("_devices", {}))) or "none"
        raise ValueError(f"in {text!r}: {err} (devices here: {devices})") from None
    except Exception as err:
        raise ValueError(f"{text!r} raised {type(err).__name__}: {err}") from None
    if not (inspect.isgenerator(plan) or hasattr(plan, "__next__") or hasattr(plan, "__iter__")):
        raise ValueError(f"{text!r} gave {plan!r}, not a plan (a generator of Msg)")
    return plan


def ask_below_the_bars(prompt: str) -> str:
    """:func:`read_answer` with the progress bar out of the way: the prompt has its own line."""
    with bars_hidden():
        return read_answer(prompt)


def read_answer(prompt: str, stdin: TextIO | None = None) -> str:
    """``input(prompt)``, in which neither the prompt nor a Ctrl+C can get lost.

    On a terminal ``input()`` writes its prompt with a C write that a signal interrupts (the
    prompt is then dropped, silently), and then blocks in ``read()`` while Python's handler of
    that signal has not run yet: it runs only when ``read()`` is interrupted in turn. A second
    Ctrl+C landing as the prompt was written lost the prompt, and nothing answered. Here the
    prompt is a Python write (retried after the handlers ran, PEP 475), and the line is waited
    for in slices of :data:`SLICE` s, between which a pending handler runs.

    Raises EOFError at the end of input, and what a SIGINT handler raises (KeyboardInterrupt).
    """
    stdin = sys.stdin if stdin is None else stdin
    try:
        fd = stdin.fileno()
        tty = os.isatty(fd)
    except (AttributeError, OSError, ValueError):
        tty = False
    if not tty:  # input() writes its prompt from Python then, and reads no terminal
        return input(prompt)
    show_prompt(prompt)
    poller = select.poll()  # not select.select: a busy process may hold fds past 1023
    poller.register(fd, select.POLLIN)
    while not poller.poll(SLICE * 1000):
        pass  # a terminal line is readable once whole (or at the end of input)
    line = stdin.readline()
    if not line:
        raise EOFError
    return line[:-1] if line.endswith("\n") else line


def run_plan(
    session: Any,
    text: str,
    ask: Callable[[str], str] = ask_below_the_bars,
    echo: Callable[[str], Any] = announce,
) -> RunOutcome:
    """Run the plan ``text`` on the session's engine; while paused, ask what to do.

    Only an answer decides: Ctrl+C at the prompt is explained and the question asked again.
    End of input (stdin closed, Ctrl+D) aborts the run, since nobody can answer; the data taken
    so far is kept. If the interruption left the engine panicked, the help says so and the
    run ends here.
    """
    RE = session.RE
    plan = make_plan(text, session.namespace)
    stops: list[dict] = []
    token = RE.subscribe(lambda name, doc: stops.append(doc), "stop")
    uids: list[str] = []
    try:
        md = getattr(session, "md", {})  # this run's metadata (runengine run --md)
        action: Callable[[], Any] | None = lambda: RE(plan, **md)  # noqa: E731
        while action is not None:
            try:
                result = action()
            except RunEngineInterrupted:
                action = _next(RE, ask, echo)
                continue
            except TransitionError as err:  # the engine moved on since the question
                echo(str(err))
                action = _next(RE, ask, echo)
                continue
            if isinstance(result, list):  # resume refused: the names of the pause requests
                echo(f"Cannot resume yet: {', '.join(result)} still hold(s) the pause.")
                action = _next(RE, ask, echo)
                continue
            uids.extend(result or ())
            break
    except Exception as err:
        echo(f"error: the plan failed: {type(err).__name__}: {err}")
        status = stops[-1]["exit_status"] if stops else "fail"
        return RunOutcome(status, uids, str(err), err)
    finally:
        RE.unsubscribe(token)
    if not stops:
        if RE.state == "panicked":  # the plan stays parked beneath the panic: not a success
            return RunOutcome("abort", uids, "panic")
        return RunOutcome("success", uids)
    stop = stops[-1]
    echo(f"Run {stop['run_start'][:8]} ended: {stop['exit_status']}. {_where(session, stop)}")
    return RunOutcome(stop["exit_status"], uids, stop.get("reason", ""))


def _next(RE: Any, ask: Callable[[str], str], echo: Callable) -> Callable[[], Any] | None:
    """After an interruption: what to call next, or None when there is nothing to decide."""
    state = str(RE.state)
    if state == "idle":  # the call ended (the runs are closed): the stop documents tell how
        return None
    if state == "panicked":
        echo(help_for(RE).strip())
        return None
    if state != "paused":  # the engine could not answer Ctrl+C in time; it pauses when free
        echo(help_for(RE).strip())
    return _decide(RE, ask, echo)


def _decide(RE: Any, ask: Callable[[str], str], echo: Callable) -> Callable[[], Any]:
    """Ask until the answer is one of CHOICES; the engine's method for it."""
    while True:
        try:
            answer = ask(PROMPT).strip().lower()[:1]
        except KeyboardInterrupt:  # a press at the prompt never decides
            discard_typeahead()  # nor does what was typed before it (the terminal keeps it)
            echo("\n" + CTRL_C_AT_PROMPT)
            continue
        except EOFError:
            echo("\n" + END_OF_INPUT)
            answer = "a"
        if answer in CHOICES:
            return getattr(RE, CHOICES[answer])
        echo("Please answer r, s, a or h.")


def _where(session: Any, stop: dict) -> str:
    store = session.namespace.get("store")
    if store is None:
        return ""
    return f"Stored in {store.path_for(stop['run_start'])}."
