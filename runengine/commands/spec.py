"""The one registry of message commands built into the engine, and what each one is.

A handler is ``def handler(call, msg)`` or ``async def handler(call, msg)``, ``call`` being the
:class:`~runengine.call.CallContext` of the running call. Plain ones run inline in the message
loop (the fast path); a plain handler that sometimes has to wait returns
``eager.start(coroutine)``, which the loop awaits only if it really suspends.

What the core must know of a command is said once, where it is registered::

    @command("stage", replay="skip", subplan="stage devices in the main plan before run_graph")
    def stage(call, msg): ...

``replay``: what a resume after a pause or suspension does with the command's messages since
the last checkpoint (:data:`REPLAY_POLICIES`):

- ``"resend"`` (the default, as in bluesky): the handler runs again;
- ``"once"``: the handler runs once per message; a replay of a message it already answered
  gets that answer (the response, or for the message the interruption cut short, the exception
  it raised) without running again (a lock taken, a script run);
- ``"skip"``: not recorded for a rewind at all, so a resume does not send it again.

``subplan``: why a graph's sub-plan may not send it (None: it may). The message cache
(:data:`UNCACHEABLE`, :data:`ANSWERED_ONCE`) and the graphs' sub-plans
(:data:`SUBPLAN_FORBIDDEN`) read these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import RunEngineError
from ..stepper import ANSWERED_ONCE, UNCACHEABLE

__all__ = [
    "ANSWERED_ONCE",
    "BUILTIN_COMMANDS",
    "COMMAND_SPECS",
    "REPLAY_POLICIES",
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
    replay: str = "resend"  # one of REPLAY_POLICIES
    subplan: str | None = None  # why a sub-plan may not send it; None: it may

    @property
    def cacheable(self) -> bool:
        """Whether its messages are recorded for a rewind."""
        return self.replay != "skip"


T = TypeVar("T")

#: What a resume may do with a command's messages since the last checkpoint.
REPLAY_POLICIES = ("resend", "once", "skip")

COMMAND_SPECS: dict[str, CommandSpec] = {}
BUILTIN_COMMANDS: dict[str, Callable] = {}  # name -> handler, of COMMAND_SPECS
#: Commands a graph's sub-plan may not send, with the reason its error gives.
SUBPLAN_FORBIDDEN: dict[str, str] = {}


def command(
    *names: str, replay: str = "resend", subplan: str | None = None
) -> Callable[[Callable], Callable]:
    """Register ``handler(call, msg)`` (plain or async) under each of ``names``.

    ``replay`` is one of :data:`REPLAY_POLICIES` (see the module); ``subplan`` says why a
    graph's sub-plan may not send the command (None: it may).
    """
    if replay not in REPLAY_POLICIES:
        raise ValueError(f"replay must be one of {REPLAY_POLICIES}, not {replay!r}")

    def register(func: Callable) -> Callable:
        for name in names:
            if name in COMMAND_SPECS:
                raise ValueError(f"Command {name!r} is registered twice")
            COMMAND_SPECS[name] = CommandSpec(name, func, replay, subplan)
            BUILTIN_COMMANDS[name] = func
            if replay == "skip":
                UNCACHEABLE.add(name)
            elif replay == "once":
                ANSWERED_ONCE.add(name)
            if subplan is not None:
                SUBPLAN_FORBIDDEN[name] = subplan
        return func

    return register


class UnsupportedObject(RunEngineError, TypeError, AssertionError):
    """An object lacks a method a command needs (an AssertionError too, as in bluesky)."""


class MissingArgument(RunEngineError, ValueError, AssertionError):
    """A message lacks an argument its command needs (an AssertionError too, as in bluesky)."""


def supports(obj: T, *methods: str, command: str) -> T:
    """Raise UnsupportedObject unless ``obj`` has every method ``command`` needs."""
    missing = [m for m in methods if not callable(getattr(obj, m, None))]
    if missing:
        raise UnsupportedObject(
            f"Msg({command!r}) needs an object with {', '.join(methods)}(); "
            f"{obj!r} has no {', '.join(missing)}()"
        )
    return obj
