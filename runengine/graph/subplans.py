"""Running graphs inside a RunEngine call: sub-plans, bundling, the ``action_status`` stream.

Each sub-plan action runs in its own task: every ``Msg`` it yields goes to the engine's own
handler for that command (same registry, same call state), and the response, or the exception,
goes back into the sub-plan, as the main message loop does.

- Event bundles do not interleave: a sub-plan holds its run's bundle lock from ``create`` to
  ``save``/``drop``; a ``read`` outside its own bundle takes the lock for the read.
- A sub-plan has local checkpoints: its start, each ``checkpoint`` it yields and each
  ``save``/``drop``. A pause cuts it short and keeps its generator; on resume the messages since
  its last local checkpoint are replayed (the plan receives the response of the one that was
  cut short) and it carries on in place: no point is taken twice, none is lost.
- What makes no sense concurrently is refused with :class:`SubPlanError` naming the action and
  the message (runs, engine checkpoints, pauses, staging, subscriptions, suspenders, input).

Status changes become events of the stream ``action_status`` (one descriptor per run, data keys
``action_id``, ``label``, ``state``, ``exception``, ``graph``) when a run is open, besides going
to the graphs' listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from bluesky.utils import IllegalMessageSequence, Msg

from ..call import CallHooks
from ..commands.spec import SUBPLAN_FORBIDDEN as FORBIDDEN
from ..eager import Suspended
from .context import RunContext
from .result import SubPlanError

if TYPE_CHECKING:
    from ..call import CallContext
    from .action import Action

__all__ = ["KeptForResume", "PlanContext", "PlanState"]

STATUS_KEYS = {
    "action_id": {"dtype": "integer", "shape": [], "source": "action_graph"},
    "label": {"dtype": "string", "shape": [], "source": "action_graph"},
    "state": {"dtype": "string", "shape": [], "source": "action_graph"},
    "exception": {"dtype": "string", "shape": [], "source": "action_graph"},
    "graph": {"dtype": "string", "shape": [], "source": "action_graph"},
}
_YIELD_EVERY = 0.005
_LOCAL = frozenset({"checkpoint", "create", "read", "save", "drop"})  # kept per sub-plan


class PlanState:
    """A sub-plan's generator and what a resume needs: messages since its local checkpoint."""

    __slots__ = ("cache", "exc", "gen", "replay", "response")

    def __init__(self, gen: Any) -> None:
        self.gen = gen
        self.cache: list[Msg] = []
        self.replay: list[Msg] = []
        self.response: Any = None
        self.exc: BaseException | None = None

    def rewind(self) -> None:
        """Resume from the local checkpoint: replay what was processed (or cut) since then."""
        self.replay = self.cache + self.replay
        self.cache = []

    def close(self) -> None:
        try:
            self.gen.close()
        except Exception:
            pass  # a plan whose cleanup yields on close: nothing more can run for it


