"""The RunEngine as bluesky-queueserver's worker needs it: a refused resume stays paused."""

from __future__ import annotations

from bluesky.run_engine import RunEngineResult
from bluesky.utils import RunEngineInterrupted

from runengine import RunEngine

__all__ = ["QueueRunEngine"]


class QueueRunEngine(RunEngine):
    """:class:`runengine.RunEngine` whose refused :meth:`resume` raises instead of returning.

    The queueserver worker takes whatever ``RE.resume()`` returns as the plan's end and moves
    the item to the history as completed. A resume that named pause requests refuse must
    instead leave the item paused in the queue: raising :class:`RunEngineInterrupted` (as
    bluesky does when a resumed plan pauses again) makes the worker report ``paused``.
    """

    def resume(self) -> tuple | RunEngineResult | list[str]:
        outcome = super().resume()
        if isinstance(outcome, list):
            raise RunEngineInterrupted(
                f"Cannot resume: these pause requests still hold: {', '.join(outcome)}"
            )
        return outcome
