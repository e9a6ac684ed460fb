"""What one ``RE(plan)`` call gives the handlers of its messages: the call context.

A handler is ``def handler(call, msg)`` (or ``async def``); ``call`` is the
:class:`CallContext` of the running call: its runs, statuses, message cache and checkpoints,
the devices it staged, moved and saw, the dispatch of a further message, the document sink,
cleanups and a slot per feature for its own state. A handler reaches the engine only through
``call.engine``'s public surface (``md``, ``dispatcher``, ``suspenders``...): the engine's
private state is no handler's business. :class:`~runengine.execution.Execution` adds the
message loop and its interruptions to this.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from bluesky.utils import InvalidCommand, Msg, NoReplayAllowed

from .console import announce
from .eager import Suspended, start
from .statuses import StatusGroups
from .stepper import ANSWERED_ONCE, NOT_ANSWERED, MessageCache, PlanStack, replay

if TYPE_CHECKING:
    from .documents import RunBundle
    from .engine import RunEngine

__all__ = ["CallContext", "CallHooks"]

logger = logging.getLogger(__name__)
_FIX_YOUR_PLAN = "Please fix your plan."
T = TypeVar("T")
H = TypeVar("H", bound="CallHooks")


def _invalid(msg: Msg) -> NoReturn:
    raise InvalidCommand(msg.command)


def _is_pausable(obj: Any) -> bool:
    return callable(getattr(obj, "pause", None)) and callable(getattr(obj, "resume", None))


class CallHooks:
    """What a feature hears of one call: subclass, override what it needs, keep the feature's
    state for the call on the object, and give it to :meth:`CallContext.attach`.

    ``paused`` and ``resumed`` come with each pause and suspension (after the devices are held,
    after they are released), ``ended`` once when the call ends however it ends (its exit
    status is ``call.exit_status``), among the call's cleanups.
    """

    def paused(self, call: CallContext) -> None:
        """The call pauses or suspends."""

    def resumed(self, call: CallContext) -> None:
        """The call resumes from a pause or suspension (before its replay)."""

    def ended(self, call: CallContext) -> None:
        """The call has ended."""


class CallContext:
    """The state of one call that its message handlers read and change, and its services."""

    def __init__(self, engine: RunEngine, plan: Any) -> None:
        self.engine = engine
        self.loop = engine._loop
        self.stack = PlanStack(plan)
        self.cache = MessageCache()
        self.cache.rewindable = engine._rewindable
        self.statuses = StatusGroups(self.loop)
        self.runs: dict[Any, RunBundle] = {}  # the open runs, by run key
        self.run_start_uids: list[str] = []
        self.staged: dict[Any, None] = {}
        self.moved: dict[Any, None] = {}
        self.seen: dict[Any, None] = {}  # every object a message named (paused on a pause)
        self.exit_status = "success"  # what the call's runs close with
        self.reason = ""
        self.error: BaseException | None = None  # the failure the call ends with, if any
        self.pause_requested_by = ""
        self.held_suspensions: list[tuple] = []
        self.in_suspension = False  # from _start_suspender to the end of its post_plan
        self.interrupt: tuple[str, Any] | None = None  # (kind, payload) being acted on
        self.finished = False  # the call has ended (its cleanups ran)
        # Called at the very end of the call, last added first, whatever ended it (stop, abort,
        # halt, panic, an exception): commands register what must never outlive the plan
        # (the hardware locks it holds).
        self.cleanups: list[Callable[[], Any]] = []
        self._slots: dict[Any, Any] = {}
        self.hooks: list[CallHooks] = []  # attached by features, told of pauses and the end
        # command -> what runs a message of it: a response, or a Suspended to await. Filled on
        # first use (a built-in's handler bound to this call), so a call pays for what it uses.
        self.handlers: dict[str, Callable[[Msg], Any]] = {}

    # ---- what the call runs -----------------------------------------------------------------
    @property
    def plan(self) -> Any:
        """The plan as given to ``RE()`` (its name and type go into the start document)."""
        return self.engine._plan

    @property
    def metadata(self) -> dict:
        """The metadata given to this ``RE(plan, **md)`` call."""
        return self.engine._metadata_per_call

    @property
    def strict_streams(self) -> bool:
        """Whether a stream must be declared before its first event (bluesky's option)."""
        return bool(self.engine._require_stream_declaration)

    # ---- what features keep per call ------------------------------------------------------
    def slot(self, key: Any, factory: Callable[[], T]) -> T:
        """This call's state of a feature under ``key``: made by ``factory()`` on first use,
        gone with the call (a feature keeps nothing per call anywhere else)."""
        try:
            return self._slots[key]
        except KeyError:
            made = self._slots[key] = factory()
            return made

    def add_cleanup(self, cleanup: Callable[[], Any]) -> None:
        """Call ``cleanup()`` at the very end of the call, however it ends (last added first);
        what it raises is logged."""
        self.cleanups.append(cleanup)

    def attach(self, hooks: H) -> H:
        """Tell ``hooks`` of this call's pauses, resumes and end (see :class:`CallHooks`);
        returns ``hooks``, so ``call.slot(key, lambda: call.attach(MyHooks()))`` keeps it."""
        self.hooks.append(hooks)
        self.add_cleanup(lambda: hooks.ended(self))
        return hooks

    def watch(self, obj: Any) -> None:
        """Give ``obj``'s ``pause()``/``resume()`` the call's pauses and suspensions, as a
        device's (bluesky's Pausable)."""
        self.seen[obj] = None

    # ---- dispatch --------------------------------------------------------------------------
    def handle(self, msg: Msg) -> Any:
        """Run ``msg``'s handler: its response, or a :class:`~runengine.eager.Suspended` to
        await. The one dispatch: the message loop inlines it, sub-plans call it."""
        handler = self.handlers.get(msg.command) or self._resolve(msg.command)
        return handler(msg)

    def _resolve(self, command: str) -> Callable[[Msg], Any]:
        """What runs ``command`` in this call, bound now: a plain handler as it is, an async
        one started eagerly, an extension's loaded first; else one raising InvalidCommand."""
        found = self.engine._command(command)
        if found is None:
            return _invalid
        func, plain, builtin = found
        bound = types.MethodType(func, self) if builtin else func
        handler = bound if plain else (lambda msg: start(bound(msg)))
        if builtin and command in ANSWERED_ONCE:
            handler = self._answered_once(handler)
        self.handlers[command] = handler
        return handler

    def _answered_once(self, handler: Callable[[Msg], Any]) -> Callable[[Msg], Any]:
        """``handler`` run once per message: a replay gets its first answer (replay="once")."""
        cache = self.cache

        async def finishing(msg: Msg, suspended: Suspended) -> Any:
            try:
                response = await suspended.finish()
            except Exception as err:
                cache.answer(msg, None, err)
                raise
            cache.answer(msg, response)
            return response

        def once(msg: Msg) -> Any:
            answered = cache.replayed_answer(msg)
            if answered is not NOT_ANSWERED:
                return answered
            try:
                response = handler(msg)
            except Exception as err:
                cache.answer(msg, None, err)
                raise
            if type(response) is Suspended:
                return start(finishing(msg, response))
            cache.answer(msg, response)
            return response

        return once

    def forget_command(self, command: str) -> None:
        """The engine's handler of ``command`` changed: bind it again on its next use."""
        self.handlers.pop(command, None)

    def emit(self, name: str, doc: dict) -> None:
        """Send a document to the engine's subscribers now."""
        self.engine._emit(name, doc)

    # ---- the engine's side of some commands -----------------------------------------------
    def subscribe(self, func: Callable, name: str = "all") -> int:
        """Subscribe ``func`` until the next call starts (``Msg('subscribe')``)."""
        token = self.engine.dispatcher.subscribe(func, name)
        self.engine._temp_tokens.append(token)
        return token

    def unsubscribe(self, token: int) -> None:
        """Remove a subscription :meth:`subscribe` made; KeyError for any other token."""
        tokens = self.engine._temp_tokens
        if token not in tokens:
            raise KeyError(f"{token!r} is not a token returned by Msg('subscribe') in this call")
        tokens.remove(token)
        self.engine.dispatcher.unsubscribe(token)

    def set_rewindable(self, flag: bool) -> None:
        """Cache messages for a rewind or not; the engine's flag, as in bluesky it outlasts
        the call."""
        self.cache.rewindable = self.engine._rewindable = flag

    def request_pause(self, defer: bool, name: str | None, callback: Any, who: str) -> None:
        """A pause asked for by the plan (``Msg('pause')``), as ``RE.request_pause`` would."""
        self.engine._request_pause(defer, name, callback, 0, who=who)

    def at_checkpoint(self) -> None:
        """A checkpoint: make it the one a resume returns to; a deferred pause happens now."""
        self.checkpoint()
        controller = self.engine._controller
        if controller.deferred_pause:
            controller.apply("deferred_due", None, None, self.pause_requested_by)

    # ---- checkpoints and rewinds -----------------------------------------------------------
    def checkpoint(self) -> None:
        """Make this point the one a resume returns to."""
        self.cache.checkpoint()
        if self.cache.resumable:
            for bundle in self.runs.values():
                bundle.checkpoint()

    def checkpoint_at_close_run(self) -> None:
        """A closed run's messages cannot be replayed: closing a run is a checkpoint.

        (bluesky replays them, and its replayed 'create' fails for want of an open run.) Not
        while another run has an event bundle open: its replay must start with its 'create'.
        """
        if all(bundle.bundle_name is None for bundle in self.runs.values()):
            self.checkpoint()

    def rewind(self) -> Any:
        """Back to the last checkpoint: a generator replaying the messages since then.

        With nothing to replay (not rewindable, or a pause right at a checkpoint) no event is
        re-taken, so the runs keep their seq_nums and any open event bundle, as in bluesky.
        """
        return replay(self._take_replay())

    def _take_replay(self) -> list[Msg]:
        msgs = self.cache.take()
        if msgs:
            for bundle in self.runs.values():
                bundle.rewind()
        return msgs

    # ---- the hardware over a pause or a suspension -----------------------------------------
    def hold_devices(self) -> None:
        """What a pause or suspension does to hardware: stop movers, pause Pausables."""
        self.statuses.pardon()
        self.stop_movers()
        for obj in list(self.seen):
            if _is_pausable(obj):
                try:
                    obj.pause()
                except NoReplayAllowed:
                    self.checkpoint()
        for bundle in self.runs.values():
            bundle.suspend_monitors()
        for hooks in self.hooks:
            hooks.paused(self)

    def release_devices(self) -> None:
        """Undo :meth:`hold_devices`: monitors back on, Pausables resumed."""
        for bundle in self.runs.values():
            bundle.restore_monitors()
        for obj in list(self.seen):
            if _is_pausable(obj):
                obj.resume()
        for hooks in self.hooks:
            hooks.resumed(self)

    def stop_movers(self) -> None:
        """Stop everything the call moved (``stop(success=True)``); failures are logged."""
        for obj in list(self.moved):
            stop = getattr(obj, "stop", None)
            if stop is None:
                continue
            try:
                stop(success=True)
            except TypeError:
                stop()
            except Exception as err:  # one line: a dead IOC's motor says so for each stop
                logger.error("Failed to stop %s: %r", getattr(obj, "name", obj), err)
                logger.debug("Failed to stop %r", obj, exc_info=True)

    # ---- the end -----------------------------------------------------------------------------
    async def wind_up(self) -> None:
        """What ends every call, however it ends: hardware stopped, flyers collected, devices
        unstaged, runs closed with the call's exit status, the plans closed."""
        self.statuses.pardon()
        self.stop_movers()
        for bundle in self.runs.values():
            bundle.clear_monitors()
            await self._backstop_collect(bundle)
        for obj in reversed(list(self.staged)):
            try:
                obj.unstage()
            except Exception as err:
                logger.exception("Failed to unstage %r: %r", obj, err)
        self.staged.clear()
        for key in list(self.runs):
            bundle = self.runs.pop(key)
            try:
                bundle.stop(self.exit_status, self.reason)
            except Exception as err:
                if self.error is None:
                    self.error = err
        for gen in self.stack.close():
            # on stdout, as bluesky prints it (its tests read it there)
            announce(f"The plan {gen!r} tried to yield a value on close.  {_FIX_YOUR_PLAN}")

    def run_cleanups(self) -> None:
        """Call the cleanups, last added first; what one raises is logged."""
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception as err:
                logger.exception("Cleanup %r failed: %r", cleanup, err)

    async def _backstop_collect(self, bundle: RunBundle) -> None:
        """Collect the flyers of a run left open that were kicked off and never collected."""
        run = next(key for key, open_bundle in self.runs.items() if open_bundle is bundle)
        for obj in list(bundle.uncollected):
            try:
                result = self.handle(Msg("collect", obj, run=run))
                if type(result) is Suspended:
                    await result.finish()
            except Exception as err:
                logger.exception("Failed to collect %r: %r", obj, err)
