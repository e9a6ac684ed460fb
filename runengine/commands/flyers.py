"""Commands that gather what flyers recorded: collect (event pages and stream assets).

A flyer describes its data with ``describe_collect()``: either old style, doubly nested
``{stream: {key: DataKey}}`` (one descriptor per stream, made on the first collect), or flat
``{key: DataKey}`` for a stream declared first with ``declare_stream(..., collect=True)``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from itertools import combinations
from typing import TYPE_CHECKING, Any

from bluesky.utils import IllegalMessageSequence, Msg
from event_model import EventModelError, EventModelValidationError

from ..documents import RunBundle, Stream
from ..errors import RunEngineError
from .runs import resolve, run_of
from .spec import UnsupportedObject, command, supports

if TYPE_CHECKING:
    from ..call import CallContext

__all__ = ["StreamDeclarationError", "collect", "describe_collect_into"]

Routes = dict[frozenset, str]  # the data keys of an old-style stream -> its name


class StreamDeclarationError(RunEngineError, IllegalMessageSequence, AssertionError):
    """A collect or declare_stream the declared streams do not allow (an AssertionError too,
    as in bluesky)."""


# ---- describe_collect ------------------------------------------------------------------------
def _is_flat(description: Any) -> bool:
    """``{key: DataKey}`` (the test bluesky applies: every value has a string ``source``)."""
    return isinstance(description, dict) and all(
        isinstance(dk, dict) and isinstance(dk.get("source"), str) for dk in description.values()
    )


def _streams_of(description: Any, declared: str | None) -> list[tuple[str, dict]]:
    """``describe_collect()`` output as (stream name, data keys) pairs."""
    if not description:
        return []
    if _is_flat(description):
        return [(declared or "primary", description)]
    if isinstance(description, dict) and all(_is_flat(dks) for dks in description.values()):
        if declared and list(description) != [declared]:
            raise RuntimeError(f"Expected a single stream {declared!r}, got {description}")
        return list(description.items())
    raise RuntimeError(
        f"Invalid describe_collect return: {description} when collect was called on {declared}"
    )


async def _describe_collect(bundle: RunBundle, obj: Any, cmd: str) -> Any:
    """``obj.describe_collect()``, asked once per run."""
    cache = bundle.collect_descriptions
    if obj not in cache:
        supports(obj, "describe_collect", command=cmd)
        cache[obj] = await resolve(obj.describe_collect())
    return cache[obj]


async def _learn(bundle: RunBundle, stream: str, obj: Any, data_keys: dict) -> None:
    """Record ``obj``'s data keys in ``stream``; its configuration is read once per stream."""
    info = bundle.info.get((stream, obj))
    if info is not None:
        info.data_keys = {key: {**dk, "object_name": obj.name} for key, dk in data_keys.items()}
        return
    if callable(getattr(obj, "read_configuration", None)) and callable(
        getattr(obj, "describe_configuration", None)
    ):
        conf_keys = await resolve(obj.describe_configuration())
        conf = await resolve(obj.read_configuration())
    else:
        conf_keys, conf = {}, {}
    bundle.learn(stream, obj, data_keys, conf_keys, conf)


async def describe_collect_into(bundle: RunBundle, stream: str, obj: Any) -> None:
    """Teach ``bundle`` what ``obj.describe_collect()`` says about ``stream``."""
    streams = _streams_of(await _describe_collect(bundle, obj, "declare_stream"), stream)
    if len(streams) != 1 or streams[0][0] != stream:
        raise StreamDeclarationError(
            "`declare_stream` contained `collect=True` but `describe_collect` did not return a "
            f"single Dict[str, DataKey] for the passed in {stream}"
        )
    await _learn(bundle, stream, obj, streams[0][1])


