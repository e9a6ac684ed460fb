"""The one registry of built-in message commands.

A handler is ``def handler(RE, msg)`` or ``async def handler(RE, msg)``. Plain ones run inline
in the message loop (the fast path); a plain handler that sometimes has to wait returns
``eager.start(coroutine)``, which the loop awaits only if it really suspends.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BUILTIN_COMMANDS", "MissingArgument", "UnsupportedObject", "command", "supports"]

BUILTIN_COMMANDS: dict[str, Callable] = {}


def command(*names: str) -> Callable[[Callable], Callable]:
    """Register ``handler(RE, msg)`` (plain or async) under each of ``names``."""

    def register(func: Callable) -> Callable:
        for name in names:
            if name in BUILTIN_COMMANDS:
                raise ValueError(f"Command {name!r} is registered twice")
            BUILTIN_COMMANDS[name] = func
        return func

    return register


class UnsupportedObject(TypeError, AssertionError):
    """An object lacks a method a command needs (an AssertionError too, as in bluesky)."""


class MissingArgument(ValueError, AssertionError):
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
