"""Make bluesky's own suspenders dependable on our engine, per instance, while installed.

bluesky's suspenders drop a trip in three situations (bluesky #1944, #1970 and their kin):
the engine's loop is busy for more than 0.1 s when the trip arrives, the engine is not in the
'running' state at that moment (pausing, paused, already suspending), or a second suspender
trips while a first one holds the plan. :func:`harden` fixes the first on the suspender
installed in our engine; the engine covers the others by asking every installed suspender
whether it is tripped whenever it is about to go on (on resume, and when a suspension ends).

``harden`` also closes a race in ``get_futures``: it reads ``tripped`` outside the lock, so a
release arriving in between left it handing out a fresh event that nobody would ever set.

It relies on ``SuspenderBase``'s name-mangled ``__make_event`` hook (and ``_lock``, ``_ev``,
``_tripped``): :data:`HARDENABLE` checks that shape, and without it suspenders run unchanged
(bluesky's behaviour). :func:`soften` takes the instance attributes away again on removal, so
the same suspender installed in a bluesky RunEngine later behaves as bluesky's.
"""

from __future__ import annotations

import asyncio
import logging
import types
from typing import Any

from bluesky.suspenders import SuspenderBase

__all__ = ["HARDENABLE", "harden", "soften"]

logger = logging.getLogger(__name__)

_MAKE_EVENT = "_SuspenderBase__make_event"  # SuspenderBase.__make_event, as Python names it
_ATTRIBUTES = (_MAKE_EVENT, "get_futures")

#: Whether SuspenderBase still has the shape :func:`harden` was written for.
HARDENABLE = callable(getattr(SuspenderBase, _MAKE_EVENT, None)) and all(
    name in SuspenderBase.__init__.__code__.co_names for name in ("_lock", "_ev", "_tripped")
)


def _make_event_now(self: SuspenderBase) -> asyncio.Event | None:
    # asyncio.Event binds to a loop only when first awaited (Python >= 3.10), so it can be made
    # on any thread; bluesky's version waits at most 0.1 s for the loop to make it, or drops
    # the trip.
    if self._ev is None and self.RE is not None:
        self._ev = asyncio.Event()
    return self._ev


def _get_futures_atomically(self: SuspenderBase) -> tuple[list, str]:
    with self._lock:
        event = _make_event_now(self) if self._tripped else None
        if event is None:
            return [], ""
        return [event.wait], self._get_justification()


def harden(suspender: Any) -> bool:
    """Let a bluesky SuspenderBase register a trip even while the engine's loop is busy, and
    hand out only events that its release will set; whether it was done. Not for one that does
    so itself (``hardened = True``), nor when bluesky's shape changed (:data:`HARDENABLE`)."""
    if not isinstance(suspender, SuspenderBase) or getattr(suspender, "hardened", False):
        return False
    if not HARDENABLE:
        logger.warning("bluesky's SuspenderBase changed shape: %r runs unhardened", suspender)
        return False
    instance = vars(suspender)  # the instance's own attributes: its class is left as it is
    instance[_MAKE_EVENT] = types.MethodType(_make_event_now, suspender)
    instance["get_futures"] = types.MethodType(_get_futures_atomically, suspender)
    return True


def soften(suspender: Any) -> None:
    """Undo :func:`harden` on ``suspender`` (its class's methods apply again)."""
    if isinstance(suspender, SuspenderBase) and not getattr(suspender, "hardened", False):
        for name in _ATTRIBUTES:
            vars(suspender).pop(name, None)
