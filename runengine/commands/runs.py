"""Commands that open and close runs and turn readings into documents."""

from __future__ import annotations

import copy
import inspect
import time
from collections import ChainMap
from typing import TYPE_CHECKING, Any

from bluesky.utils import IllegalMessageSequence, Msg

from ..documents import RunBundle, new_uid, split_reading
from ..eager import start
from .spec import MissingArgument, command, supports

if TYPE_CHECKING:
    from ..call import CallContext

__all__ = ["describe_into", "resolve", "run_of"]


async def resolve(value: Any) -> Any:
    """``await`` what an async device returned; pass plain values through."""
    if inspect.isawaitable(value):
        return await value
    return value


def run_of(call: CallContext, msg: Msg, what: str) -> RunBundle:
    """The open run ``msg`` addresses; IllegalMessageSequence if there is none."""
    bundle = call.runs.get(msg.run)
    if bundle is None:
        raise IllegalMessageSequence(
            f"Cannot {what} without an open run"
            + (f" (run key {msg.run!r})" if msg.run is not None else "")
            + ". Yield Msg('open_run') first."
        )
    return bundle


async def describe_into(bundle: RunBundle, stream: str, obj: Any) -> None:
    """Teach ``bundle`` what ``obj`` records in ``stream`` (describe and configuration)."""
    supports(obj, "read", "describe", command="read")
    describe = await resolve(obj.describe())
    if callable(getattr(obj, "read_configuration", None)) and callable(
        getattr(obj, "describe_configuration", None)
    ):
        conf_keys = await resolve(obj.describe_configuration())
        conf = await resolve(obj.read_configuration())
    else:
        conf_keys, conf = {}, {}
    bundle.learn(stream, obj, describe, conf_keys, conf)


async def asset_docs(obj: Any) -> list:
    """Resource and datum documents a device has ready (empty for most)."""
    collect = getattr(obj, "collect_asset_docs", None)
    if collect is None:
        return []
    docs = collect()
    if hasattr(docs, "__aiter__"):
        return [doc async for doc in docs]
    return list(docs)


#: Start-document keys the engine sets: metadata may not give them (bluesky: a TypeError too).
ENGINE_KEYS = ("uid", "time")


def _refuse_engine_keys(call: CallContext, msg: Msg, engine_md: Any) -> None:
    for where, md in (
        ("the RE() call's metadata", call.metadata),
        ("Msg('open_run')'s metadata", msg.kwargs),
        ("RE.md", engine_md),
    ):
        given = [key for key in ENGINE_KEYS if key in md]
        if given:
            raise TypeError(
                f"{where} sets {given}, which the RunEngine sets itself in the start document "
                f"(a uid names the run and its file; time is when it starts): {md[given[0]]!r}"
            )


@command(
    "open_run", replay="skip", subplan="open and close runs in the main plan, around run_graph"
)
async def open_run(call: CallContext, msg: Msg) -> str:
    """Open a run: emit its start document (md from the call, the message and RE.md)."""
    if msg.run in call.runs:
        raise IllegalMessageSequence(
            "A 'close_run' message was not received before the 'open_run' message"
        )
    engine = call.engine
    engine.md["scan_id"] = await resolve(engine.scan_id_source(engine.md))
    plan = call.plan
    md = ChainMap(
        call.metadata,
        msg.kwargs,
        {"plan_type": type(plan).__name__, "plan_name": getattr(plan, "__name__", "")},
        engine.md,
    )
    _refuse_engine_keys(call, msg, engine.md)
    engine.md_validator(dict(md))
    md = engine.md_normalizer(copy.deepcopy(dict(md)))
    start_doc = {"uid": new_uid(), "time": time.time(), **md}
    call.runs[msg.run] = bundle = RunBundle(
        start_doc,
        call.emit,
        record_interruptions=engine.record_interruptions,
        strict=call.strict_streams,
    )
    call.run_start_uids.append(bundle.uid)
    bundle.checkpoint()
    bundle.open()
    return bundle.uid


