"""The control plane: the one writer of the engine's state, and how other threads reach it.

Every state change happens in :meth:`Controller.apply`, on the engine's loop thread, by looking
the event up in :data:`runengine.states.TABLE`. A control call made on another thread posts
the event through :class:`Inbox` and waits, with a bound, for its outcome: the value of the
rule's effect, or the :class:`TransitionError` that refused it. If the loop does not take the
event in time (a plan or callback blocks the loop thread) the event is withdrawn, atomically,
and :class:`EngineBusy` says that nothing changed; only requests that must never be lost (a
panic, Ctrl+C) stay queued, and say so.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .console import announce
from .errors import RunEngineError
from .states import INTERNAL, PANIC_MSG, EngineState, Rule, TransitionError, decide, state

if TYPE_CHECKING:
    from .engine import RunEngine
    from .execution import Execution

__all__ = ["Controller", "EngineBusy", "Inbox"]

logger = logging.getLogger(__name__)


class EngineBusy(RunEngineError, TimeoutError):
    """The engine's loop thread did not take a control request in time.

    ``queued`` tells whether the request still stands (a panic, Ctrl+C) or was withdrawn, in
    which case nothing changed.
    """

    def __init__(self, what: str, timeout: float, queued: bool) -> None:
        fate = (
            "it stays queued and takes effect as soon as the thread is free"
            if queued
            else "it was withdrawn: nothing changed"
        )
        super().__init__(
            f"{what}: the RunEngine's thread has been busy for {timeout:g} s (a plan or "
            f"callback is blocking it); {fate}."
        )
        self.queued = queued


_PENDING, _TAKEN, _WITHDRAWN = 0, 1, 2


class _Request:
    __slots__ = ("args", "done", "error", "func", "status", "value")

    def __init__(self, func: Callable, args: tuple) -> None:
        self.func = func
        self.args = args
        self.status = _PENDING
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class Inbox:
    """Calls posted to the loop thread, each taken exactly once or withdrawn exactly once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: collections.deque[_Request] = collections.deque()
        self._lock = threading.Lock()  # guards each request's status: taken xor withdrawn
        self.loop_thread_id: int | None = None

    def on_loop_thread(self) -> bool:
        """Whether the caller is the loop thread (where calls run at once)."""
        return threading.get_ident() == self.loop_thread_id

    def call(
        self, what: str, func: Callable, *args: Any, timeout: float, keep: bool = False
    ) -> Any:
        """Run ``func(*args)`` on the loop thread; return its value or raise its exception.

        On the loop thread it runs at once. Elsewhere, if the loop has not taken it within
        ``timeout`` s, it is withdrawn (or, with ``keep``, left queued) and EngineBusy raised.
        """
        if self.on_loop_thread():
            return func(*args)
        request = self._post(func, args)
        if not request.done.wait(timeout):
            with self._lock:
                if request.status == _PENDING and not keep:
                    request.status = _WITHDRAWN
            if request.status != _TAKEN:
                raise EngineBusy(what, timeout, queued=keep)
            # Taken just now: its effect is short, but it may call a state_hook.
            if not request.done.wait(timeout):
                raise EngineBusy(what, 2 * timeout, queued=True)
        if request.error is not None:
            raise request.error
        return request.value

    def post(self, func: Callable, *args: Any) -> None:
        """Queue ``func(*args)`` on the loop thread without waiting; a refusal is only logged."""
        if self.on_loop_thread():
            self._run(_Request(func, args))
        else:
            self._post(func, args)

    def _post(self, func: Callable, args: tuple) -> _Request:
        request = _Request(func, args)
        self._queue.append(request)
        self._loop.call_soon_threadsafe(self.drain)
        return request

    def drain(self) -> None:
        """Take every queued request, in order (loop thread)."""
        queue = self._queue
        while queue:
            request = queue.popleft()
            with self._lock:
                if request.status != _PENDING:
                    continue
                request.status = _TAKEN
            self._run(request)

    def _run(self, request: _Request) -> None:
        try:
            request.value = request.func(*request.args)
        except Exception as err:  # handed to the caller, who raises it
            request.error = err
            logger.debug("control request refused: %s", err)
        finally:
            request.done.set()


class Outcome:
    """What a control call returns to its thread: a value now, or a segment of ``call`` to
    wait for (until its plan parks or it ends)."""

    __slots__ = ("call", "segment", "value")

    def __init__(
        self,
        value: Any = None,
        segment: threading.Event | None = None,
        call: Execution | None = None,
    ) -> None:
        self.value = value
        self.segment = segment
        self.call = call


