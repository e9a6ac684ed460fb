"""Message command handlers, found by name in one registry.

Each handler is ``async def handler(RE, msg)``; its docstring's first line is what
``RE.print_command_registry()`` shows. Importing the modules below fills ``BUILTIN_COMMANDS``
with bluesky's own commands; the features' modules here (graph, locks, scripts) register
theirs when :mod:`runengine.extensions` first needs them.
"""

# Imported to register their commands.
from . import devices, flow, flyers, runs  # noqa: F401
from .spec import BUILTIN_COMMANDS, command

__all__ = ["BUILTIN_COMMANDS", "command"]
