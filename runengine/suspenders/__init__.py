"""runengine's own suspenders, all on bluesky's :class:`~bluesky.suspenders.SuspenderBase`.

- :class:`SuspendWhileLocked` (:mod:`.locked`): while someone else holds a hardware lock.
- :class:`SuspendOnExpired` (:mod:`.expired`): while agents of a heartbeat registry are silent.
- :class:`SuspendWhileFileExists` (:mod:`.file`): while a file exists at a path.
- :class:`SuspendOnDisconnect` (:mod:`.connection`): while a device has lost its connection.

Each loads when first asked for, so importing one does not import the others' features
(locks, the heartbeat registry, the agents). Each feature's façade re-exports its own
(``runengine.locks``, ``runengine.heartbeats``, ``runengine.agents``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import SuspendOnDisconnect
    from .expired import SuspendOnExpired
    from .file import SuspendWhileFileExists
    from .locked import SuspendWhileLocked

__all__ = [
    "SuspendOnDisconnect",
    "SuspendOnExpired",
    "SuspendWhileFileExists",
    "SuspendWhileLocked",
]

_MODULES = {
    "SuspendOnDisconnect": "connection",
    "SuspendOnExpired": "expired",
    "SuspendWhileFileExists": "file",
    "SuspendWhileLocked": "locked",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