class Controller:
    """The engine's state and the effects of the table's rules; runs on the loop thread only."""

    def __init__(self, engine: RunEngine) -> None:
        self.engine = engine
        self.state: EngineState = state("idle")
        self.beneath: str | None = None  # while panicked: the state of the plan underneath
        self.ex: Execution | None = None
        self.deferred_pause = False
        self.pause_requests: dict[str, Callable[[], bool]] = {}
        self.verbose = False

    @property
    def call(self) -> Execution:
        """The call the effects act on: the table runs them only in states that have one."""
        ex = self.ex
        if ex is None:
            raise RuntimeError(f"No call to act on in state {self.state!r}")
        return ex

    # ---- the one place the state changes -------------------------------------------------
    def apply(self, event: str, *args: Any) -> Any:
        """Handle ``event`` by the table; return the effect's value (loop thread only)."""
        engine = self.engine
        if not engine._inbox.on_loop_thread():
            raise RuntimeError(f"RunEngine state changed off its loop thread ({event!r})")
        event = self._refine(event, args)
        current = self.state
        panicked = current == "panicked"
        if panicked and (event in INTERNAL or event.startswith("suspend")):
            return self._beneath(event, args)
        try:
            rule = decide(current, event)
        except TransitionError:
            if event in INTERNAL or event in ("suspend", "suspend_unresumable"):
                return None  # e.g. a suspender trip while stopping: nothing to do
            raise
        if rule.message:
            announce(rule.message)
        value = getattr(self, "_" + rule.effect)(rule, event, *args)
        if rule.next == "<beneath>":
            self._move(self.beneath or "idle")
            self.beneath = None
        else:
            self._move(rule.next)
        return value

    def _move(self, new: str) -> None:
        old = self.state
        if new == old:
            return
        self.state = state(new)
        if self.verbose:
            logger.info("Change state on %r from %r -> %r", self.engine, old, new)
        hook = self.engine.state_hook
        if hook is not None:
            hook(new, old)

    def _beneath(self, event: str, args: tuple) -> Any:
        """An event of the plan while panicked: it moves the state beneath the panic."""
        try:
            rule = decide(self.beneath or "idle", event)
        except TransitionError:
            return None
        value = getattr(self, "_" + rule.effect)(rule, event, *args)
        self.beneath = rule.next
        return value

    def _refine(self, event: str, args: tuple) -> str:
        """Name what happens precisely, so the table needs no conditions."""
        ex = self.ex
        if event == "suspend" and ex is not None and self.state != "paused":
            if not ex.cache.resumable:
                return "suspend_unresumable"
            if ex.in_suspension:
                return "suspend_held"
        paused = self.state in ("pausing", "paused")
        if paused and event in ("pause_deferred", "pause_now") and args and args[0] is not None:
            return "pause_hold"  # a named request: it holds the resume
        if event == "resume" and self.state == "paused" and self._resume_blockers():
            return "resume_refused"
        return event

    def _resume_blockers(self) -> list[str]:
        blockers = []
        for name, allows in self.pause_requests.items():
            try:
                allowed = allows()
            except Exception as err:
                logger.warning("pause request %r: its callback raised %r", name, err)
                allowed = False
            if not allowed:
                blockers.append(name)
        return blockers

    # ---- effects (named by the table) -----------------------------------------------------
    def _nothing(self, rule: Rule, event: str, *args: Any) -> None:
        return None

    def _claim(self, rule: Rule, event: str, call: Any) -> Outcome:
        engine = self.engine
        ex: Execution = call.execution
        for token in engine._temp_tokens:
            engine.dispatcher.unsubscribe(token)
        engine._temp_tokens = [
            engine.dispatcher.subscribe(func, name)
            for name, funcs in call.subs.items()
            for func in funcs
        ]
        engine._metadata_per_call = call.metadata
        engine._plan = call.plan
        self.deferred_pause = False
        self.pause_requests.clear()
        self.ex = engine._exec = ex
        ex.segment = threading.Event()
        ex.task = engine._loop.create_task(ex.run())
        return Outcome(segment=ex.segment, call=ex)

    def _note(self, rule: Rule, event: str, name: Any = None, callback: Any = None, *_: Any):
        self._hold_for(name, callback)

    def _hold_for(self, name: Any, callback: Any) -> None:
        if name is not None:  # a named request holds the resume until its callback allows
            self.pause_requests[name] = callback if callback is not None else (lambda: True)

    def _defer(self, rule: Rule, event: str, name: Any = None, callback: Any = None, who=""):
        self._hold_for(name, callback)
        self.deferred_pause = True
        self.call.pause_requested_by = who or name or ""

    def _interrupt(self, rule: Rule, event: str, *args: Any) -> Any:
        ex = self.call
        if event in ("pause_now", "deferred_due"):
            name, callback, who = (*args, None, None, "")[:3]
            self._hold_for(name, callback)
            self.deferred_pause = False
            ex.pause_requested_by = who or name or ""
            ex.cut_short("pause", None)
            return None
        reason = args[0] if args else ""
        ex.cut_short(event, reason)
        return Outcome(value=self.engine._result(ex))

    def _unresumable(self, rule: Rule, event: str, *args: Any) -> None:
        self.call.cut_short("unresumable", "")

    def _suspend(self, rule: Rule, event: str, *suspension: Any) -> None:
        announce(f"Suspension occurred at {time.ctime()}.")
        self.call.held_suspensions.append(suspension)
        self.call.cut_short("suspend", None)

    def _hold_suspension(self, rule: Rule, event: str, *suspension: Any) -> None:
        self.call.held_suspensions.append(suspension)

    def _parked(self, rule: Rule, event: str) -> None:
        self.deferred_pause = False

    def _decide(self, rule: Rule, event: str, reason: str = "") -> Outcome:
        ex = self.call
        ex.segment = threading.Event()
        if event == "resume":
            self.pause_requests.clear()
        if ex.decision is None:
            raise RuntimeError(f"{event!r} decided for a call that is not parked")
        ex.decision.set_result((event, reason))
        return Outcome(segment=ex.segment, call=ex)

    def _refuse(self, rule: Rule, event: str, *args: Any) -> Outcome:
        return Outcome(value=self._resume_blockers())

    def _panic(self, rule: Rule, event: str) -> None:
        ex = self.call
        if rule.beneath == "aborting" and self.state != "aborting":
            ex.cut_short("abort", "panic")
        self.beneath = rule.beneath

    def _recover(self, rule: Rule, event: str) -> str:
        return self.beneath or "idle"

    def _finish(self, rule: Rule, event: str) -> None:
        pass


def refuse_if_panicked(current: str) -> None:
    """The fast refusal on the caller's thread (the loop's check is the one that counts)."""
    if current == "panicked":
        raise RuntimeError(PANIC_MSG)
