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
]

# The life of an action: idle -> scheduled (waiting for a window slot) -> running -> an end.
IDLE = "idle"
SCHEDULED = "scheduled"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
TIMEOUT = "timeout"  # its own timeout expired
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
    """An action ran longer than its own ``timeout``."""


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
    """The whole graph ran longer than its ``timeout``."""

    def __str__(self) -> str:
        return self.result.why if self.result is not None else "graph timed out"


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

    def __repr__(self) -> str:
        return (
            f"<GraphResult {self.graph.text_label!r} ok={self.ok} why={self.why!r} "
            f"{self.graph.stats()} in {self.elapsed:.3f}s>"
        )
