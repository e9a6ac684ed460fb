"""States, status events, results and errors of action graphs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import RunEngineError

if TYPE_CHECKING:
    from .action import Action
    from .graph import ActionGraph

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "FINISHED",
    "IDLE",
    "RUNNING",
    "SCHEDULED",
    "SKIPPED",
    "TIMEOUT",
    "ActionStatus",
    "ActionTimeout",
    "GraphCycleError",
    "GraphError",
    "GraphFailed",
    "GraphResult",
    "GraphTimeout",
    "SubPlanError",
    "conclude",
]

# The life of an action: idle -> scheduled (waiting for a window slot) -> running -> an end.
IDLE = "idle"
SCHEDULED = "scheduled"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
TIMEOUT = "timeout"  # its own timeout expired, or its graph's while it waited or ran
CANCELLED = "cancelled"  # a forever action at the end, or anything cut by a failure/interruption
SKIPPED = "skipped"  # a requirement failed (on_failed_requirement="skip")
FINISHED = frozenset({DONE, FAILED, TIMEOUT, CANCELLED, SKIPPED})
FAILURES = frozenset({FAILED, TIMEOUT})


class ActionStatus(NamedTuple):
    """One state transition of one action, as sent to listeners and the ``action_status`` stream."""

    action_id: int
    label: str
    state: str
    t: float
    exc: BaseException | None = None


class GraphError(RunEngineError, RuntimeError):
    """Base class of the errors of action graphs (a RunEngineError and a RuntimeError)."""


class GraphCycleError(GraphError, ValueError):
    """``check()`` found requirements that form a cycle (nothing was run)."""


class SubPlanError(GraphError):
    """A sub-plan action yielded a message that makes no sense concurrently, or has no engine."""


class ActionTimeout(GraphError, TimeoutError):
    """An action ran longer than its own ``timeout``, or was still waiting or running when
    its graph's ``timeout`` ran out."""


class GraphFailed(GraphError):
    """A critical action failed: ``exception`` is the first such failure, ``result`` the rest."""

    def __init__(self, exception: BaseException | None, result: GraphResult | None = None) -> None:
        super().__init__(exception)
        self.exception = exception
        self.result = result

    def __str__(self) -> str:
        if self.result is None:
            return f"graph failed: {self.exception!r}"
        return f"{self.result.graph.text_label}: {self.result.why}: {self.exception!r}"


class GraphTimeout(GraphFailed, TimeoutError):
    """The whole graph ran longer than its ``timeout``; ``result.timed_out`` says which
    actions ran out of time."""

    def __str__(self) -> str:
        if self.result is None:
            return "graph timed out"
        late = ", ".join(a.text_label for a in self.result.timed_out)
        return f"{self.result.why} (timed out: {late})" if late else self.result.why


@dataclass
class GraphResult:
    """What a graph run gave: ``ok`` (also its truth value), ``why``, and each action's outcome."""

    graph: ActionGraph
    ok: bool
    why: str
    elapsed: float
    states: dict[Action, str] = field(default_factory=dict)
    results: dict[Action, Any] = field(default_factory=dict)
    errors: dict[Action, BaseException] = field(default_factory=dict)
    shutdown_errors: dict[Action, BaseException] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, action: Action) -> Any:
        return self.results[action]

    @property
    def timed_out(self) -> list[Action]:
        """The actions that ran out of time (their own timeout, or the graph's), in order."""
        return [a for a, state in self.states.items() if state == TIMEOUT]

    def __repr__(self) -> str:
        return (
            f"<GraphResult {self.graph.text_label!r} ok={self.ok} why={self.why!r} "
            f"{self.graph.stats()} in {self.elapsed:.3f}s>"
        )


def conclude(
    graph: ActionGraph,
    elapsed: float,
    failure: Action | None,
    timed_out: bool,
    nested: bool,
    ended: bool,
) -> GraphResult:
    """The GraphResult of a run of ``graph`` that just ended, or the exception it raises:
    GraphTimeout, GraphFailed (or, nested and critical, the inner exception itself)."""
    clean = all(_clean(a) or (ended and a.state in (CANCELLED, IDLE)) for a in graph.actions)
    if failure is not None:
        graph._why = f"a CRITICAL action has raised an exception: {failure.text_label}"
    elif timed_out:
        graph._why = f"TIMED OUT after {graph._run_timeout}s"
    elif not clean:
        graph._why = "a non-critical action failed"
    else:
        graph._why = "ENDED" if ended else "FINE"
    result = GraphResult(
        graph,
        ok=failure is None and not timed_out and clean,
        why=graph._why,
        elapsed=elapsed,
        states={a: a.state for a in graph.actions},
        results={a: a._value for a in graph.actions if a.state == DONE},
        errors={a: a._exc for a in graph.actions if a._exc is not None},
        shutdown_errors=graph.shutdown_errors,
    )
    graph.last_result = result
    if timed_out and graph.critical:
        raise GraphTimeout(None, result)
    if failure is not None and graph.critical:
        if nested:  # a nested critical graph propagates its inner exception
            raise failure._exc  # type: ignore[misc]
        raise GraphFailed(failure._exc, result) from failure._exc
    if nested and timed_out:  # a nested non-critical graph fails only itself
        raise GraphTimeout(None, result)
    if nested and failure is not None:
        raise GraphFailed(failure._exc, result)
    return result


def _clean(action: Action) -> bool:
    if action.state == CANCELLED and action.forever:
        return True
    last = getattr(action, "last_result", None)  # a nested graph: done, and fine inside
    if last is not None:
        return action.state == DONE and last.ok
    return action.state == DONE
