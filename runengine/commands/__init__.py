"""Message command handlers, found by name in one registry.

Each handler is ``async def handler(RE, msg)``; its docstring's first line is what
``RE.print_command_registry()`` shows. Importing the modules below fills ``BUILTIN_COMMANDS``.
"""

# Imported to register their commands.
from . import devices, flow, flyers, graph, locks, runs, scripts  # noqa: F401
from .registry import BUILTIN_COMMANDS, command

__all__ = ["BUILTIN_COMMANDS", "command"]
