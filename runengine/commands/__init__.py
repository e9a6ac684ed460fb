"""Message command handlers, found by name in one registry.

Each handler is ``async def handler(RE, msg)``; its docstring's first line is what
``RE.print_command_registry()`` shows. Importing the modules below fills ``BUILTIN_COMMANDS``.
"""

from . import devices, flow, flyers, graph, runs, scripts  # noqa: F401 - they register commands
from .registry import BUILTIN_COMMANDS, command

__all__ = ["BUILTIN_COMMANDS", "command"]
