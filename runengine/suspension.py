"""Which installed suspenders hold the plan now: the engine asks before it goes on.

bluesky's suspenders drop a trip when the engine is not 'running' as it arrives (pausing,
paused, already suspending) or while another suspender holds the plan; the engine covers that
by asking every installed suspender whether it is tripped whenever it is about to go on (on
resume, and when a suspension ends). The per-suspender fix of the busy-loop case is a patch of
bluesky's, so it lives in :mod:`runengine.compat` (``harden``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["tripped_futures"]


def tripped_futures(suspenders: Iterable[Any]) -> list[Callable]:
    """The awaitable factories of every suspender that is tripped now."""
    futures = []
    for suspender in suspenders:
        if suspender.tripped:
            futures.extend(suspender.get_futures()[0])
    return futures
