"""Where a graph run happens: standalone on an event loop, or inside a RunEngine call.

The graph asks its context to report state changes and to run sub-plans. The standalone context
reports to the graphs' listeners only and refuses sub-plans; the RunEngine's context
(:mod:`runengine.graph.subplans`) also feeds the open run's ``action_status`` stream and runs
sub-plans through the engine's command handlers.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .result import FINISHED, ActionStatus, SubPlanError

if TYPE_CHECKING:
    from .action import Action

__all__ = ["RunContext", "settle"]


class RunContext:
    """A standalone graph run: listeners only, no sub-plans.

    ``key`` identifies the place a graph was interrupted in: a graph re-run with the same key
    resumes (only incomplete actions run again); any other key starts afresh. ``shutdowns``
    is the run's :class:`~runengine.graph.shutdowns.ShutdownHooks`, told of every action that
    ends.
    """

    alongside = False

    def __init__(self) -> None:
        self.key: Any = object()
        self.shutdowns: Any = None

    def status(self, action: Action, state: str, exc: BaseException | None = None) -> None:
        """Tell every graph from ``action`` up to the top about a state change."""
        event = ActionStatus(action.id or 0, action.text_label, state, time.time(), exc)
        graph = action._graph
        seen = set()
        while graph is not None and id(graph) not in seen:
            seen.add(id(graph))
            for listener in list(graph._listeners):
                listener(event)
            graph = graph._graph
        if state in FINISHED and self.shutdowns is not None:
            self.shutdowns.ended(action)

    async def run_plan(self, action: Action, state: Any) -> Any:
        """Run a sub-plan action: only a RunEngine can."""
        state.close()
        raise SubPlanError(
            f"{action.text_label!r} is a sub-plan: run its graph inside a plan on a RunEngine "
            "(yield from run_graph(graph)), not standalone"
        )

    def interruption(self) -> str | None:
        """What is cancelling the graph from outside: 'pause', 'abort'... or None."""
        return None

    def keep_for_resume(self, graph: Any) -> bool:
        """``graph`` was cut short by :meth:`interruption`: True if a resume may run it again
        in this context (its unrun one-shot bodies are then kept, not closed)."""
        return False

    def make_plan_state(self, action: Action, gen: Any) -> Any:
        """Wrap a new sub-plan generator for :meth:`run_plan`."""
        from .subplans import PlanState

        return PlanState(gen)


async def settle(tasks: Any) -> bool:
    """Cancel ``tasks`` and wait until every one has ended, even if cancelled meanwhile.

    Returns True if the caller was cancelled while waiting (it should re-raise).
    """
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    cancelled = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
            for task in pending:
                task.cancel()
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" warning
    return cancelled
