"""RunEngine: runs plans of ``bluesky.utils.Msg`` and emits event-model documents.

A drop-in for ``bluesky.run_engine.RunEngine``. The user's thread only blocks; plans, device
calls and document callbacks run on the ``bluesky-run-engine`` loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import inspect
import threading
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, NamedTuple

import bluesky
import event_model
from bluesky import run_engine as _bluesky_re
from bluesky.run_engine import RunEngineResult
from bluesky.utils import (
    Msg,
    RunEngineInterrupted,
    ensure_generator,
    normalize_subs_input,
    single_gen,
)
from bluesky.utils import SigintHandler as BlueskySigintHandler

from . import compat
from .command_table import CommandTable
from .console import PAUSED_HELP, announce, install_interruption_display
from .control import Controller, EngineBusy, Inbox, Outcome, refuse_if_panicked
from .execution import Execution
from .extensions import DEFAULT_EXTENSIONS, Extension
from .loop import BlockingDuringTask, ensure_loop_thread, retire_with
from .sigint import PromptRequested, SigintHandler
from .states import PANIC_MSG, SUSPENDING_MSG, TransitionError
from .surface import Dispatcher, EngineSurface

__all__ = ["PANIC_MSG", "Dispatcher", "EngineBusy", "RunEngine", "default_scan_id_source"]


def default_scan_id_source(md: MutableMapping) -> int:
    """The next scan_id: one more than the last."""
    return md.get("scan_id", 0) + 1


def default_md_validator(md: dict) -> None:
    """Refuse metadata a store could not keep: non-string keys, a malformed ``sample``."""
    bad = [key for key in md if not isinstance(key, str)]
    if bad:
        raise ValueError(f"Metadata keys must be strings; these are not: {bad!r}")
    sample = md.get("sample")
    if sample is not None and not (hasattr(sample, "keys") or isinstance(sample, str)):
        raise ValueError(
            f"Metadata 'sample' must be a string or a dictionary, not {sample!r} "
            f"(e.g. sample='dirt' or sample={{'color': 'red'}})."
        )


class _Call(NamedTuple):
    """What ``RE(plan)`` hands the loop thread to claim the engine with."""

    plan: Any
    subs: dict
    metadata: dict
    execution: Execution


class RunEngine(EngineSurface):
    """Execute plans (generators of ``Msg``) and emit documents to subscribers.

    Same constructor and surface as ``bluesky.RunEngine``; beyond it: pause requests with a
    name and a permission callback, ``panic()``/``all_is_well()``, and control calls that never
    block forever: each one has a definite outcome within :attr:`control_timeout` seconds, or
    raises :class:`EngineBusy` (the engine's thread is blocked) having changed nothing.

    ``extensions``: the features whose message commands this engine knows
    (:data:`runengine.extensions.DEFAULT_EXTENSIONS`: graphs, locks, scripts); each loads
    the first time a plan sends one of its commands.
    """

    _require_stream_declaration = False
    #: How long a control call waits for the engine's thread to take it.
    control_timeout = 5.0

    def __init__(
        self,
        md: MutableMapping | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        preprocessors: list | None = None,
        context_managers: list | None = None,
        md_validator: Callable | None = None,
        md_normalizer: Callable | None = None,
        scan_id_source: Callable = default_scan_id_source,
        during_task: Any = None,
        call_returns_result: bool = False,
        extensions: Iterable[Extension] = DEFAULT_EXTENSIONS,
    ) -> None:
        compat.install()
        install_interruption_display()
        self.md = {} if md is None else md
        versions = dict(self.md.get("versions", {}))
        versions["bluesky"] = bluesky.__version__
        versions["event_model"] = event_model.__version__
        for module, distribution in (("ophyd", "ophyd"), ("ophyd_async", "ophyd-async")):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                versions[module] = importlib.metadata.version(distribution)
        self.md["versions"] = versions  # assigned, not changed in place: a stored md keeps it
        self._loop = self.loop = loop if loop is not None else asyncio.new_event_loop()
        _bluesky_re.set_bluesky_event_loop(self._loop)
        self._th = ensure_loop_thread(self._loop)
        if loop is None:
            retire_with(self, self._loop)  # a dropped engine ends its thread and closes its loop
        self._inbox = Inbox(self._loop)
        self._inbox.loop_thread_id = self._th.ident
        self._controller = Controller(self)
        self.preprocessors = list(preprocessors or [])
        self.context_managers = [SigintHandler] if context_managers is None else context_managers
        self.md_validator = md_validator or default_md_validator
        self.md_normalizer = md_normalizer or (lambda md: md)
        self.scan_id_source = scan_id_source
        self.during_task = during_task if during_task is not None else BlockingDuringTask()
        self._call_returns_result = call_returns_result
        self.NO_PLAN_RETURN = object()
        self.dispatcher = Dispatcher()
        self._emit = self.dispatcher.emit
        self.subscribe_lossless = self._subscribe_lossless = self.dispatcher.subscribe
        self.unsubscribe_lossless = self._unsubscribe_lossless = self.dispatcher.unsubscribe
        self.msg_hook: Callable | None = None
        self.state_hook: Callable | None = None
        self.waiting_hook: Callable | None = None
        self.record_interruptions = False
        self.pause_msg = PAUSED_HELP  # bluesky's PAUSE_MSG, with exit_status spelled right
        self.max_depth: int | None = None
        self._rewindable = True
        self._exec: Execution | None = None  # written on the loop thread only
        self._temp_tokens: list[int] = []
        self._metadata_per_call: dict = {}
        self._plan: Any = None
        self._suspenders: set = set()
        self._commands = CommandTable(self, extensions)

    # ---- running plans -----------------------------------------------------------------
    def __call__(self, *args: Any, **metadata_kw: Any) -> tuple | RunEngineResult:
        """Run a plan: ``RE(plan, subs=None, **md)``; return the run-start uids.

        Raises RunEngineInterrupted when the plan is paused or interrupted, and the plan's own
        exception when it fails (the engine is then idle, the run closed with 'fail'). Of two
        threads calling at once exactly one starts; the other gets RuntimeError and nothing
        changes.
        """
        if not args or len(args) > 2:
            raise TypeError("RE(plan, subs=None, /, **metadata) takes a plan and optional subs")
        plan = args[0]
        subs = args[1] if len(args) == 2 else None
        refuse_if_panicked(self.state)
        if not self.state.is_idle:  # the loop's check is the one that counts; this one is fast
            raise RuntimeError(f"The RunEngine is in a {self.state} state")
        if self._inbox.on_loop_thread():
            raise RuntimeError("RE() cannot be called from its own thread (a plan or a callback)")
        if "raise_if_interrupted" in metadata_kw:
            import warnings

            warnings.warn("'raise_if_interrupted' is deprecated and has no effect", UserWarning)
        if self.max_depth is not None:
            depth = len(inspect.stack(0)) - 1
            if depth > self.max_depth:
                raise RuntimeError(
                    f"RunEngine.max_depth is set to {self.max_depth}; "
                    f"depth of {depth} was detected."
                )
        subs = normalize_subs_input(subs)
        gen = ensure_generator(plan)
        for wrapper in self.preprocessors:
            gen = wrapper(gen)
        call = _Call(plan, subs, metadata_kw, Execution(self, gen))
        return self._block(True, lambda: self._event("Starting a plan", "start", call))

    def _event(self, what: str, event: str, *args: Any, keep: bool = False) -> Any:
        """Post ``event`` to the controller on the loop thread and return its outcome."""
        return self._inbox.call(
            what, self._controller.apply, event, *args, timeout=self.control_timeout, keep=keep
        )

    def _hold_start_while_tripped(self, ex: Execution) -> None:
        """On the loop, as the plan starts: wait for every suspender tripped now."""
        futures, justifications = [], []
        for suspender in self._suspenders:
            if suspender.tripped:
                futs, justification = suspender.get_futures()
                futures.extend(futs)
                justifications.append(justification)
        if futures:
            announce(
                "At least one suspender has tripped. "
                "The plan will begin when all suspenders are ready."
            )
            for justification in justifications:
                announce(f"Justification: {justification}")
            announce(SUSPENDING_MSG)
            ex.stack.push(single_gen(Msg("wait_for", None, futures)))

    def _block(
        self, raise_if_interrupted: bool, begin: Callable[[], Any]
    ) -> tuple | RunEngineResult | Any:
        """Post a control event (``begin()``) and wait in the user's thread for the segment of
        the call it starts: until the plan pauses or the call ends.

        ``begin`` runs inside the context managers, so a Ctrl+C can never fall between the
        engine starting and the SIGINT handler being in place. An outcome with no segment to
        wait for is returned as it is.
        """
        with contextlib.ExitStack() as stack:
            for manager in self._context_managers_for_this_thread():
                stack.enter_context(manager(self))
            outcome = begin()
            if not isinstance(outcome, Outcome) or outcome.segment is None:
                return outcome.value if isinstance(outcome, Outcome) else outcome
            segment, ex = outcome.segment, outcome.call
            try:
                self.during_task.block(segment)
            except KeyboardInterrupt as interrupt:
                # After a SigintHandler gave up on a busy engine the user has waited enough.
                grace = 0.2 if isinstance(interrupt, PromptRequested) else 2.0
                if not self._keyboard_interrupt(segment, grace):
                    raise RunEngineInterrupted(self.pause_msg) from None
        if ex is None:
            raise RuntimeError("A control call gave a segment to wait for, but no call")
        if ex.paused:
            raise RunEngineInterrupted(self.pause_msg) from None
        if ex.error is not None:
            raise ex.error
        if ex.interrupted and raise_if_interrupted:
            raise RunEngineInterrupted(self.pause_msg) from None
        return self._result(ex)

    def _context_managers_for_this_thread(self) -> Iterable:
        # bluesky's handler raises ValueError off the main thread; ours steps aside by itself.
        on_main = threading.current_thread() is threading.main_thread()
        return [m for m in self.context_managers if on_main or m is not BlueskySigintHandler]

    def _keyboard_interrupt(self, segment: threading.Event, grace: float) -> bool:
        """Ctrl+C reached the blocked call: pause now. False if the engine did not answer."""
        self._request_pause(False, None, None, wait=0, who="Ctrl+C")
        if segment.wait(grace):
            return True
        announce(
            f"The RunEngine's thread is busy (a plan or callback is blocking it); it is "
            f"{self.state} and will pause as soon as it is free. The prompt is yours."
        )
        return False

    def _result(self, ex: Execution) -> tuple | RunEngineResult:
        uids = tuple(ex.run_start_uids)
        if not self._call_returns_result:
            return uids
        plan_return = self.NO_PLAN_RETURN if ex.interrupted else ex.plan_return
        exception: Any = ex.exception  # a KeyboardInterrupt too, as bluesky's engine gives it
        return RunEngineResult(
            uids, plan_return, ex.exit_status, ex.interrupted, ex.reason, exception
        )

    # ---- control ---------------------------------------------------------------------------
    def request_pause(
        self,
        defer: bool = False,
        name: str | None = None,
        callback: Callable[[], bool] | None = None,
        *,
        hard: bool | None = None,
    ) -> None:
        """Pause now, or at the next checkpoint with ``defer=True`` (``hard=`` is ``not defer``).

        A ``name`` with a ``callback`` makes a standing request: :meth:`resume` refuses until
        ``callback()`` returns True. Safe to call from any thread, a plan or a callback; raises
        TransitionError when there is nothing to pause (idle, or the plan already ending).
        """
        if hard is not None:
            defer = not hard
        self._request_pause(defer, name, callback, wait=self.control_timeout)

    def _request_pause(
        self,
        defer: bool,
        name: str | None,
        callback: Callable | None,
        wait: float,
        who: str | None = None,
    ) -> None:
        """request_pause, waiting at most ``wait`` seconds for the loop to take the request.

        ``wait=0`` queues it and returns at once (Ctrl+C: it stands until the loop is free).
        ``who`` is recorded in the interruptions stream (default: the request's name).
        """
        refuse_if_panicked(self.state)
        event = "pause_deferred" if defer else "pause_now"
        if wait == 0:
            self._inbox.post(self._controller.apply, event, name, callback, who or name or "")
        else:
            self._inbox.call(
                "Pausing",
                self._controller.apply,
                event,
                name,
                callback,
                who or name or "",
                timeout=wait,
            )

    async def _request_pause_coro(self, defer: bool = False) -> None:
        """bluesky's pause coroutine, run on ``RE.loop`` (bluesky-queueserver's worker does)."""
        self._request_pause(defer, None, None, wait=self.control_timeout, who="")

    def resume(self) -> tuple | RunEngineResult | list[str]:
        """Resume a paused plan from its last checkpoint.

        If a named pause request's callback refuses, nothing happens and the list of names that
        block the resume is returned (and printed).
        """
        refuse_if_panicked(self.state)
        outcome = self._block(True, lambda: self._event("Resuming", "resume"))
        if isinstance(outcome, list):
            announce(f"Cannot resume: these pause requests still hold: {', '.join(outcome)}")
        return outcome

    def stop(self) -> tuple | RunEngineResult:
        """End the plan, running its cleanup; runs close with exit_status 'success'."""
        return self._interrupt("stop", "")

    def abort(self, reason: str = "") -> tuple | RunEngineResult:
        """End the plan, running its cleanup; runs close with exit_status 'abort' and ``reason``."""
        return self._interrupt("abort", reason)

    def halt(self) -> tuple | RunEngineResult:
        """End the plan now, skipping its cleanup; runs close with exit_status 'abort'."""
        return self._interrupt("halt", "")

    def _interrupt(self, kind: str, reason: str) -> tuple | RunEngineResult:
        # From paused the call carries on here until the plan's cleanup is done; from running
        # (another thread) it returns at once with the state already stopping/aborting/halting.
        refuse_if_panicked(self.state)
        what = {"stop": "Stopping", "abort": "Aborting", "halt": "Halting"}[kind]
        return self._block(False, lambda: self._event(what, kind, reason))

    def panic(self) -> None:
        """Emergency stop from any state and thread: a running plan is aborted for good.

        A paused plan stays paused. Nothing runs or resumes until :meth:`all_is_well`. If the
        engine's thread is blocked, the panic stays queued (EngineBusy says so) and takes effect
        before anything else the moment the thread is free.
        """
        self._event("Panicking", "panic", keep=True)

    def all_is_well(self) -> None:
        """Lift a panic: back to idle, or to paused if the panic came while paused.

        If the aborted plan is still cleaning up, waits for it (at most ``control_timeout``).
        """
        self._event("Lifting the panic", "all_is_well")
        ex = self._exec
        if ex is not None and self.state in ("aborting", "halting"):
            ex.segment.wait(self.control_timeout)

    def reset(self) -> None:
        """Halt whatever runs, forget the call's state and drop every subscription."""
        if not self.state.is_idle and not self.state.is_panicked:
            with contextlib.suppress(RunEngineInterrupted, TransitionError):
                self.halt()
            ex = self._exec
            if ex is not None:
                ex.segment.wait(self.control_timeout)

        def forget() -> None:
            if self.state.is_idle:
                self._exec = self._controller.ex = None
            self._temp_tokens = []
            self.dispatcher.unsubscribe_all()

        self._inbox.call("Resetting", forget, timeout=self.control_timeout)