async def _describe_old_style(bundle: RunBundle, obj: Any) -> Routes:
    """Make the descriptors of a doubly nested ``describe_collect()`` that are still missing."""
    description = await _describe_collect(bundle, obj, "collect")
    streams = _streams_of(description, None)
    if any(
        isinstance(dk, dict) and {"dtype", "shape", "source"} <= dk.keys()
        for dk in description.values()
    ):
        raise StreamDeclarationError("Single nested data keys should be pre-declared")
    duplicates = [
        f"{sorted(k1.keys() & k2.keys())} in both {s1!r} and {s2!r}"
        for (s1, k1), (s2, k2) in combinations(streams, 2)
        if k1.keys() & k2.keys()
    ]
    if duplicates:
        raise RuntimeError(
            f"Can't use identical data keys in multiple streams: {obj.name} describes "
            + "; ".join(duplicates)
        )
    routes: Routes = {}
    for name, data_keys in streams:
        await _learn(bundle, name, obj, data_keys)
        current = bundle.streams.get(name)
        if current is None or obj not in current.objs:
            bundle.describe_stream(name, (obj,))
        routes[frozenset(data_keys)] = name
    return routes


def _stream_name(bundle: RunBundle, objs: list, name: str | None) -> str | None:
    """The declared stream to collect ``objs`` into: ``name``, or the one declared for them."""
    key = frozenset(objs)
    streams = bundle.streams
    declared = [s for s in bundle.declared if s in streams and frozenset(streams[s].objs) == key]
    if name:
        if name not in declared:
            raise StreamDeclarationError(
                "If a message stream name is provided declare stream needs to be called first."
            )
        return name
    if len(declared) > 1:
        raise StreamDeclarationError(
            f"{[obj.name for obj in objs]} are declared in streams {sorted(declared)}: "
            "say which with Msg('collect', ..., name=stream)"
        )
    return declared[0] if declared else None


# ---- assets ----------------------------------------------------------------------------------
def _writes_stream_assets(obj: Any) -> bool:
    return callable(getattr(obj, "collect_asset_docs", None)) and callable(
        getattr(obj, "get_index", None)
    )


async def _iterate(items: Any) -> AsyncIterator:
    """Items of a sync or async iterable (or of an awaitable returning one)."""
    if inspect.isawaitable(items):
        items = await items
    if hasattr(items, "__aiter__"):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _min_index(objs: list) -> int:
    """How far every object has written: collection of several stops at the least."""
    indices = [obj.get_index() for obj in objs]
    if any(inspect.isawaitable(index) for index in indices):
        indices = await asyncio.gather(*(resolve(index) for index in indices))
    return min(indices)


async def _asset_docs(obj: Any, index: int | None) -> list:
    collect_docs = getattr(obj, "collect_asset_docs", None)
    if not callable(collect_docs):
        return []
    docs = collect_docs(index) if _writes_stream_assets(obj) else collect_docs()
    return [doc async for doc in _iterate(docs)]


# ---- events ----------------------------------------------------------------------------------
def _route(routes: Routes | None, doc: dict, obj: Any) -> str:
    try:
        return routes[frozenset(doc["data"])]  # type: ignore[index]
    except KeyError:
        raise KeyError(
            f"{obj.name} collected data with keys {sorted(doc['data'])}, which match no stream "
            "of its describe_collect()"
        ) from None


def _check_keys(stream: Stream, doc: dict, what: str) -> None:
    """The keys event-model would insist on: all but the descriptor's "STREAM:" keys."""
    data_keys = stream.descriptor["data_keys"]
    data = doc["data"]
    if any(data_keys.get(key, {}).get("external") == "STREAM:" for key in data):
        raise RuntimeError(f"Received {what} containing data for external data keys.")
    expected = {key for key, dk in data_keys.items() if dk.get("external") != "STREAM:"}
    if data.keys() != expected or doc["timestamps"].keys() != expected:
        raise EventModelValidationError(
            f"{what} for stream {stream.descriptor['name']!r} has data keys {list(data)} and "
            f"timestamps keys {list(doc['timestamps'])}; the descriptor expects {sorted(expected)}"
        )
    if not (doc.get("filled") or {}).keys() <= data.keys():
        raise EventModelValidationError(f"Keys in {what}['filled'] must be a subset of its data")


def _transpose(rows: list[dict]) -> dict[str, list]:
    """Rows of dicts into a dict of columns (as event-model's pack_event_page does)."""
    columns: dict[str, list] = {}
    for row in rows:
        for key, value in row.items():
            columns.setdefault(key, []).append(value)
    return columns


