"""Action graphs: asynciojobs-style concurrent actions with requirements, standalone or in plans.

>>> a1, a2 = Action(asyncio.sleep, 1, label="one"), Action(asyncio.sleep, 2)
>>> a2.requires(a1)
>>> ActionGraph(a1, a2, timeout=10).run()

Inside a plan: ``result = yield from runengine.plans.graph.run_graph(graph)``. The seed
notebook's names work too: ``Engine(a1, a2, a3).orchestrate(timeout=10)``.
"""

import itertools

from .action import Action, SubPlan
from .context import RunContext
from .graph import ActionGraph
from .listing import badge
from .result import (
    CANCELLED,
    DONE,
    FAILED,
    IDLE,
    RUNNING,
    SCHEDULED,
    SKIPPED,
    TIMEOUT,
    ActionStatus,
    ActionTimeout,
    GraphCycleError,
    GraphError,
    GraphFailed,
    GraphResult,
    GraphTimeout,
    SubPlanError,
)

#: The seed notebook's name for a graph (asynciojobs' Scheduler).
Engine = ActionGraph
Scheduler = ActionGraph


def Sequence(*actions: Action, requires: object = ()) -> list[Action]:
    """Chain ``actions``: each requires the one before (the first requires ``requires``)."""
    chain = [a for a in actions if a is not None]
    if chain:
        chain[0].requires(requires)
    for before, after in itertools.pairwise(chain):
        after.requires(before)
    return chain


__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "IDLE",
    "RUNNING",
    "SCHEDULED",
    "SKIPPED",
    "TIMEOUT",
    "Action",
    "ActionGraph",
    "ActionStatus",
    "ActionTimeout",
    "Engine",
    "GraphCycleError",
    "GraphError",
    "GraphFailed",
    "GraphResult",
    "GraphTimeout",
    "RunContext",
    "Scheduler",
    "Sequence",
    "SubPlan",
    "SubPlanError",
    "badge",
]
