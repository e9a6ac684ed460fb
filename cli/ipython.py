"""IPython niceties for a runengine session: magics, the engine's state in the prompt.

Load with ``%load_ext runengine.cli.ipython`` (``runengine shell`` does it). The magics use the
session's ``RE`` (from the user namespace):

    %mov m1 1 m2 0.5     move to absolute positions
    %movr m1 0.1         move relative to where it is
    %ct [label ...]      count the devices labelled 'detectors' (or the labels given) once
    %wa [label ...]      where all: positions and limits of every labelled positioner

Ctrl+C during ``%mov`` or ``%movr`` stops the move at once (the motors are told to stop) and
prints where they are; a move is never left paused. ``%ct`` pauses like any plan.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.run_engine import TransitionError
from bluesky.utils import RunEngineInterrupted
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.terminal.prompts import Prompts, Token

from runengine.console import announce, help_for
from runengine.control import EngineBusy
from runengine.sigint import SigintHandler

__all__ = ["REFUSALS", "RunEngineMagics", "load_ipython_extension"]

MOVE_NOTICE = "Ctrl+C: stopping the move."


def labelled(user_ns: dict, labels: list[str] | None = None) -> dict[str, list[tuple[str, Any]]]:
    """``{label: [(variable name, device), ...]}`` of the ophyd objects in the namespace."""
    found: dict[str, list[tuple[str, Any]]] = {}
    for var, obj in user_ns.items():
        if var.startswith("_"):
            continue
        for label in sorted(getattr(obj, "_ophyd_labels_", ()) or ()):
            if labels is None or label in labels:
                found.setdefault(label, []).append((var, obj))
    return found


def _is_positioner(obj: Any) -> bool:
    return hasattr(obj, "position") and callable(getattr(obj, "set", None))


def _positions(motors: list[Any]) -> str:
    """``m1 at 0.53, m2 at 1.0``; ``?`` where a position cannot be read."""
    parts = []
    for motor in motors:
        try:
            value = motor.position
        except Exception:  # a disconnected motor: say so, the move is still stopped
            value = "?"
        where = f"{value:g}" if isinstance(value, numbers.Real) else str(value)
        parts.append(f"{getattr(motor, 'name', motor)} at {where}")
    return ", ".join(parts)


@magics_class
class RunEngineMagics(Magics):
    """``%mov``, ``%movr``, ``%ct``, ``%wa`` on the session's own RunEngine."""

    @property
    def RE(self) -> Any:
        RE = self.shell.user_ns.get("RE")
        if RE is None:
            raise NameError("these magics need a RunEngine named RE in the namespace")
        return RE

    def _pairs(self, line: str, magic: str) -> list[Any]:
        words = line.split()
        if not words or len(words) % 2:
            raise ValueError(f"usage: %{magic} motor position [motor position ...]")
        return [self.shell.ev(word) for word in words]

    def _run(self, plan: Any, *subs: Any) -> None:
        try:
            self.RE(plan, *subs)
        except RunEngineInterrupted as err:
            announce(help_for(self.RE, str(err)).strip())

    def _move(self, plan_stub: Callable, args: list[Any]) -> None:
        """Run a move; Ctrl+C (or any pause) stops it at once and says where the motors are."""
        RE = self.RE
        heard: list[SigintHandler] = []

        def on_ctrl_c(engine: Any) -> SigintHandler:
            handler = SigintHandler(engine, immediate=True, notice=MOVE_NOTICE)
            heard.append(handler)
            return handler

        saved = RE.context_managers
        RE.context_managers = [on_ctrl_c if m is SigintHandler else m for m in saved]
        try:
            RE(plan_stub(*args))
            return
        except RunEngineInterrupted:
            pass
        finally:
            RE.context_managers = saved
        if RE.state == "paused":
            RE.stop()  # a move is not resumed: end it (its motors were stopped at the pause)
        if RE.state != "idle":
            announce(help_for(RE).strip())
            return
        why = "Ctrl+C" if any(handler.presses for handler in heard) else "the RunEngine paused"
        announce(f"Move stopped ({why}): {_positions(args[::2])}.")

    @line_magic
    def mov(self, line: str) -> None:
        """%mov motor position [motor position ...]: move and wait; Ctrl+C stops the move."""
        self._move(bps.mv, self._pairs(line, "mov"))

    @line_magic
    def movr(self, line: str) -> None:
        """%movr motor delta [motor delta ...]: move relative and wait; Ctrl+C stops it."""
        self._move(bps.mvr, self._pairs(line, "movr"))

    @line_magic
    def ct(self, line: str) -> None:
        """%ct [label ...]: read every device labelled 'detectors' (or these labels) once."""
        if "[" in line:
            raise ValueError("%ct takes space-separated labels, e.g. %ct detectors")
        labels = line.split() or ["detectors"]
        groups = labelled(self.shell.user_ns, labels).values()
        devices = [obj for group in groups for _, obj in group]
        if not devices:
            print(f"No devices labelled {', '.join(labels)}.")
            return

        def show(name: str, doc: dict) -> None:
            if name == "event":
                for key, value in sorted(doc["data"].items()):
                    print(f"  {key:30} {value}")

        self._run(bp.count(devices), show)

    @line_magic
    def wa(self, line: str) -> None:
        """%wa [label ...]: where all: every labelled positioner's position and limits."""
        labels = line.split() or None
        groups = labelled(self.shell.user_ns, labels)
        if not groups:
            print("No labelled devices." if labels is None else f"No devices labelled {labels}.")
            return
        for label, members in groups.items():
            print(label)
            for var, obj in members:
                if not _is_positioner(obj):
                    continue
                low, high = getattr(obj, "limits", (None, None))
                units = getattr(obj, "egu", "") or ""
                print(f"  {var:12} {obj.position!s:>14} {units:4} limits [{low}, {high}]")


class StatePrompts(Prompts):
    """The usual ``In [n]:`` prompt, preceded by the engine's state when it is not idle."""

    def in_prompt_tokens(self) -> list[tuple]:
        tokens = super().in_prompt_tokens()
        RE = self.shell.user_ns.get("RE")
        state = getattr(RE, "state", "idle")
        if state != "idle":
            return [(Token.Prompt, f"[{state}] "), *tokens]
        return tokens


#: Refused control calls (``RE.resume()`` while idle, a busy engine thread): one line, no
#: traceback, in the shell. They are still raised, as bluesky raises them.
REFUSALS: tuple[type[BaseException], ...] = (TransitionError, EngineBusy)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the state prompt; show pauses as a reminder and refused control
    calls as one line, not a traceback."""
    from runengine.console import install_interruption_display

    ipython.register_magics(RunEngineMagics)
    ipython.prompts = StatePrompts(ipython)
    install_interruption_display(REFUSALS)
