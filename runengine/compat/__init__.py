"""Every change runengine makes to another library, in one place.

Each :class:`Patch` names its target, says why, checks that the target still has the shape it
was written for (``applies``: a version gate by shape, so an upgrade that moves or removes it
turns the patch off instead of breaking bluesky), and acts only inside our engine's calls: the
replacement asks :func:`in_engine_call` and otherwise calls the original. A bluesky RunEngine
in the same process, even on the same event loop, gets exactly the original behaviour.

``RunEngine()`` installs them (:func:`install`, idempotent); ``RUNENGINE_NO_SPEEDUPS=1`` keeps
every original in place. ``tests/runengine/compat`` fails loudly if a target disappears.

:func:`harden` is the one change to another library's *objects*: a bluesky suspender installed
in our engine gets two instance attributes (see :mod:`._suspenders`), taken away by
:func:`soften` when it is removed.
"""

from ._context import enter_engine_call, in_engine_call, leave_engine_call
from ._patches import PATCHES, Patch, install, installed, uninstall
from ._suspenders import HARDENABLE, harden, soften

__all__ = [
    "HARDENABLE",
    "PATCHES",
    "Patch",
    "enter_engine_call",
    "harden",
    "in_engine_call",
    "install",
    "installed",
    "leave_engine_call",
    "soften",
    "uninstall",
]
