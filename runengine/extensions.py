"""The seam features plug into: an extension names the message commands it contributes and
the module that registers them (with :func:`runengine.commands.command`).

The engine imports an extension's module the first time a plan sends one of its commands
(or when ``RE.commands`` or ``RE.print_command_registry()`` lists them all), so
``import runengine`` and ``RunEngine()`` load no feature a session does not use. The core
imports no feature module; ``tests/runengine/test_extensions.py`` walks the imports to keep
it so, and checks that each module registers exactly the commands its extension declares.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .commands.spec import BUILTIN_COMMANDS
from .errors import RunEngineError

__all__ = ["DEFAULT_EXTENSIONS", "Extension", "ExtensionError", "load"]


class ExtensionError(RunEngineError, ImportError):
    """An extension's module did not register the commands the extension declares."""


@dataclass(frozen=True)
class Extension:
    """A feature: its ``name``, the ``module`` to import, the ``commands`` that module adds."""

    name: str
    module: str
    commands: tuple[str, ...]


#: Enabled in every RunEngine, as before features loaded on use.
DEFAULT_EXTENSIONS: tuple[Extension, ...] = (
    Extension("graphs", "runengine.graph.commands", ("run_graph", "start_graph", "end_graph")),
    Extension(
        "locks",
        "runengine.locks.commands",
        ("acquire_lock", "yield_lock", "release_lock", "_reacquire_locks"),
    ),
    Extension("scripts", "runengine.scripts.commands", ("run_script",)),
)


def load(extension: Extension) -> dict[str, Callable]:
    """Import ``extension``'s module; its handlers by command name."""
    importlib.import_module(extension.module)
    missing = [name for name in extension.commands if name not in BUILTIN_COMMANDS]
    if missing:
        raise ExtensionError(
            f"Extension {extension.name!r}: {extension.module} registered no {missing}"
        )
    return {name: BUILTIN_COMMANDS[name] for name in extension.commands}