class PlanContext(RunContext):
    """A graph run inside ``RE(plan)``: the engine call ``ex``, the run ``run_key``."""

    def __init__(
        self,
        call: CallContext,
        run_key: Any = None,
        stream: str | None = "action_status",
        graph_label: str = "",
        alongside: bool = False,
    ) -> None:
        super().__init__()
        self.engine = call.engine
        self.ex = call
        self.key = call
        self.run_key = run_key
        self.stream = stream
        self.graph_label = graph_label
        self.alongside = alongside
        self._bundle_locks: dict[Any, asyncio.Lock] = {}

    # ---- status events ----------------------------------------------------------------------
    def status(self, action: Action, state: str, exc: BaseException | None = None) -> None:
        super().status(action, state, exc)
        if self.stream is None:
            return
        bundle = self.ex.runs.get(self.run_key)
        if bundle is None:
            return
        stream = bundle.streams.get(self.stream)
        if stream is None:
            stream = bundle.add_stream(self.stream, STATUS_KEYS, {}, {}, {}, ())
            bundle.live_streams.add(self.stream)  # a rewind re-takes none of its events
        now = time.time()
        data = {
            "action_id": action.id or 0,
            "label": action.text_label,
            "state": state,
            "exception": "" if exc is None else repr(exc),
            "graph": self.graph_label,
        }
        bundle.emit_event(stream, data, dict.fromkeys(data, now))

    def interruption(self) -> str | None:
        interrupt = self.ex.interrupt
        return interrupt[0] if interrupt is not None else None

    def keep_for_resume(self, graph: Any) -> bool:
        """A pause or suspension may resume ``graph`` in this call: keep what it did not run
        yet, until the call ends (then :class:`KeptForResume` closes it, if still unrun)."""
        if self.interruption() not in ("pause", "suspend"):
            return False
        call = self.ex
        call.slot(KeptForResume, lambda: call.attach(KeptForResume())).graphs[graph] = None
        return True

    # ---- sub-plans --------------------------------------------------------------------------
    def make_plan_state(self, action: Action, gen: Any) -> PlanState:
        if self.alongside:
            PlanState(gen).close()
            raise SubPlanError(
                f"{action.text_label!r} is a sub-plan: a graph run alongside a run may not "
                "hold sub-plans (their events would interleave with the main plan's)"
            )
        return PlanState(gen)

    async def run_plan(self, action: Action, state: PlanState) -> Any:
        """Feed the sub-plan's messages to the engine's handlers until it returns."""
        state.rewind()
        held: dict[Any, asyncio.Lock] = {}  # run key -> bundle lock this sub-plan holds
        loop = asyncio.get_running_loop()
        tick = loop.time()
        try:
            while True:
                from_replay = bool(state.replay)
                if from_replay:
                    msg = state.replay.pop(0)
                else:
                    try:
                        if state.exc is None:
                            msg = state.gen.send(state.response)
                        else:
                            msg = state.gen.throw(state.exc)
                    except StopIteration as done:
                        return done.value
                    state.response, state.exc = None, None
                try:
                    command = getattr(msg, "command", None)
                    if command in _LOCAL or command in FORBIDDEN or not isinstance(msg, Msg):
                        response = await self._process(action, state, msg, held)
                    else:  # the common case, inline: no coroutine per message
                        state.cache.append(msg)
                        response = self._dispatch(msg)
                        if type(response) is Suspended:
                            response = await response.finish()
                except Exception as err:
                    state.replay.clear()
                    state.response, state.exc = None, err
                    continue
                if not (from_replay and state.replay):
                    state.response = response  # the last replayed response is the one owed
                now = loop.time()
                if now - tick > _YIELD_EVERY:
                    tick = now
                    await asyncio.sleep(0)
        finally:
            for run_key, lock in held.items():
                bundle = self.ex.runs.get(run_key)
                if bundle is not None and bundle.bundle_name is not None:
                    bundle.drop()  # cut short inside its bundle: a resume re-creates it
                lock.release()

    async def _process(self, action: Action, state: PlanState, msg: Any, held: dict) -> Any:
        if not isinstance(msg, Msg):
            raise TypeError(f"Sub-plan {action.text_label!r} yielded {msg!r}, not a Msg")
        command = msg.command
        why = FORBIDDEN.get(command)
        if why is not None:
            raise SubPlanError(
                f"Sub-plan action {action.text_label!r} yielded Msg({command!r}), which makes "
                f"no sense alongside other actions: {why}"
            )
        run_key = msg.run
        if command == "checkpoint":
            if run_key in held or held:
                raise IllegalMessageSequence(
                    "Cannot 'checkpoint' after 'create' and before 'save'. Aborting!"
                )
            state.cache.clear()
            return None
        state.cache.append(msg)
        if command == "create" or (command == "read" and run_key not in held):
            lock = self._bundle_locks.setdefault(run_key, asyncio.Lock())
            await lock.acquire()
            try:
                response = await _settled(self._dispatch(msg))
            except BaseException:
                lock.release()
                raise
            if command == "create":
                held[run_key] = lock
            else:
                lock.release()
            return response
        if command in ("save", "drop"):
            if run_key not in held:
                raise IllegalMessageSequence(
                    f"Sub-plan {action.text_label!r} yielded Msg({command!r}) without an event "
                    "bundle of its own: 'create' one first"
                )
            try:
                response = await _settled(self._dispatch(msg))
            finally:
                held.pop(run_key).release()
            state.cache.clear()  # the point is emitted: a resume must not take it again
            return response
        return await _settled(self._dispatch(msg))

    def _dispatch(self, msg: Msg) -> Any:
        """Call the engine's handler: its response, or a Suspended to await."""
        engine, ex = self.engine, self.ex
        if engine.msg_hook is not None:
            engine.msg_hook(msg)
        obj = msg.obj
        if obj is not None and obj not in ex.seen:
            ex.seen[obj] = None
        return ex.handle(msg)


class KeptForResume(CallHooks):
    """The graphs a pause cut short in one call. When the call ends, those still waiting for
    their resume (an abort from paused, a stop) close their unrun one-shot bodies and the
    sub-plans they kept: nothing will run them."""

    def __init__(self) -> None:
        self.graphs: dict[Any, None] = {}

    def ended(self, call: CallContext) -> None:
        for graph in self.graphs:
            if graph._interrupted_in is call:
                graph._interrupted_in = None
                for action in graph.iterate(True):
                    action._discard()


async def _settled(response: Any) -> Any:
    if type(response) is Suspended:
        return await response.finish()
    return response


async def wait_quietly(task: asyncio.Future) -> None:
    """Await ``task`` and swallow its outcome (for supervisors)."""
    with contextlib.suppress(BaseException):
        await task
