"""Whether the code running now runs for one of our engine's calls (a context variable)."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["enter_engine_call", "in_engine_call", "leave_engine_call"]

# Set inside the task of each call (asyncio gives every task its own copy of the context), so
# a bluesky RunEngine's task on the same loop and thread never sees it.
_IN_CALL: ContextVar[bool] = ContextVar("runengine_call", default=False)


def enter_engine_call() -> None:
    """Mark the current task as one of our engine's calls (call at the start of its task).

    Set on a thread, the tasks that thread then starts inherit it: the benchmarks' bluesky+
    engine runs bluesky's RunEngine with the patches on this way.
    """
    _IN_CALL.set(True)


def leave_engine_call() -> None:
    """Mark the current context as outside our engine's calls again."""
    _IN_CALL.set(False)


in_engine_call = _IN_CALL.get