async def _collect_events(
    bundle: RunBundle, obj: Any, name: str | None, routes: Routes | None, keep: bool
) -> list:
    """Pack the partial events of ``obj.collect()`` into one event_page per stream."""
    payload: list[dict] = []
    pending: dict[str, list[dict]] = {}  # the partial events of each stream
    async for partial in _iterate(obj.collect()):
        if keep:
            payload.append(partial)
        stream = name or _route(routes, partial, obj)
        _check_keys(bundle.streams[stream], partial, "an event")
        pending.setdefault(stream, []).append(partial)
    for stream, partials in pending.items():
        bundle.emit_event_page(
            bundle.streams[stream],
            _transpose([p["data"] for p in partials]),
            _transpose([p["timestamps"] for p in partials]),
            _transpose([p.get("filled") or {} for p in partials]),
            len(partials),
        )
    return payload


def _page_size(page: dict) -> int:
    lengths = {len(column) for column in page["data"].values()}
    lengths |= {len(column) for column in page["timestamps"].values()}
    if len(lengths) > 1:
        raise EventModelError(f"Cannot compose event_page: columns of different lengths {lengths}")
    return lengths.pop() if lengths else len(page.get("time", ()))


async def _collect_pages(
    bundle: RunBundle, obj: Any, name: str | None, routes: Routes | None, keep: bool
) -> list:
    """Emit the partial pages of ``obj.collect_pages()`` one by one."""
    payload = []
    async for page in _iterate(obj.collect_pages()):
        if keep:
            payload.append(page)
        stream = bundle.streams[name or _route(routes, page, obj)]
        _check_keys(stream, page, "an event_page")
        size = _page_size(page)
        if size:
            bundle.emit_event_page(stream, dict(page["data"]), dict(page["timestamps"]), {}, size)
    return payload


# ---- the command -----------------------------------------------------------------------------
@command("collect")
async def collect(call: CallContext, msg: Msg) -> Any:
    """Collect data a flyer recorded and emit it as event pages (and asset documents)."""
    bundle = run_of(call, msg, "collect")
    if msg.kwargs.get("stream", False) is True:
        raise RuntimeError(
            "Collect now emits EventPages (stream=False), "
            "so emitting Events (stream=True) is no longer supported"
        )
    keep = msg.kwargs.get("return_payload", True)
    objs = [supports(obj, "describe_collect", command="collect") for obj in (msg.obj, *msg.args)]
    if len(objs) > 1:
        for obj in objs:
            if not _writes_stream_assets(obj):
                raise UnsupportedObject(
                    f"{obj} does not implement all WritesStreamAssets methods: collecting "
                    "several objects needs collect_asset_docs(index) and get_index() on each"
                )
    bundle.uncollected.difference_update(objs)

    name = _stream_name(bundle, objs, msg.kwargs.get("name"))
    routes = None
    if name is None:
        if len(objs) > 1:
            raise IllegalMessageSequence(
                "If collecting multiple objects you must predeclare a stream for all the objects "
                "first and provide the stream name"
            )
        routes = await _describe_old_style(bundle, objs[0])
    index = await _min_index(objs) if len(objs) > 1 else None
    docs = [doc for obj in objs for doc in await _asset_docs(obj, index)]
    stream = bundle.streams.get(name) if name is not None else None
    width = bundle.emit_assets(docs, stream, per_event=False)

    obj = objs[0]
    if len(objs) == 1 and not _writes_stream_assets(obj):
        if callable(getattr(obj, "collect_pages", None)):
            payload = await _collect_pages(bundle, obj, name, routes, keep)
        elif callable(getattr(obj, "collect", None)):
            payload = await _collect_events(bundle, obj, name, routes, keep)
        else:
            if name is None:
                raise RuntimeError(
                    "A `collect` message on a device that isn't EventCollectable or "
                    "EventPageCollectable requires a `name=stream_name` argument"
                )
            bundle.seq[name] += width
            return None
        return payload if keep else None
    # Only stream datums here: they, not events, move the stream's seq_num on.
    if name is not None:
        bundle.seq[name] += width
    return None
