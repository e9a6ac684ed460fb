"""The one registry of message commands built into the engine, and what each one is.

A handler is ``def handler(RE, msg)`` or ``async def handler(RE, msg)``. Plain ones run inline
in the message loop (the fast path); a plain handler that sometimes has to wait returns
``eager.start(coroutine)``, which the loop awaits only if it really suspends.

What the core must know of a command is said once, where it is registered::

    @command("stage", cacheable=False, subplan="stage devices in the main plan before run_graph")
    def stage(RE, msg): ...

``cacheable=False``: not recorded for a rewind, so a resume does not send it again.
``subplan``: why a graph's sub-plan may not send it (None: it may). The message cache
(:data:`UNCACHEABLE`) and the graphs' sub-plans (:data:`SUBPLAN_FORBIDDEN`) read these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RunEngineError
from ..stepper import UNCACHEABLE

__all__ = [
    "BUILTIN_COMMANDS",
    "COMMAND_SPECS",
    "SUBPLAN_FORBIDDEN",
    "UNCACHEABLE",
    "CommandSpec",
    "MissingArgument",
    "UnsupportedObject",
    "command",
    "supports",
]


@dataclass(frozen=True)
class CommandSpec:
    """A built-in command: its ``name``, its ``handler`` and what the core must know of it."""

    name: str
    handler: Callable
    cacheable: bool = True
    subplan: str | None = None  # why a sub-plan may not send it; None: it may


COMMAND_SPECS: dict[str, CommandSpec] = {}
BUILTIN_COMMANDS: dict[str, Callable] = {}  # name -> handler, of COMMAND_SPECS
#: Commands a graph's sub-plan may not send, with the reason its error gives.
SUBPLAN_FORBIDDEN: dict[str, str] = {}


def command(
    *names: str, cacheable: bool = True, subplan: str | None = None
) -> Callable[[Callable], Callable]:
    """Register ``handler(RE, msg)`` (plain or async) under each of ``names``."""

    def register(func: Callable) -> Callable:
        for name in names:
            if name in COMMAND_SPECS:
                raise ValueError(f"Command {name!r} is registered twice")
            COMMAND_SPECS[name] = CommandSpec(name, func, cacheable, subplan)
            BUILTIN_COMMANDS[name] = func
            if not cacheable:
                UNCACHEABLE.add(name)
            if subplan is not None:
                SUBPLAN_FORBIDDEN[name] = subplan
        return func

    return register


class UnsupportedObject(RunEngineError, TypeError, AssertionError):
    """An object lacks a method a command needs (an AssertionError too, as in bluesky)."""


class MissingArgument(RunEngineError, ValueError, AssertionError):
    """A message lacks an argument its command needs (an AssertionError too, as in bluesky)."""


def supports(obj: object, *methods: str, command: str) -> object:
    """Raise UnsupportedObject unless ``obj`` has every method ``command`` needs."""
    missing = [m for m in methods if not callable(getattr(obj, m, None))]
    if missing:
        raise UnsupportedObject(
            f"Msg({command!r}) needs an object with {', '.join(methods)}(); "
            f"{obj!r} has no {', '.join(missing)}()"
        )
    return obj
