"""ActionGraph: actions run concurrently as their requirements allow; itself an action (nesting).

Semantics (asynciojobs 0.19 where it is safe, see docs): every action whose requirements are
done starts, at most ``window`` at a time; a critical failure cancels everything else, runs the
shutdown hooks once and raises :class:`GraphFailed`; a non-critical one leaves the result
``ok=False`` and (``on_failed_requirement="skip"``) skips its dependants; ``timeout`` bounds the
whole run (:class:`GraphTimeout`); forever actions are cancelled once the finite ones are over.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import listing
from .action import Action, flatten
from .context import RunContext, settle
from .result import (
    CANCELLED,
    DONE,
    FAILURES,
    FINISHED,
    IDLE,
    SCHEDULED,
    SKIPPED,
    GraphCycleError,
    GraphFailed,
    GraphResult,
    GraphTimeout,
)
from .running import run_action, shutdown

__all__ = ["ActionGraph"]


class ActionGraph(Action):
    """``ActionGraph(*actions, timeout=None, window=None, label=None, critical=True,
    on_failed_requirement="skip", shutdown_timeout=1.0, resume="incomplete")``.

    ``run()`` (alias ``orchestrate()``) runs it standalone; ``yield from run_graph(graph)``
    inside a plan. ``resume``: after an interrupted run (a pause) the next run in the same
    RunEngine call re-runs only the ``"incomplete"`` actions, or everything (``"restart"``).
    """

    kind = "graph"

    def __init__(
        self,
        *actions: Any,
        timeout: float | None = None,
        window: int | None = None,
        label: str | None = None,
        critical: bool = True,
        on_failed_requirement: str = "skip",
        shutdown_timeout: float = 1.0,
        resume: str = "incomplete",
        requires: Any = (),
        shutdown: Callable | None = None,
        locks: Any = (),
    ) -> None:
        if on_failed_requirement not in ("skip", "run"):
            raise ValueError("on_failed_requirement is 'skip' or 'run'")
        if resume not in ("incomplete", "restart"):
            raise ValueError("resume is 'incomplete' or 'restart'")
        super().__init__(
            None, label=label, critical=critical, requires=requires, shutdown=shutdown, locks=locks
        )
        self.graph_timeout = timeout
        self.window = window
        self.on_failed_requirement = on_failed_requirement
        self.shutdown_timeout = shutdown_timeout
        self.resume = resume
        self.actions: list[Action] = []
        self._members: set[Action] = set()
        self._listeners: list[Callable] = []
        self._interrupted_in: Any = None
        self._ending: asyncio.Future | None = None
        self._why = "NOT RUN"
        self._started_at: float | None = None
        self.last_result: GraphResult | None = None
        self.shutdown_errors: dict[Action, BaseException] = {}
        self.update(actions)

    # ---- building ----------------------------------------------------------------------------
    def add(self, action: Action, requires: Any = ()) -> Action:
        """Add ``action`` (optionally with more requirements); returns it."""
        if not isinstance(action, Action):
            raise TypeError(f"an ActionGraph holds actions, not {action!r}")
        if action is self:
            raise ValueError("a graph cannot contain itself")
        if action not in self._members:
            self.actions.append(action)
            self._members.add(action)
        action._graph = self
        action.requires(requires)
        return action

    def update(self, actions: Any) -> None:
        """Add several actions (nested lists accepted)."""
        for action in flatten(actions):
            self.add(action)

    def subscribe(self, listener: Callable) -> Callable:
        """Call ``listener(ActionStatus)`` on every state change of an action (nested too)."""
        self._listeners.append(listener)
        return listener

    def unsubscribe(self, listener: Callable) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def sanitize(self) -> None:
        """Forget requirements on actions that are not in this graph."""
        for action in self.actions:
            for req in [r for r in action.required if r not in self._members]:
                action.required.pop(req)

    def iterate(self, nested: bool = True) -> Any:
        """Every action, nested graphs' actions after their graph when ``nested``."""
        for action in self.actions:
            yield action
            if nested and isinstance(action, ActionGraph):
                yield from action.iterate(True)

    # ---- checks and order --------------------------------------------------------------------
    def _requirements(self, action: Action) -> list[Action]:
        return [r for r in action.required if r in self._members]

    def topological_order(self) -> list[Action]:
        """The actions, each after its requirements (GraphCycleError on a cycle)."""
        order: list[Action] = []
        state: dict[Action, int] = {}  # 1: on the current path, 2: placed

        def visit(action: Action, path: list[Action]) -> None:
            mark = state.get(action)
            if mark == 2:
                return
            if mark == 1:
                cycle = [*path[path.index(action) :], action]
                labels = " -> ".join(a.text_label for a in cycle)
                raise GraphCycleError(f"{self.text_label}: requirements form a cycle: {labels}")
            state[action] = 1
            path.append(action)
            for req in self._requirements(action):
                visit(req, path)
            path.pop()
            state[action] = 2
            order.append(action)

        for action in self.actions:
            visit(action, [])
        return order

    def check(self, alongside: bool = False) -> None:
        """Refuse, before anything runs: cycles, and forever-only graphs without a timeout."""
        self.topological_order()
        finite = [a for a in self.actions if not a.forever]
        if self.actions and not finite and self.graph_timeout is None and not alongside:
            raise ValueError(
                f"{self.text_label}: every action is forever and there is no timeout, so it "
                "would never end; give the graph a timeout or a finite action"
            )
        for action in self.actions:
            if isinstance(action, ActionGraph):
                action.check(alongside)

    def _number(self, start: int = 1) -> int:
        """Stable ids: depth first, in topological order (list_safe order on a cycle)."""
        try:
            order = self.topological_order()
        except GraphCycleError:
            order = list(self.actions)
        for action in order:
            action.id = start
            start += 1
            if isinstance(action, ActionGraph):
                start = action._number(start)
        return start

    # ---- running -----------------------------------------------------------------------------
    def run(self) -> GraphResult:
        """Run the graph on a new event loop (``asyncio.run``); see :meth:`co_run`."""
        if asyncio._get_running_loop() is not None:
            raise RuntimeError("An event loop is running here: use `await graph.co_run()`")
        return asyncio.run(self.co_run())

    def orchestrate(self) -> bool:
        """The seed's name for :meth:`run`: True when every action is done."""
        return self.run().ok

    async def co_run(self) -> GraphResult:
        """Run on the running loop; returns a GraphResult, raises GraphFailed/GraphTimeout."""
        return await self._co_run(RunContext())

    def end(self) -> None:
        """Ask a running graph to stop now: everything still running ends CANCELLED."""
        if self._ending is not None and not self._ending.done():
            self._ending.set_result(None)

    async def _co_run(self, ctx: RunContext, nested: bool = False) -> GraphResult:
        self.check(ctx.alongside)
        if not nested:
            self._number()
        resuming = self.resume == "incomplete" and self._interrupted_in is ctx.key
        self._interrupted_in = None
        for action in self.actions:
            if resuming and action.state == DONE:
                continue
            before = action.state
            if resuming and action._plan_state is not None:
                action.state = IDLE  # a sub-plan cut short: it resumes in place
            else:
                action._reset()
            if before != IDLE:
                ctx.status(action, IDLE)
        loop = asyncio.get_running_loop()
        start = loop.time()
        self._started_at = time.time()
        self._why = "RUNNING"
        deadline = None if self.graph_timeout is None else start + self.graph_timeout
        window = asyncio.Semaphore(self.window) if self.window else None
        tasks: dict[asyncio.Future, Action] = {}
        self._ending = ending = loop.create_future()
        failure: Action | None = None
        timed_out = interrupted = ended = False
        reqs = {a: self._requirements(a) for a in self.actions}
        succ: dict[Action, list[Action]] = {a: [] for a in self.actions}
        for action, required in reqs.items():
            for req in required:
                succ[req].append(action)
        finite = [a for a in self.actions if not a.forever]
        left = sum(1 for a in finite if a.state not in FINISHED)  # finite actions not over
        candidates = list(self.actions)
        try:
            while True:
                left -= self._start_ready(candidates, reqs, succ, tasks, window, ctx)
                if finite and left == 0:
                    break  # forever-only graphs run until their timeout (or end())
                remaining = None if deadline is None else deadline - loop.time()
                if not tasks or (remaining is not None and remaining <= 0):
                    timed_out = bool(tasks)
                    break
                done, _ = await asyncio.wait(
                    [*tasks, ending], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if ending.done():
                    ended = True
                    break
                if not done:
                    timed_out = True
                    break
                candidates = []
                for task in done:
                    action = tasks.pop(task)
                    left -= not action.forever
                    candidates.extend(succ[action])
                    if action.state in FAILURES and action.critical and failure is None:
                        failure = action
                if failure is not None:
                    break
        except asyncio.CancelledError:
            interrupted = True
            raise
        finally:
            again = await settle(list(tasks))
            self._ending = None
            self.shutdown_errors = await shutdown(self, nested)
            if interrupted:
                self._interrupted_in = ctx.key
                self._why = "INTERRUPTED"
            if again and not interrupted:
                raise asyncio.CancelledError
        return self._conclude(loop.time() - start, failure, timed_out, nested, ended)

    def _start_ready(
        self, candidates: list, reqs: dict, succ: dict, tasks: dict, window: Any, ctx: RunContext
    ) -> int:
        """Start (or skip) the candidates whose requirements are over; the finite ones skipped."""
        skipped = 0
        queue = deque(candidates)
        while queue:
            action = queue.popleft()
            if action.state != IDLE:
                continue
            required = reqs[action]
            if any(r.state not in FINISHED for r in required):
                continue
            if self.on_failed_requirement == "skip" and any(r.state != DONE for r in required):
                action.state = SKIPPED
                ctx.status(action, SKIPPED)
                skipped += not action.forever
                queue.extend(succ[action])
                continue
            action.state = SCHEDULED
            ctx.status(action, SCHEDULED)
            tasks[asyncio.ensure_future(run_action(self, action, window, ctx))] = action
        return skipped

    def _conclude(
        self, elapsed: float, failure: Action | None, timed_out: bool, nested: bool, ended: bool
    ) -> GraphResult:
        clean = all(_clean(a) or (ended and a.state in (CANCELLED, IDLE)) for a in self.actions)
        if failure is not None:
            self._why = f"a CRITICAL action has raised an exception: {failure.text_label}"
        elif timed_out:
            self._why = f"TIMED OUT after {self.graph_timeout}s"
        elif not clean:
            self._why = "a non-critical action failed"
        else:
            self._why = "ENDED" if ended else "FINE"
        result = GraphResult(
            self,
            ok=failure is None and not timed_out and clean,
            why=self._why,
            elapsed=elapsed,
            states={a: a.state for a in self.actions},
            results={a: a._value for a in self.actions if a.state == DONE},
            errors={a: a._exc for a in self.actions if a._exc is not None},
            shutdown_errors=self.shutdown_errors,
        )
        self.last_result = result
        if timed_out and self.critical:
            raise GraphTimeout(None, result)
        if failure is not None and self.critical:
            if nested:  # a nested critical graph propagates its inner exception
                raise failure._exc
            raise GraphFailed(failure._exc, result) from failure._exc
        if nested and not result.ok and (failure is not None or timed_out):
            error = GraphTimeout(None, result) if timed_out else GraphFailed(failure._exc, result)
            raise error
        return result

    # ---- introspection -----------------------------------------------------------------------
    @property
    def text_label(self) -> str:
        return str(self.label) if self.label is not None else "ActionGraph"

    def why(self) -> str:
        """'FINE', 'TIMED OUT after Ns', 'a CRITICAL action has raised...', 'NOT RUN'..."""
        return self._why

    def failed_critical(self) -> bool:
        return self._why.startswith("a CRITICAL")

    def failed_time_out(self) -> bool:
        return self._why.startswith("TIMED OUT")

    list = listing.list_
    list_safe = listing.list_safe
    debrief = listing.debrief
    stats = listing.stats
    to_dot = listing.to_dot
    export = listing.export

    def __iter__(self) -> Any:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)


def _clean(action: Action) -> bool:
    if action.state == CANCELLED and action.forever:
        return True
    if isinstance(action, ActionGraph) and action.last_result is not None:
        return action.state == DONE and action.last_result.ok
    return action.state == DONE