@command(
    "close_run", replay="skip", subplan="open and close runs in the main plan, around run_graph"
)
def close_run(call: CallContext, msg: Msg) -> str:
    """Close a run: emit its stop document; returns the run's start uid."""
    bundle = call.runs.get(msg.run)
    if bundle is None:
        raise IllegalMessageSequence(
            "A 'close_run' message was received but there is no run open. If this occurred "
            "after a pause/resume, add a 'checkpoint' message after the 'close_run' message."
        )
    exit_status = msg.kwargs.get("exit_status") or "success"
    reason = msg.kwargs.get("reason")
    if reason is None:
        # run_wrapper closes interrupted runs without a reason; keep the one the user gave.
        reason = call.reason if exit_status != "success" else ""
    del call.runs[msg.run]
    bundle.stop(exit_status, reason)
    return bundle.uid


# not cached: a rewind keeps the stream declared, a replay would declare it twice
@command("declare_stream", replay="skip")
async def declare_stream(call: CallContext, msg: Msg) -> tuple:
    """Emit a stream's descriptor now; returns (descriptor, compose_event, objs)."""
    bundle = run_of(call, msg, "declare a stream")
    name = msg.kwargs.get("name")
    if name is None:
        raise MissingArgument(  # bluesky's words first: its tests and users match on them
            "A stream name that is not None is required for pre-declare: "
            "Msg('declare_stream', *objs, name='primary')"
        )
    objs = tuple(dict.fromkeys(msg.args))
    if msg.kwargs.get("collect", False):
        from .flyers import describe_collect_into

        for obj in objs:
            await describe_collect_into(bundle, name, obj)
    else:
        for obj in objs:
            if not bundle.knows(name, obj):
                await describe_into(bundle, name, obj)
    bundle.declared.add(name)
    stream = bundle.describe_stream(name, objs)

    def compose_event(data: dict, timestamps: dict, **kw: Any) -> dict:
        return {"descriptor": stream.uid, "data": data, "timestamps": timestamps, **kw}

    return stream.descriptor, compose_event, list(objs)


@command("create")
def create(call: CallContext, msg: Msg) -> None:
    """Open an event bundle for the stream ``name``; later reads join it until save/drop."""
    bundle = run_of(call, msg, "create an event bundle")
    name = msg.kwargs.get("name")
    if name is None:
        if len(msg.args) != 1:
            raise ValueError(
                "Msg('create') requires a stream name, given as Msg('create', name) or "
                "Msg('create', name=name)"
            )
        (name,) = msg.args
    bundle.create(name)


@command("read")
def read(call: CallContext, msg: Msg) -> Any:
    """Read an object; returns the reading, added to the open event bundle if any."""
    obj = msg.obj
    try:
        reading = obj.read()
    except AttributeError:
        supports(obj, "read", command="read")
        raise
    bundle = call.runs.get(msg.run)
    stream = bundle.bundle_name if bundle is not None else None
    if not isinstance(reading, dict) or (
        bundle is not None and stream is not None and not bundle.knows(stream, obj)
    ):
        # An async device, or the first reading of this object in this stream.
        return start(_read_slowly(bundle, obj, reading))
    if bundle is not None and stream is not None:
        collect = getattr(obj, "collect_asset_docs", None)
        docs = collect() if collect is not None else ()
        if hasattr(docs, "__aiter__"):
            return start(_read_slowly(bundle, obj, reading))
        bundle.check_collision(obj)
        bundle.add_reading(obj, reading, list(docs))
    return reading


async def _read_slowly(bundle: RunBundle | None, obj: Any, reading: Any) -> dict:
    """The rest of ``read`` when it has to await the device or describe it first."""
    if inspect.isawaitable(reading):
        reading = await reading
    if reading is None:
        raise RuntimeError(f"{obj!r} returned None from read(); a reading must be a dict")
    if bundle is not None and bundle.bundle_name is not None:
        if not bundle.knows(bundle.bundle_name, obj):
            await describe_into(bundle, bundle.bundle_name, obj)
        bundle.check_collision(obj)
        bundle.add_reading(obj, reading, await asset_docs(obj))
    return reading


