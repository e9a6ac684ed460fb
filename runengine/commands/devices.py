"""Commands that act on devices: move, trigger, stage, fly, locate, stop."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from bluesky.utils import Msg

from .runs import resolve, run_of
from .spec import command, supports

if TYPE_CHECKING:
    from ..call import CallContext


def _track(call: CallContext, status: Any, msg: Msg, group: Any) -> Any:
    if status is None or not hasattr(status, "add_callback"):
        raise TypeError(
            f"{msg.obj!r}.{msg.command}() returned {status!r}; a Status object is required"
        )
    call.statuses.add(status, group)
    return status


def _kwargs(msg: Msg) -> tuple[Any, dict]:
    kwargs = dict(msg.kwargs)
    return kwargs.pop("group", None), kwargs


def _start_action(call: CallContext, msg: Msg, method: str) -> Any:
    """``obj.<method>(*args, **kwargs)`` and track the Status it returns in ``group``."""
    obj = msg.obj
    group, kwargs = _kwargs(msg)
    try:
        status = getattr(obj, method)(*msg.args, **kwargs)
    except AttributeError:
        supports(obj, method, command=msg.command)  # a clear error if the method is missing
        raise
    return _track(call, status, msg, group)


@command("set")
def set_(call: CallContext, msg: Msg) -> Any:
    """``obj.set(*args)``; returns the Status, tracked in ``group``. Stopped on pause and exit."""
    status = _start_action(call, msg, "set")
    call.moved[msg.obj] = None
    return status


@command("trigger")
def trigger(call: CallContext, msg: Msg) -> Any:
    """``obj.trigger()``; returns the Status, tracked in ``group``."""
    return _start_action(call, msg, "trigger")


@command("stage", replay="skip", subplan="stage devices in the main plan before run_graph")
def stage(call: CallContext, msg: Msg) -> Any:
    """Stage ``obj`` (unstaged at the end of the call); an implicit checkpoint."""
    obj = msg.obj
    group, _ = _kwargs(msg)
    result: Any = []
    if callable(getattr(obj, "stage", None)) and callable(getattr(obj, "unstage", None)):
        result = obj.stage()  # staged twice: the device decides (ophyd raises RedundantStaging)
        call.staged[obj] = None
        if hasattr(result, "add_callback"):
            _track(call, result, msg, group)
    call.checkpoint()
    return result


@command("unstage", replay="skip", subplan="unstage devices in the main plan after run_graph")
def unstage(call: CallContext, msg: Msg) -> Any:
    """Unstage ``obj``; an implicit checkpoint."""
    obj = msg.obj
    group, _ = _kwargs(msg)
    result: Any = []
    if callable(getattr(obj, "unstage", None)) and callable(getattr(obj, "stage", None)):
        result = obj.unstage()
        call.staged.pop(obj, None)
        if hasattr(result, "add_callback"):
            _track(call, result, msg, group)
    call.checkpoint()
    return result


@command("kickoff")
def kickoff(call: CallContext, msg: Msg) -> Any:
    """Start a flyer (needs an open run); collected at the end of the run if nobody does."""
    bundle = run_of(call, msg, "kickoff")
    supports(msg.obj, "kickoff", "complete", command="kickoff")
    status = _start_action(call, msg, "kickoff")
    bundle.uncollected.add(msg.obj)
    return status


@command("complete")
def complete(call: CallContext, msg: Msg) -> Any:
    """``obj.complete()``; returns the Status, tracked in ``group``."""
    return _start_action(call, msg, "complete")


@command("prepare")
def prepare(call: CallContext, msg: Msg) -> Any:
    """``obj.prepare(value)``; returns the Status, tracked in ``group``."""
    return _start_action(call, msg, "prepare")


@command("locate")
async def locate(call: CallContext, msg: Msg) -> Any:
    """Where objects are: one location, or a list for several (or ``squeeze=False``)."""
    objs = [msg.obj, *msg.args]
    for obj in objs:
        supports(obj, "locate", command="locate")
    locations = [obj.locate() for obj in objs]
    if any(inspect.isawaitable(location) for location in locations):
        locations = await asyncio.gather(*(resolve(location) for location in locations))
    if len(objs) == 1 and msg.kwargs.get("squeeze", True):
        return locations[0]
    return list(locations)


@command("stop")
async def stop(call: CallContext, msg: Msg) -> Any:
    """``obj.stop()``."""
    obj = supports(msg.obj, "stop", command="stop")
    return await resolve(obj.stop(*msg.args, **msg.kwargs))
