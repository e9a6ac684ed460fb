"""Commands that act on devices: move, trigger, stage, fly, locate, stop."""

from __future__ import annotations

import asyncio
from typing import Any

from bluesky.utils import Msg

from .registry import command, supports
from .runs import resolve, run_of


def _track(RE: Any, status: Any, msg: Msg, group: Any) -> Any:
    if status is None or not hasattr(status, "add_callback"):
        raise TypeError(
            f"{msg.obj!r}.{msg.command}() returned {status!r}; a Status object is required"
        )
    RE._exec.statuses.add(status, group)
    return status


def _kwargs(msg: Msg) -> tuple[Any, dict]:
    kwargs = dict(msg.kwargs)
    return kwargs.pop("group", None), kwargs


@command("set")
def set_(RE: Any, msg: Msg) -> Any:
    """``obj.set(*args)``; returns the Status, tracked in ``group``. Stopped on pause and exit."""
    obj = msg.obj
    group, kwargs = _kwargs(msg)
    try:
        status = obj.set(*msg.args, **kwargs)
    except AttributeError:
        supports(obj, "set", command="set")
        raise
    RE._exec.moved[obj] = None
    return _track(RE, status, msg, group)


@command("trigger")
def trigger(RE: Any, msg: Msg) -> Any:
    """``obj.trigger()``; returns the Status, tracked in ``group``."""
    obj = msg.obj
    group, kwargs = _kwargs(msg)
    try:
        status = obj.trigger(*msg.args, **kwargs)
    except AttributeError:
        supports(obj, "trigger", command="trigger")
        raise
    return _track(RE, status, msg, group)


@command("stage")
def stage(RE: Any, msg: Msg) -> Any:
    """Stage ``obj`` (unstaged at the end of the call); an implicit checkpoint."""
    obj = msg.obj
    group, _ = _kwargs(msg)
    ex = RE._exec
    result: Any = []
    if callable(getattr(obj, "stage", None)) and callable(getattr(obj, "unstage", None)):
        result = obj.stage()  # staged twice: the device decides (ophyd raises RedundantStaging)
        ex.staged[obj] = None
        if hasattr(result, "add_callback"):
            _track(RE, result, msg, group)
    ex.checkpoint()
    return result


@command("unstage")
def unstage(RE: Any, msg: Msg) -> Any:
    """Unstage ``obj``; an implicit checkpoint."""
    obj = msg.obj
    group, _ = _kwargs(msg)
    ex = RE._exec
    result: Any = []
    if callable(getattr(obj, "unstage", None)) and callable(getattr(obj, "stage", None)):
        result = obj.unstage()
        ex.staged.pop(obj, None)
        if hasattr(result, "add_callback"):
            _track(RE, result, msg, group)
    ex.checkpoint()
    return result


@command("kickoff")
def kickoff(RE: Any, msg: Msg) -> Any:
    """Start a flyer (needs an open run); collected at the end of the run if nobody does."""
    bundle = run_of(RE, msg, "kickoff")
    obj = supports(msg.obj, "kickoff", "complete", command="kickoff")
    group, kwargs = _kwargs(msg)
    status = obj.kickoff(*msg.args, **kwargs)
    bundle.uncollected.add(obj)
    return _track(RE, status, msg, group)


@command("complete")
def complete(RE: Any, msg: Msg) -> Any:
    """``obj.complete()``; returns the Status, tracked in ``group``."""
    obj = supports(msg.obj, "complete", command="complete")
    group, kwargs = _kwargs(msg)
    return _track(RE, obj.complete(*msg.args, **kwargs), msg, group)


@command("prepare")
def prepare(RE: Any, msg: Msg) -> Any:
    """``obj.prepare(value)``; returns the Status, tracked in ``group``."""
    obj = supports(msg.obj, "prepare", command="prepare")
    group, kwargs = _kwargs(msg)
    return _track(RE, obj.prepare(*msg.args, **kwargs), msg, group)


@command("locate")
async def locate(RE: Any, msg: Msg) -> Any:
    """Where objects are: one location, or a list for several (or ``squeeze=False``)."""
    objs = [msg.obj, *msg.args]
    for obj in objs:
        supports(obj, "locate", command="locate")
    locations = await asyncio.gather(*(resolve(obj.locate()) for obj in objs))
    if len(objs) == 1 and msg.kwargs.get("squeeze", True):
        return locations[0]
    return list(locations)


@command("stop")
async def stop(RE: Any, msg: Msg) -> Any:
    """``obj.stop()``."""
    obj = supports(msg.obj, "stop", command="stop")
    return await resolve(obj.stop(*msg.args, **msg.kwargs))
