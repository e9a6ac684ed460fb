"""One call of the engine: the message loop, its interruptions and its cleanup.

Everything here runs on the loop thread. The state is the controller's (``runengine.control``):
a control request sets :attr:`Execution.interrupt` through the controller and cuts short the
command that is waiting (a ``sleep``, a ``wait``); the message loop acts on it at the next
message boundary and tells the controller what happened (the plan parked, a suspension began,
the plan ended), which moves the state by the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

from bluesky.utils import (
    FailedPause,
    Msg,
    PlanHalt,
    RequestAbort,
    RequestStop,
    single_gen,
)

from .call import CallContext
from .compat import enter_engine_call
from .console import announce
from .eager import Suspended
from .errors import RunEngineError
from .states import PRIORITY, TransitionError
from .stepper import REPLAYED, UNCACHEABLE, PlanFinished, replay
from .suspension import tripped_futures

if TYPE_CHECKING:
    from .engine import RunEngine

__all__ = ["Execution"]

logger = logging.getLogger(__name__)
_FIX_YOUR_PLAN = "Please fix your plan."
T = TypeVar("T")


class PauseWithoutCheckpoint(RunEngineError, FailedPause, RequestAbort):
    """A pause where no checkpoint could resume the plan: the run is aborted instead.

    Also a :class:`RequestAbort`, so ``run_wrapper`` closes the run with ``exit_status='abort'``.
    """


# How long the message loop may run without letting other loop callbacks in (status callbacks,
# suspender trips, control requests). It yields sooner when a callback is already waiting.
YIELD_EVERY = 0.005
CLOCK_EVERY = 8  # messages between two looks at the clock

_EXCEPTIONS = {
    "stop": RequestStop,
    "abort": RequestAbort,
    "halt": PlanHalt,
    "unresumable": PauseWithoutCheckpoint,
}
_ROGUE_INTERRUPT = (
    "An unknown external library has improperly raised KeyboardInterrupt. "
    "Intercepting and triggering a HALT."
)


class _CutShort:
    """The response of a message interrupted while it waited."""

    __slots__ = ("cached",)

    def __init__(self, cached: bool) -> None:
        self.cached = cached


class Execution(CallContext):
    """One ``RE(plan)`` call, from its first message to its last cleanup: the message loop,
    its interruptions and its end, over the :class:`~runengine.call.CallContext` its
    handlers see."""

    def __init__(self, engine: RunEngine, plan: Any) -> None:
        super().__init__(engine, plan)
        self.exception: BaseException | None = None
        self.plan_return: Any = None
        self.interrupted = False
        self.halting = False
        self.paused = False
        self.started = False  # set on the loop when the first message is about to be taken
        self.inflight: asyncio.Task | None = None
        self.task: asyncio.Task | None = None
        # Set when the plan parks (paused) or the call ends: what the user's thread waits for.
        self.segment = threading.Event()
        self.decision: asyncio.Future | None = None  # while parked: resume, stop, abort or halt
        self._raised_by_replayed = False  # the pending exception came from a cached message
        self.sideband_cancel = False  # the task was cancelled from outside (RE._task.cancel())

    # ---- the message loop ----------------------------------------------------------------
    async def run(self) -> None:
        """Feed the plan's messages to their handlers until it ends; then clean up."""
        engine = self.engine
        stack, cache, statuses, seen = self.stack, self.cache, self.statuses, self.seen
        handlers = self.handlers
        gens = stack.generators
        response: Any = None
        exc: BaseException | None = None
        monotonic = time.monotonic
        tick = monotonic()
        countdown = CLOCK_EVERY
        # asyncio's queue of callbacks ready to run (a suspender trip, a request from another
        # thread): cheap to test at every message, so nothing queued waits for YIELD_EVERY.
        waiting = getattr(self.loop, "_ready", ())
        enter_engine_call()  # this task's context only: see runengine.compat
        engine._hold_start_while_tripped(self)
        self.started = True
        try:
            engine._commands.call_started(self)  # the extensions that asked to hear of it
            while True:
                if self.interrupt is not None:
                    response, exc = await self._interrupted(response, exc)
                elif statuses.failure is not None and exc is None:
                    exc = statuses.take_failure()
                try:
                    if exc is None:
                        # PlanStack.advance's common case, inlined: this runs for every message.
                        try:
                            msg = gens[-1].send(response)
                        except BaseException as err:
                            msg = stack.unwind(err, response)
                    else:
                        msg = stack.advance(None, exc)
                except PlanFinished as done:
                    self.plan_return = done.value
                    break
                except BaseException as err:
                    self._plan_raised(err)
                    break
                response = exc = None
                if self.halting:
                    break
                try:
                    cached = False
                    if type(msg) is not Msg and not isinstance(msg, Msg):
                        raise TypeError(f"A plan must yield bluesky.utils.Msg objects, not {msg!r}")
                    command, obj = msg.command, msg.obj
                    if engine.msg_hook is not None:
                        engine.msg_hook(msg)
                    if obj is not None and obj not in seen:
                        seen[obj] = None
                    handler = handlers.get(command)  # CallContext.handle, inlined
                    if handler is None:  # before caching: an extension's spec may say no
                        handler = self._resolve(command)
                    # MessageCache.record, inlined: this runs for every message.
                    live = cache.live
                    if live is not None and command not in UNCACHEABLE:
                        cached = True
                        live.append(msg)
                    elif command == "close_run":
                        self.checkpoint_at_close_run()
                    response = handler(msg)
                    if type(response) is Suspended:
                        response = await self._wait_on(response, cached)
                except Exception as err:
                    response, exc = None, err
                    self._raised_by_replayed = cached
                    if cached and self.interrupt is None:
                        await self._await_explanation(err)
                except KeyboardInterrupt:
                    response, exc = None, None
                    self._rogue_interrupt()
                except asyncio.CancelledError as err:
                    response, exc = None, self._cancelled_from_outside(err)
                if waiting:
                    try:
                        await asyncio.sleep(0)
                    except asyncio.CancelledError as err:
                        response, exc = None, self._cancelled_from_outside(err)
                    continue
                countdown -= 1
                if not countdown:  # the clock is read every CLOCK_EVERY messages only
                    countdown = CLOCK_EVERY
                    now = monotonic()
                    if now - tick > YIELD_EVERY:
                        tick = now
                        try:
                            await asyncio.sleep(0)
                        except asyncio.CancelledError as err:
                            response, exc = None, self._cancelled_from_outside(err)
        except asyncio.CancelledError:
            # Cancelled where the plan cannot be told (while parked, say): never a success.
            self.exit_status = "abort"
            self.reason = self.reason or "the RunEngine's task was cancelled"
            self.sideband_cancel = True
        except Exception as err:
            # A fault of the engine itself, outside any plan or handler: never a quiet success.
            self.exit_status = "fail"
            self.reason = self.reason or f"RunEngine error: {err!r}"
            self.exception = self.error = err
        finally:
            await self._finalize()
        if self.sideband_cancel:
            raise asyncio.CancelledError  # the task ends cancelled, as whoever cancelled it expects

    def _cancelled_from_outside(self, err: asyncio.CancelledError) -> asyncio.CancelledError:
        """Someone cancelled the engine's task (``RE._task.cancel()``, bluesky's sideband
        cancel): throw the CancelledError into the plan, which aborts unless the plan handles
        it. The task's cancel request is taken back so that later waits work."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()
        self.sideband_cancel = True
        logger.warning("The RunEngine's task was cancelled from outside; aborting the plan.")
        return err

    async def _wait_on(self, suspended: Suspended, cached: bool) -> Any:
        task = self.loop.create_task(suspended.finish())
        self.inflight = task
        try:
            return await task
        except asyncio.CancelledError:
            if task.cancelled() and self.interrupt is not None:
                current = asyncio.current_task()
                if current is None or not current.cancelling():
                    return _CutShort(cached)
            raise
        finally:
            self.inflight = None

    def _rogue_interrupt(self) -> None:
        """Something raised KeyboardInterrupt on the loop thread: halt, as bluesky does."""
        announce(_ROGUE_INTERRUPT)
        with contextlib.suppress(TransitionError):
            self.engine._controller.apply("halt")

    def _plan_raised(self, err: BaseException) -> None:
        if isinstance(err, KeyboardInterrupt):
            self._rogue_interrupt()
            self.interrupted = True
            self.exit_status = "abort"
            self.exception = err
        elif isinstance(err, RequestStop):
            self.interrupted = True
            self.exception = err
        elif isinstance(err, asyncio.CancelledError):
            # bluesky: an abort, but not an interruption; RE() returns and no plan return
            self.exit_status = "abort"
            self.reason = self.reason or "the RunEngine's task was cancelled"
            self.exception = err
            self.plan_return = self.engine.NO_PLAN_RETURN
        elif isinstance(err, RequestAbort | FailedPause | PlanHalt):
            self.interrupted = True
            self.exit_status = "abort"
            self.exception = err
        else:
            if isinstance(err, GeneratorExit):
                # Not an exception for the caller to catch (it would end their generator):
                # a ValueError caused by it, as bluesky raises.
                wrapped = ValueError(
                    f"The plan raised {err!r}; a plan must not raise GeneratorExit"
                )
                wrapped.__cause__ = err
                err = wrapped
            self.exit_status = "fail"
            self.reason = self.reason or str(err) or repr(err)
            self.exception = self.error = err

    async def _await_explanation(self, err: Exception) -> None:
        """Give a suspension that ``err`` foretells (a device disconnected: the suspender's
        callback is on its way) the time an installed suspender's ``failure_grace(err)``
        asks for; if it comes, the message is replayed after it instead of ``err`` thrown."""
        grace = 0.0
        for suspender in self.engine.suspenders:
            explains = getattr(suspender, "failure_grace", None)
            if explains is not None:
                try:
                    grace = max(grace, float(explains(err)))
                except Exception:
                    logger.exception("%r.failure_grace raised", suspender)
        if grace <= 0:
            return
        deadline = self.loop.time() + grace
        while self.interrupt is None and self.loop.time() < deadline:
            await asyncio.sleep(0.01)  # the failure path only, and bounded by the grace
        if self.interrupt is None:
            logger.info("No suspension came within %.1f s of %r: it is the plan's", grace, err)

    # ---- requests, from the controller (on the loop thread) -------------------------------
    def cut_short(self, kind: str, payload: Any) -> None:
        """Act on ``kind`` at the next message boundary; cancel the command that waits now."""
        current = self.interrupt
        if current is None or PRIORITY[kind] >= PRIORITY[current[0]]:
            self.interrupt = (kind, payload)
        if self.inflight is not None:
            self.inflight.cancel()

    # ---- acting on requests, between messages ---------------------------------------------
    async def _interrupted(self, response: Any, exc: BaseException | None) -> tuple:
        if self.interrupt is None:
            return response, exc
        kind, payload = self.interrupt
        self.interrupt = None
        if isinstance(response, _CutShort):
            owed = REPLAYED if response.cached else None
        else:
            owed = response
        if exc is not None and self._raised_by_replayed and kind in ("pause", "suspend"):
            # The message that raised is replayed on resume: its replay decides, not this error
            # (a device that lost its connection as a suspender tripped fails, then recovers).
            logger.info("Forgiving %r: the message that raised it is replayed.", exc)
            owed, exc = REPLAYED, None
        control = self.engine._controller
        if kind == "pause":
            if not self.cache.resumable:
                control.apply("no_checkpoint")
                return self._begin("unresumable", "")
            kind, payload = await self._pause()
            if kind == "resume":
                self._resume(owed, exc)
                return None, None
        if kind == "suspend":
            control.apply("suspension_began")
            for fut, pre, post, why in self.held_suspensions:
                start_msg = Msg("_start_suspender", None, pre, post, why, fut)
                self.stack.push(single_gen(start_msg), owed, exc)
                owed, exc = None, None  # the one below has not started: it must be sent None
            self.held_suspensions.clear()
            return None, None
        return self._begin(kind, payload)

    def _begin(self, kind: str, reason: str) -> tuple:
        """Start a stop, abort or halt (the state already says so): what to throw into the plan."""
        self.interrupted = True
        if kind != "stop":
            self.exit_status = "abort"
        if reason:
            self.reason = reason
        self.halting = kind == "halt"
        err = _EXCEPTIONS[kind]()
        self.exception = err
        return None, err

    async def _pause(self) -> tuple[str, str]:
        """Pause: stop what moves, tell the user's thread, and wait for a decision."""
        for bundle in self.runs.values():
            bundle.record_interruption("pause", self.pause_requested_by)
        self.hold_devices()
        self.paused = True
        self.decision = self.loop.create_future()
        self.engine._controller.apply("parked")
        self.segment.set()
        try:
            return await self.decision
        finally:
            self.paused = False
            self.decision = None

    def _resume(self, owed: Any, exc: BaseException | None) -> None:
        self.release_devices()
        for bundle in self.runs.values():
            bundle.record_interruption("resume")
        msgs = self._take_replay()
        self.stack.push(replay(msgs), owed, exc)
        awaited = [fut for fut, *_ in self.held_suspensions]
        for fut, pre, post, why in self.held_suspensions:
            self.stack.push(single_gen(Msg("_start_suspender", None, pre, post, why, fut)))
        self.held_suspensions.clear()
        if self.in_suspension:
            return  # the suspension on the stack waits for every tripped suspender itself
        # A suspender that tripped while we were paused could not ask to suspend: ask it now,
        # unless what is replayed already waits for it (it tripped before the pause).
        awaited += [f for m in msgs if m.command == "wait_for" and m.args for f in m.args[0]]
        for fut in tripped_futures(self.engine.suspenders):
            if fut not in awaited:
                why = "a suspender tripped while paused"
                self.stack.push(single_gen(Msg("_start_suspender", None, None, None, why, fut)))

    # ---- the end ---------------------------------------------------------------------------
    async def _finalize(self) -> None:
        engine = self.engine
        try:
            await self.wind_up()
        finally:
            self.run_cleanups()
            self.finished = True
            if engine._inbox.on_loop_thread():  # not when the garbage collector closes us
                engine._controller.apply("ended")
            self.segment.set()
