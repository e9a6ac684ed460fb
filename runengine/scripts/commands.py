"""The ``run_script`` command: an external script as an abortable, never-replayed plan step.

``Msg('run_script', None, script, args, **options)``; options are those of
:meth:`runengine.scripts.ScriptRunner.start` plus ``on_pause`` ('finish' or 'interrupt'),
``check`` (raise on failure, default True), ``status_events`` (default True) and ``runner``.

Interruptions reach the step by cancelling it (see ``execution.py``):

- stop, abort, halt, panic: the script's process group gets the abort sequence, then the
  engine goes on ending the plan (runs close with the usual exit_status).
- pause or suspension with ``on_pause='finish'``: the script runs to its end; the engine
  pauses (state 'pausing' meanwhile) once the step has returned its result.
- pause or suspension with ``on_pause='interrupt'``: the script is aborted; the step's result
  has ``interrupted=True`` (``check=True`` raises ScriptInterrupted into the plan on resume).

It is a ``replay="once"`` command: when a resume replays a step already taken, the core
answers with that step's result (or raises its error again) instead of starting the script
again.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import TYPE_CHECKING, Any

from bluesky.utils import Msg

from ..commands.spec import command
from . import ScriptRun, ScriptRunner

if TYPE_CHECKING:
    from ..call import CallContext

__all__ = ["runner_for"]

_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> ScriptRunner
_ON_PAUSE = ("finish", "interrupt")
_TEXT = {"dtype": "string", "shape": [], "source": "script"}
STATUS_STREAM = "script_status"
STATUS_KEYS = {
    "script": _TEXT,
    "run_id": _TEXT,
    "type": _TEXT,
    "payload": _TEXT,
    "host": _TEXT,
    "seq_no": {"dtype": "integer", "shape": [], "source": "script"},
}


def runner_for(RE: Any) -> ScriptRunner:
    """The engine's script runner: ``runner_for(RE).abort()`` aborts the script step only
    (the step then fails with ScriptAborted, which the plan may catch)."""
    runner = _RUNNERS.get(RE)
    if runner is None:
        runner = _RUNNERS[RE] = ScriptRunner()
    return runner


@command("run_script", replay="once")
async def run_script(call: CallContext, msg: Msg) -> Any:
    """Run an external script to its end; returns its ScriptResult (never replayed)."""
    options = dict(msg.kwargs)
    on_pause = options.pop("on_pause", "finish")
    if on_pause not in _ON_PAUSE:
        raise ValueError(f"on_pause must be one of {_ON_PAUSE}, not {on_pause!r}")
    check = options.pop("check", True)
    status_events = options.pop("status_events", True)
    runner = options.pop("runner", None) or runner_for(call.engine)
    script = msg.args[0] if msg.args else options.pop("script", None)
    args = msg.args[1] if len(msg.args) > 1 else options.pop("args", ())
    if status_events:
        options["on_status"] = _emitter(call)
    starting = asyncio.ensure_future(runner.start(script, args, **options))
    cancelled = False
    try:
        run: ScriptRun = await asyncio.shield(starting)
    except asyncio.CancelledError:
        _uncancel()
        cancelled = True
        run = await _steady(starting)  # it may not be stopped half-way: let it start, then act
    result = await _follow(call, run, on_pause, cancelled)
    return result.check() if check else result


async def _follow(call: CallContext, run: ScriptRun, on_pause: str, cancelled: bool) -> Any:
    """Wait for the run, acting on each interruption of the engine."""
    while True:
        if cancelled:
            cancelled = False
            kind = call.interrupt[0] if call.interrupt is not None else "cancel"
            if kind in ("pause", "suspend"):
                if on_pause == "finish":
                    run.sink.note(f"{kind} requested: letting the script finish first")
                else:
                    run.result.interrupted = True
                    return await _steady(run.abort(f"{kind} requested (on_pause='interrupt')"))
            else:
                reason = call.reason if kind == "abort" and call.reason else kind
                await _steady(run.abort(f"RunEngine {reason}"))
                raise asyncio.CancelledError
        try:
            return await run.wait()
        except asyncio.CancelledError:
            _uncancel()
            cancelled = True


async def _steady(awaitable: Any) -> Any:
    """Await to the end, whatever cancellations come meanwhile (an abort must complete)."""
    fut = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if fut.cancelled():
                raise
            _uncancel()


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


def _emitter(call: CallContext) -> Any:
    """Status messages as events of a ``script_status`` stream of every open run."""

    def emit(status: dict) -> None:
        payload = status.get("payload")
        try:
            text = json.dumps(payload)
        except (TypeError, ValueError):
            text = repr(payload)
        seq = status.get("seq_no")
        data = {
            "script": str(status.get("script")),
            "run_id": str(status.get("id")),
            "type": str(status.get("type")),
            "payload": text,
            "host": str(status.get("host")),
            "seq_no": seq if isinstance(seq, int) and not isinstance(seq, bool) else -1,
        }
        stamp = status.get("time")
        stamp = stamp if isinstance(stamp, int | float) else 0.0
        for bundle in list(call.runs.values()):
            stream = bundle.streams.get(STATUS_STREAM)
            if stream is None:
                stream = bundle.add_stream(STATUS_STREAM, STATUS_KEYS, {}, {}, {}, ())
                bundle.live_streams.add(STATUS_STREAM)  # not re-taken on a rewind
            bundle.emit_event(stream, data, dict.fromkeys(data, stamp))

    return emit
