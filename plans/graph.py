"""Plan stubs for action graphs: run one inside a plan, or alongside a run.

>>> def plan():
...     yield from bps.open_run()
...     result = yield from run_graph(ActionGraph(SubPlan(bps.mv, m1, 1), SubPlan(bps.mv, m2, 2)))
...     yield from bps.close_run()

``alongside_wrapper(plan, graph)`` binds a graph of (forever) monitors to the runs of ``plan``:
started right after ``open_run``, ended right before ``close_run`` (also when the plan fails:
bluesky's ``run_wrapper`` closes the run then) and, failing that, when the call ends.
``run_alongside(RE, graph)`` installs it as a preprocessor for every plan.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any

from bluesky.preprocessors import finalize_wrapper, plan_mutator
from bluesky.utils import Msg, make_decorator

from runengine.graph import ActionGraph, GraphResult

_NONE = object()  # no run bound yet (None is a valid run key)

__all__ = [
    "alongside_decorator",
    "alongside_wrapper",
    "end_graph",
    "run_alongside",
    "run_graph",
    "start_graph",
]


def run_graph(
    graph: ActionGraph, *, run: Any = None, status_stream: str | None = "action_status"
) -> Generator[Msg, Any, GraphResult]:
    """Run ``graph`` (its sub-plans too) and return its GraphResult.

    A critical failure raises GraphFailed (GraphTimeout). Status changes become events of
    ``status_stream`` in the open run ``run`` (None: no documents).
    """
    return (yield Msg("run_graph", graph, run=run, status_stream=status_stream))


def start_graph(
    graph: ActionGraph, *, run: Any = None, status_stream: str | None = "action_status"
) -> Generator[Msg, Any, None]:
    """Start ``graph`` in the background of this call (forever monitors); see end_graph."""
    return (yield Msg("start_graph", graph, run=run, status_stream=status_stream))


def end_graph(graph: ActionGraph) -> Generator[Msg, Any, GraphResult | None]:
    """Cancel what still runs of a background graph; returns its GraphResult."""
    return (yield Msg("end_graph", graph))


def alongside_wrapper(
    plan: Any, graph: ActionGraph, *, status_stream: str | None = "action_status"
) -> Any:
    """Run ``graph`` alongside the first run ``plan`` opens: from open_run to close_run."""
    state: dict[str, Any] = {"run": _NONE}

    def mutate(msg: Msg) -> tuple:
        if msg.command == "open_run" and state["run"] is _NONE:
            state["run"] = msg.run
            return None, start_graph(graph, run=msg.run, status_stream=status_stream)
        if msg.command == "close_run" and state["run"] is not _NONE and msg.run == state["run"]:
            state["run"] = _NONE
            return _end_then(msg), None
        return None, None

    def _end_then(msg: Msg) -> Generator:
        yield from end_graph(graph)
        return (yield msg)

    def cleanup() -> Generator:
        yield from end_graph(graph)

    return finalize_wrapper(plan_mutator(plan, mutate), cleanup())


alongside_decorator = make_decorator(alongside_wrapper)


def run_alongside(RE: Any, graph: ActionGraph, **kwargs: Any) -> Callable:
    """Bind ``graph`` to the runs of every plan ``RE`` runs; returns the preprocessor installed
    (remove it from ``RE.preprocessors`` to stop)."""
    preprocessor = functools.partial(alongside_wrapper, graph=graph, **kwargs)
    RE.preprocessors.append(preprocessor)
    return preprocessor
