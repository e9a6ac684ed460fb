"""``runengine run``: one plan from the command line, with a prompt when it is paused."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from bluesky.utils import RunEngineInterrupted

__all__ = ["RunOutcome", "make_plan", "run_plan"]

CHOICES = {"r": "resume", "s": "stop", "a": "abort", "h": "halt"}
PROMPT = "Paused. [r]esume, [s]top, [a]bort or [h]alt? "


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


def run_plan(
    session: Any, text: str, ask: Callable[[str], str] = input, echo: Callable = print
) -> RunOutcome:
    """Run the plan ``text`` on the session's engine; while paused, ask what to do.

    End of input or Ctrl+C at the prompt aborts the run (data taken so far is kept).
    """
    RE = session.RE
    plan = make_plan(text, session.namespace)
    stops: list[dict] = []
    token = RE.subscribe(lambda name, doc: stops.append(doc), "stop")
    uids: list[str] = []
    try:
        action: Callable[[], Any] = lambda: RE(plan)  # noqa: E731
        while True:
            try:
                result = action()
            except RunEngineInterrupted:
                action = _decide(RE, ask, echo)
                continue
            if isinstance(result, list):  # resume refused: the names of the pause requests
                echo(f"Cannot resume yet: {', '.join(result)} still hold(s) the pause.")
                action = _decide(RE, ask, echo)
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
        return RunOutcome("success", uids)
    stop = stops[-1]
    echo(f"Run {stop['run_start'][:8]} ended: {stop['exit_status']}. {_where(session, stop)}")
    return RunOutcome(stop["exit_status"], uids, stop.get("reason", ""))


def _decide(RE: Any, ask: Callable[[str], str], echo: Callable) -> Callable[[], Any]:
    """Ask until the answer is one of CHOICES; the engine's method for it."""
    while True:
        try:
            answer = ask(PROMPT).strip().lower()[:1]
        except (EOFError, KeyboardInterrupt):
            echo("\nNo answer: aborting.")
            answer = "a"
        if answer in CHOICES:
            return getattr(RE, CHOICES[answer])
        echo("Please answer r, s, a or h.")


def _where(session: Any, stop: dict) -> str:
    store = session.namespace.get("store")
    if store is None:
        return ""
    return f"Stored in {store.path_for(stop['run_start'])}."
