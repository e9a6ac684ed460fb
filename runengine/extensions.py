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

__all__ = ["CLAIMED", "DEFAULT_EXTENSIONS", "Extension", "ExtensionError", "load", "on_call"]


class ExtensionError(RunEngineError, ImportError):
    """An extension's module did not register the commands the extension declares."""


@dataclass(frozen=True)
class Extension:
    """A feature: its ``name``, the ``module`` to import, the ``commands`` that module adds.

    ``on_call``: the name of a function of ``module`` called with the
    :class:`~runengine.call.CallContext` as each ``RE(plan)`` call starts (it may
    :meth:`~runengine.call.CallContext.attach` hooks for the call). An extension with one loads
    at the first call instead of at the first use of a command; None (the default) for those
    that only need to hear of calls that use them.
    """

    name: str
    module: str
    commands: tuple[str, ...]
    on_call: str | None = None

    def __post_init__(self) -> None:
        CLAIMED.update(self.commands)


#: Every command some extension contributes: an engine has it only if it has that extension,
#: whether or not another engine of the process loaded the extension's module already.
CLAIMED: set[str] = set()


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


def on_call(extension: Extension) -> Callable | None:
    """The function ``extension`` wants called as each call starts (its module loads now)."""
    if extension.on_call is None:
        return None
    load(extension)
    module = importlib.import_module(extension.module)
    func = getattr(module, extension.on_call, None)
    if not callable(func):
        raise ExtensionError(
            f"Extension {extension.name!r}: {extension.module} has no {extension.on_call!r}()"
        )
    return func
