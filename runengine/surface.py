"""What a RunEngine shows of itself: bluesky's attributes, subscriptions, commands, suspenders.

:class:`EngineSurface` is the base of :class:`~runengine.engine.RunEngine`: everything here
reads the engine's state or posts to its loop; running plans and the control calls are in
:mod:`runengine.engine`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bluesky import run_engine as _bluesky_re
from event_model import DocumentNames

from . import compat

if TYPE_CHECKING:
    from .command_table import CommandTable, Entry
    from .control import Controller, Inbox
    from .execution import Execution
    from .states import EngineState

__all__ = ["Dispatcher", "EngineSurface"]

_DOC_NAMES = {member.name: member for member in DocumentNames}


class Dispatcher(_bluesky_re.Dispatcher):
    """bluesky's Dispatcher, which skips document names nobody subscribed to."""

    def emit(self, name: str, doc: dict) -> None:
        sig = _DOC_NAMES[name]
        if self.cb_registry.callbacks.get(sig):
            self.process(sig, doc)


class EngineSurface:
    """bluesky's RunEngine attributes that read the engine, its subscriptions, its message
    commands and its suspenders. The engine's ``__init__`` sets what these read."""

    _controller: Controller
    _inbox: Inbox
    _exec: Execution | None
    _commands: CommandTable
    _suspenders: set
    _rewindable: bool
    _call_returns_result: bool
    _emit: Callable[[str, dict], None]
    dispatcher: Dispatcher
    control_timeout: float

    # ---- read-only surface -------------------------------------------------------------
    @property
    def state(self) -> EngineState:
        """The current state: a str (``'idle'``, ``'running'``, ...) with ``is_<state>``."""
        return self._controller.state

    @property
    def _state(self) -> EngineState:
        return self._controller.state

    @property
    def deferred_pause_requested(self) -> bool:
        """Whether a deferred pause waits for a checkpoint (True until the next call if none)."""
        return self._controller.deferred_pause

    # bluesky's private name, read by bluesky-queueserver's worker.
    _deferred_pause_requested = deferred_pause_requested

    @property
    def _task(self) -> asyncio.Task | None:
        """bluesky's private name: the asyncio task of the current (or last) call.

        Cancelling it on ``RE.loop`` aborts the plan, as in bluesky (its sideband cancel).
        """
        ex = self._exec
        return None if ex is None else ex.task

    @property
    def _run_bundlers(self) -> Mapping[Any, Any]:
        """bluesky's private name: the runs open now, by run key (a read-only view)."""
        ex = self._exec
        return MappingProxyType({} if ex is None else ex.runs)

    @property
    def _seen_wait_and_move_on_keys(self) -> frozenset:
        """bluesky's private name: the groups a ``wait(move_on=True)`` is still waiting on."""
        ex = self._exec
        return frozenset(() if ex is None else ex.statuses.moving_on)

    @property
    def pause_requests(self) -> tuple[str, ...]:
        """Names of the standing pause requests that a resume asks for permission."""
        return tuple(self._controller.pause_requests)

    @property
    def suspended(self) -> bool:
        """Whether a suspension holds the plan now (``state`` says running then, as bluesky's)."""
        ex = self._exec
        return ex is not None and not ex.finished and ex.in_suspension

    @property
    def call_returns_result(self) -> bool:
        return self._call_returns_result

    @property
    def commands(self) -> list[str]:
        """Names of the registered message commands."""
        return self._commands.names()

    @property
    def suspenders(self) -> tuple:
        return tuple(self._suspenders)

    @property
    def resumable(self) -> bool:
        """Whether a pause now could be resumed (a checkpoint to return to)."""
        return self._exec is not None and self._exec.cache.resumable

    @property
    def rewindable(self) -> bool:
        return self._rewindable

    @rewindable.setter
    def rewindable(self, value: bool) -> None:
        def set_flag() -> None:
            self._rewindable = bool(value)
            ex = self._exec
            if ex is not None and not ex.finished:
                ex.cache.rewindable = self._rewindable
                ex.checkpoint()

        self._inbox.call("Setting RE.rewindable", set_flag, timeout=self.control_timeout)

    @property
    def ignore_callback_exceptions(self) -> bool:
        return self.dispatcher.cb_registry.ignore_exceptions

    @ignore_callback_exceptions.setter
    def ignore_callback_exceptions(self, value: bool) -> None:
        self.dispatcher.cb_registry.ignore_exceptions = value

    @property
    def verbose(self) -> bool:
        """Whether state changes are logged at INFO (logger ``runengine.control``)."""
        return self._controller.verbose

    @verbose.setter
    def verbose(self, value: bool) -> None:
        self._controller.verbose = bool(value)

    # ---- subscriptions and commands -------------------------------------------------------
    def subscribe(self, func: Callable, name: str = "all") -> int:
        """Send documents to ``func(name, doc)``; ``name`` is 'all' or one document name.

        Returns a token for :meth:`unsubscribe`.
        """
        if callable(name) and isinstance(func, str):
            return self.dispatcher.subscribe(func, name)  # legacy order, warns
        if not callable(func):
            raise ValueError(f"subscribe expects a callable, not {func!r}")
        return self.dispatcher.subscribe(func, name)

    def unsubscribe(self, token: int) -> None:
        """Stop a subscription; an unknown token is ignored."""
        self.dispatcher.unsubscribe(token)

    def register_command(self, name: str, func: Callable) -> None:
        """Handle ``Msg(name, ...)`` with ``func(msg)`` (plain or async)."""
        self._commands.register(name, func)

    def unregister_command(self, name: str) -> None:
        """Forget the handler of ``name`` (ignored if unknown)."""
        self._commands.unregister(name)

    def _command(self, name: str) -> Entry | None:
        """(handler, plain, built-in) of ``name``, its extension loaded now if needed."""
        return self._commands.lookup(name)

    @property
    def _command_registry(self) -> dict[str, Callable]:
        """``{name: func(msg)}``: bluesky's name, read by its tests and tools."""
        return self._commands.as_registry()

    def print_command_registry(self, verbose: bool = False) -> str:
        """Text listing every command with the first line of its handler's docstring."""
        return self._commands.describe(verbose)

    # ---- documents ---------------------------------------------------------------------
    def emit_sync(self, name: DocumentNames | str, doc: dict) -> None:
        """Send a document to the subscribers now, on this thread."""
        self._emit(name.name if isinstance(name, DocumentNames) else name, doc)

    async def emit(self, name: DocumentNames | str, doc: dict) -> None:
        self.emit_sync(name, doc)

    # ---- suspenders ------------------------------------------------------------------------
    def install_suspender(self, suspender: Any) -> None:
        """Install a bluesky-style suspender (it calls :meth:`request_suspend` when tripped)."""
        self._suspenders.add(suspender)
        compat.harden(suspender)
        suspender.install(self)

    def remove_suspender(self, suspender: Any) -> None:
        if suspender in self._suspenders:
            suspender.remove()
            compat.soften(suspender)
        self._suspenders.discard(suspender)

    def clear_suspenders(self) -> None:
        for suspender in list(self._suspenders):
            self.remove_suspender(suspender)

    def request_suspend(
        self,
        fut: Callable,
        *,
        pre_plan: Any = None,
        post_plan: Any = None,
        justification: str | None = None,
    ) -> None:
        """Suspend until ``fut()`` (an awaitable factory) resolves, then rewind and go on.

        Fire-and-forget, as in bluesky: ignored when nothing runs or the plan is ending.
        """
        self._inbox.post(self._suspend, fut, pre_plan, post_plan, justification)

    def _suspend(self, *suspension: Any) -> None:
        ex = self._exec
        if ex is None or not ex.started or ex.finished:
            # Not started: a request queued on the loop before this plan began belongs to an
            # earlier call (or to a suspender tripped since, which the start checks anyway).
            return
        self._controller.apply("suspend", *suspension)