@command("save")
def save(call: CallContext, msg: Msg) -> None:
    """Close the event bundle and emit it as an event (its descriptor first, if new)."""
    bundle = call.runs.get(msg.run)
    if bundle is None:
        raise IllegalMessageSequence("Cannot 'save' without an open run and an event bundle.")
    bundle.save()


@command("drop")
def drop(call: CallContext, msg: Msg) -> None:
    """Discard the event bundle."""
    bundle = call.runs.get(msg.run)
    if bundle is None:
        raise IllegalMessageSequence("Cannot 'drop' without an open run and an event bundle.")
    bundle.drop()


@command("configure")
async def configure(call: CallContext, msg: Msg) -> Any:
    """``obj.configure(*args, **kwargs)``; descriptors that include it are re-emitted."""
    obj = supports(msg.obj, "configure", "read_configuration", command="configure")
    for bundle in call.runs.values():
        if bundle.bundle_name is not None:
            raise IllegalMessageSequence("Cannot configure after 'create' but before 'save'")
    result = obj.configure(*msg.args, **msg.kwargs)
    for bundle in call.runs.values():
        if any(known is obj for _, known in bundle.info):
            conf_keys = await resolve(obj.describe_configuration())
            conf = await resolve(obj.read_configuration())
            bundle.reconfigure(obj, conf_keys, conf)
    return result


def _same(data: dict, other: dict | None) -> bool:
    """Whether two readings' data are equal (arrays, whose ``==`` is ambiguous, are not)."""
    try:
        return bool(data == other)
    except ValueError:
        return False


@command("monitor", replay="skip", subplan="monitor in the main plan")
async def monitor(call: CallContext, msg: Msg) -> None:
    """Emit an event in stream ``name`` whenever ``obj`` changes, until unmonitor or close_run."""
    obj = supports(msg.obj, "subscribe", "clear_sub", "read", "describe", command="monitor")
    if msg.args:
        raise ValueError("Msg('monitor') takes no positional arguments besides the object")
    bundle = run_of(call, msg, "monitor")
    if obj in bundle.monitors:
        raise IllegalMessageSequence(f"{obj!r} is already monitored in this run")
    kwargs = dict(msg.kwargs)
    name = kwargs.pop("name", None) or f"{obj.name}_monitor"
    await describe_into(bundle, name, obj)
    stream = bundle.describe_stream(name, (obj,))
    bundle.live_streams.add(name)

    last: list = [None, None]  # the data and timestamps of the last event

    def emit_event(readings: dict | None = None, *args: Any, **kw: Any) -> None:
        # Subscribable devices pass their readings (ophyd-async: read() is a coroutine);
        # ophyd signals pass keywords only, so read them.
        data, stamps = split_reading(obj.read() if readings is None else readings)
        if stamps == last[1] and _same(data, last[0]):
            return  # the same reading again: re-subscribing after a pause calls back at once
        last[:] = data, stamps
        bundle.emit_event(stream, data, stamps)

    bundle.monitors[obj] = (emit_event, kwargs)
    obj.subscribe(emit_event, **kwargs)
    call.checkpoint()


@command("unmonitor", replay="skip", subplan="monitor in the main plan")
async def unmonitor(call: CallContext, msg: Msg) -> None:
    """Stop monitoring ``obj``."""
    obj = msg.obj
    bundle = call.runs.get(msg.run)
    if bundle is None or obj not in bundle.monitors:
        raise IllegalMessageSequence(f"Cannot 'unmonitor' {obj!r}; it is not being monitored.")
    callback, _ = bundle.monitors.pop(obj)
    obj.clear_sub(callback)
    call.checkpoint()
