"""ActionGraph: actions run concurrently as their requirements allow; itself an action (nesting).

Semantics (asynciojobs 0.19 where it is safe, see docs): every action whose requirements are
done starts, at most ``window`` at a time; a critical failure cancels everything else and raises
:class:`GraphFailed`; a non-critical one leaves the result ``ok=False`` and
(``on_failed_requirement="skip"``) skips its dependants; ``timeout`` bounds the whole run: what
still runs then ends TIMEOUT and a critical graph raises :class:`GraphTimeout`; forever actions
are cancelled once the finite ones are over. Each distinct shutdown hook runs once per run,
after the last of its users (:mod:`runengine.graph.shutdowns`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import listing
from .action import Action, flatten
from .context import RunContext, settle
from .result import (
    DONE,
    FAILURES,
    FINISHED,
    IDLE,
    SCHEDULED,
    SKIPPED,
    GraphCycleError,
    GraphResult,
    conclude,
)
from .running import run_action
from .shutdowns import ShutdownHooks

__all__ = ["ActionGraph"]

_OWN = object()  # a run bounded by the graph's own ``timeout``


def _checked_timeout(timeout: Any) -> float | None:
    """None (no limit), or seconds >= 0; ``math.inf`` is no limit too."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"a graph's timeout is a number of seconds or None, not {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"a graph's timeout is >= 0 seconds (or None), not {timeout!r}")
    return None if math.isinf(timeout) else float(timeout)


class ActionGraph(Action):
    """``ActionGraph(*actions, timeout=None, window=None, label=None, critical=True,
    on_failed_requirement="skip", shutdown_timeout=1.0, resume="incomplete")``.

    ``run()`` (alias ``orchestrate()``) runs it standalone; ``yield from run_graph(graph)``
    inside a plan. ``timeout``: seconds the whole run may take (``run(timeout=)`` overrides it
    for one run). ``resume``: after an interrupted run (a pause) the next run in the same
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
        self.graph_timeout = _checked_timeout(timeout)
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
        self._run_timeout: float | None = None  # the timeout of the current (last) run
        self._cutting = False  # its timeout ran out: what ends now ends TIMEOUT
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

    def check(self, alongside: bool = False, timeout: Any = _OWN) -> None:
        """Refuse, before anything runs: cycles, and forever-only graphs without a timeout
        (``timeout``: the one the run will have, if not the graph's own)."""
        self.topological_order()
        limit = self.graph_timeout if timeout is _OWN else _checked_timeout(timeout)
        finite = [a for a in self.actions if not a.forever]
        if self.actions and not finite and limit is None and not alongside:
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
    def run(self, timeout: Any = _OWN) -> GraphResult:
        """Run the graph on a new event loop (``asyncio.run``); see :meth:`co_run`."""
        if asyncio._get_running_loop() is not None:
            raise RuntimeError("An event loop is running here: use `await graph.co_run()`")
        return asyncio.run(self.co_run(timeout))

    def orchestrate(self, timeout: Any = _OWN) -> bool:
        """The seed's name for :meth:`run`: True when every action is done, False when a
        non-critical graph failed or ran out of time (a critical one raises GraphFailed or
        GraphTimeout). ``timeout``: at most that many seconds for the whole graph, this run."""
        return self.run(timeout).ok

    async def co_run(self, timeout: Any = _OWN) -> GraphResult:
        """Run on the running loop; returns a GraphResult, raises GraphFailed/GraphTimeout.

        ``timeout`` (seconds, or None for no limit) bounds this run instead of the graph's
        ``timeout``: when it runs out, what still runs is cancelled and ends TIMEOUT (forever
        actions CANCELLED), the shutdown hooks run, and ``result.timed_out`` lists them."""
        return await self._co_run(RunContext(), timeout=timeout)

    def end(self) -> None:
        """Ask a running graph to stop now: everything still running ends CANCELLED."""
        if self._ending is not None and not self._ending.done():
            self._ending.set_result(None)

    async def _co_run(
        self, ctx: RunContext, nested: bool = False, timeout: Any = _OWN
    ) -> GraphResult:
        limit = self.graph_timeout if timeout is _OWN else _checked_timeout(timeout)
        self.check(ctx.alongside, limit)
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
        self._run_timeout = limit
        deadline = None if limit is None else start + limit
        hooks = None if nested else ShutdownHooks(self)
        if hooks is not None:
            ctx.shutdowns = hooks
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
            self._cutting = timed_out  # the tasks cancelled now ran out of time
            again = await settle(list(tasks))
            self._cutting = False
            self._ending = None
            kept = interrupted and ctx.keep_for_resume(self)
            if not kept:
                for action in self.iterate(True):
                    action._discard()  # a one-shot body that will not run: closed
            if hooks is not None:
                again = await hooks.close() or again
                ctx.shutdowns = None
            if interrupted:
                self._interrupted_in = ctx.key if kept else None
                self._why = "INTERRUPTED"
            if again and not interrupted:
                raise asyncio.CancelledError
        return conclude(self, loop.time() - start, failure, timed_out, nested, ended)

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
                inner = action.iterate(True) if isinstance(action, ActionGraph) else ()
                for unrun in (action, *inner):
                    unrun._discard()  # it will not run in this run: a one-shot body closed
                ctx.status(action, SKIPPED)
                skipped += not action.forever
                queue.extend(succ[action])
                continue
            action.state = SCHEDULED
            ctx.status(action, SCHEDULED)
            tasks[asyncio.ensure_future(run_action(self, action, window, ctx))] = action
        return skipped

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
