"""Composition of one run's documents: start, descriptors, events, assets and stop.

Our own composer, not event-model's: no per-document jsonschema validation on the hot path.
The tests validate every document against event-model's schemas instead. What goes into a
descriptor is in :mod:`runengine.descriptors`, the checks of asset documents (resources,
datums) in :mod:`runengine.assets`; :class:`RunBundle` emits them all.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

from bluesky.utils import IllegalMessageSequence

from .assets import RunAssets
from .descriptors import ObjectInfo, Stream, describe_object, descriptor_fields, split_reading

__all__ = ["RunBundle", "Stream", "new_uid", "split_reading"]


_uid_bits = random.Random()  # seeded from os.urandom; reseeded in forked children
os.register_at_fork(after_in_child=_uid_bits.seed)
_UID_FIXED_BITS = ~(0xF << 76) & ~(0x3 << 62)  # version and variant fields


def new_uid() -> str:
    """A fresh random (version 4) UUID string for a document.

    From a PRNG seeded with os.urandom rather than a system call per uid: three times faster
    than ``str(uuid.uuid4())``, and a uid needs uniqueness, not secrecy.
    """
    bits = (_uid_bits.getrandbits(128) & _UID_FIXED_BITS) | (0x4 << 76) | (0x2 << 62)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class RunBundle:
    """The documents of one open run and its bundling state.

    ``emit(name, doc)`` delivers a document. Methods are synchronous: the command handlers
    resolve a device's awaitables before calling in.
    """

    def __init__(
        self,
        start_doc: dict,
        emit: Callable[[str, dict], None],
        *,
        record_interruptions: bool = False,
        strict: bool = False,
    ) -> None:
        self.start = start_doc
        self.uid = start_doc["uid"]
        self._emit = emit
        self.strict = strict
        self.streams: dict[str, Stream] = {}
        self.seq: dict[str, int] = {}  # next seq_num per stream name
        self._seq_at_checkpoint: dict[str, int] = {}
        self._emitted_below: dict[str, int] = {}  # per stream: seq_nums emitted before a rewind
        self.info: dict[tuple[str, Any], ObjectInfo] = {}  # (stream, obj) -> description
        self.bundle_name: str | None = None
        self.bundle: dict[Any, dict] = {}  # obj -> reading, in read order
        self.asset_docs: list[tuple[str, dict]] = []
        self.monitors: dict[Any, tuple[Callable, dict]] = {}
        self.uncollected: set = set()
        self.declared: set[str] = set()
        # Streams fed by callbacks (monitors, interruptions), not by messages: a rewind does
        # not re-take their events, so it must not rewind their seq_nums either.
        self.live_streams: set[str] = set()
        self._interruptions: Stream | None = None
        self._record_interruptions = record_interruptions
        # A rewind closed the bundle the plan had open; until the replay opens it again, the
        # plan (told to stop or abort meanwhile) may still drop it.
        self._closed_by_rewind = False

    def open(self) -> None:
        """Emit the start document. Register the bundle first: if a subscriber raises here,
        the run is still open, so it gets its stop document."""
        self._emit("start", self.start)
        if self._record_interruptions:
            text = {"dtype": "string", "shape": [], "source": "RunEngine"}
            dk = {"interruption": text, "requested_by": text, "reason": text}
            self._interruptions = self.add_stream("interruptions", dk, {}, {}, {}, ())
            self.live_streams.add("interruptions")

    # ---- descriptors -------------------------------------------------------------------
    def add_stream(
        self,
        name: str,
        data_keys: dict,
        configuration: dict,
        hints: dict,
        object_keys: dict,
        objs: tuple,
    ) -> Stream:
        """Emit a descriptor for stream ``name`` (a new one replaces the old; seq_nums go on)."""
        doc = {
            "run_start": self.uid,
            "time": time.time(),
            "data_keys": data_keys,
            "uid": new_uid(),
            "configuration": configuration,
            "hints": hints,
            "name": name,
            "object_keys": object_keys,
            "object_classes": {},
        }
        stream = Stream(doc, objs)
        self.streams[name] = stream
        self.seq.setdefault(name, 1)
        self._seq_at_checkpoint.setdefault(name, 1)
        self._emit("descriptor", doc)
        return stream

    def describe_stream(self, name: str, objs: tuple) -> Stream:
        """Compose and emit the descriptor of ``objs`` (all already described) as ``name``."""
        return self.add_stream(name, *descriptor_fields(name, objs, self.info), objs)

    def knows(self, stream: str, obj: Any) -> bool:
        return (stream, obj) in self.info

    def learn(self, stream: str, obj: Any, describe: dict, conf_keys: dict, conf: dict) -> None:
        """Cache an object's description for a stream (describe, describe/read_configuration)."""
        self.info[(stream, obj)] = describe_object(obj, describe, conf_keys, conf)

    def reconfigure(self, obj: Any, conf_keys: dict, conf: dict) -> None:
        """New configuration for ``obj``: re-emit every descriptor that includes it."""
        data, stamps = split_reading(conf)
        for (_stream, known), info in self.info.items():
            if known is obj:
                info.config = {"data": data, "timestamps": stamps, "data_keys": conf_keys}
        for name, stream in list(self.streams.items()):
            if obj in stream.objs:
                self.describe_stream(name, stream.objs)

    # ---- event bundles -----------------------------------------------------------------
    def create(self, name: str) -> None:
        if self.bundle_name is not None:
            raise IllegalMessageSequence(
                "A second 'create' message is not allowed until the current event bundle is "
                "closed with a 'save' or 'drop' message."
            )
        if self.strict and name not in self.streams:
            raise IllegalMessageSequence("In strict mode you must pre-declare streams.")
        self.bundle_name = name
        self.bundle = {}
        self.asset_docs = []
        self._closed_by_rewind = False

    def check_collision(self, obj: Any) -> None:
        """Raise ValueError if ``obj``'s keys collide with another object's in the bundle."""
        name = self.bundle_name
        if name is None:
            raise IllegalMessageSequence(f"{obj!r} is read outside an event bundle")
        stream = self.streams.get(name)
        if stream is not None and obj in stream.objs:
            return  # this set of objects was checked when its descriptor was made
        keys = self.info[(name, obj)].data_keys.keys()
        for other in self.bundle:
            common = keys & self.info[(name, other)].data_keys.keys()
            if common:
                raise ValueError(
                    f"Data keys (field names) from {obj!r} collide with those from {other!r}. "
                    f"The colliding keys are {common}"
                )

    def add_reading(self, obj: Any, reading: dict, assets: list) -> None:
        self.bundle[obj] = reading
        if assets:
            self.asset_docs.extend(assets)

    def save(self) -> dict | None:
        """Emit the bundle as an event (and a descriptor first if the stream is new)."""
        name = self.bundle_name
        if name is None:
            raise IllegalMessageSequence(
                "A 'create' message must be sent, to open an event bundle, before that bundle "
                "can be saved with 'save'."
            )
        self.bundle_name = None
        bundle = self.bundle
        if not bundle:
            return None
        stream = self.streams.get(name)
        if stream is None:
            stream = self.describe_stream(name, tuple(bundle))
        elif len(stream.objs) != len(bundle) or not all(o in bundle for o in stream.objs):
            raise RuntimeError(
                f"Mismatched objects read, expected {frozenset(stream.objs)!s}, "
                f"got {frozenset(bundle)!s}"
            )
        seq_num = self.seq[name]
        if seq_num < self._emitted_below.get(name, 0):
            # The replay after a rewind re-took a point that was emitted before the
            # interruption: no second event (nor datums for it), the numbering goes on.
            self.seq[name] = seq_num + 1
            resources = [(n, d) for n, d in self.asset_docs if n.endswith("resource")]
            if resources:
                self.emit_assets(resources, stream)
            return None
        if self.asset_docs:
            self.emit_assets(self.asset_docs, stream)
        data, stamps = {}, {}
        for reading in bundle.values():
            for key, val in reading.items():
                data[key] = val["value"]
                stamps[key] = val["timestamp"]
        stream.check_keys(data)
        self.seq[name] = seq_num + 1
        doc = {
            "uid": new_uid(),
            "time": time.time(),
            "data": data,
            "timestamps": stamps,
            "seq_num": seq_num,
            "filled": dict(stream.filled) if stream.filled else {},
            "descriptor": stream.uid,
        }
        self._emit("event", doc)
        return doc

    def drop(self) -> None:
        if self.bundle_name is None and self._closed_by_rewind:
            self._closed_by_rewind = False
            return
        if self.bundle_name is None:
            raise IllegalMessageSequence(
                "A 'create' message must be sent, to open an event bundle, before that bundle "
                "can be dropped with 'drop'."
            )
        self.bundle_name = None
        self.bundle = {}

    def emit_event(self, stream: Stream, data: dict, timestamps: dict) -> dict:
        """Emit one event in ``stream`` outside a bundle (monitors, interruptions)."""
        name = stream.descriptor["name"]
        seq_num = self.seq[name]
        self.seq[name] = seq_num + 1
        doc = {
            "uid": new_uid(),
            "time": time.time(),
            "data": data,
            "timestamps": timestamps,
            "seq_num": seq_num,
            "filled": dict(stream.filled),
            "descriptor": stream.uid,
        }
        self._emit("event", doc)
        return doc

    def emit_assets(
        self, docs: list[tuple[str, dict]], stream: Stream | None, *, per_event: bool = True
    ) -> int:
        """Emit resource/datum and stream_resource/stream_datum documents of ``stream``.

        The engine fills in ``run_start`` (resources) and, in stream datums, ``descriptor`` and
        ``seq_nums`` (counted from the stream's next seq_num), checking them as bluesky does.
        Returns the width of the stream datums' indices: at most 1 for one event (``per_event``).
        """
        return self.assets.emit_all(docs, stream, self.seq, per_event=per_event)

    def record_interruption(self, content: str, requested_by: str = "", reason: str = "") -> None:
        """An event in the ``interruptions`` stream, if the run records them.

        ``content`` is what bluesky records ('pause', 'resume' or a suspender's justification);
        ``requested_by`` names who asked (a pause request's name, 'Ctrl+C', 'suspender').
        """
        if self._interruptions is not None:
            now = time.time()
            data = {"interruption": content, "requested_by": requested_by, "reason": reason}
            self.emit_event(self._interruptions, data, dict.fromkeys(data, now))

    # ---- checkpoints -------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Remember the seq_num counters: a rewind returns to them."""
        self._seq_at_checkpoint = dict(self.seq)

    def clear_checkpoint(self) -> None:
        self._seq_at_checkpoint = {}

    def rewind(self) -> None:
        """Back to the last checkpoint: re-taken events reuse their seq_nums; no open bundle.

        Live streams (monitors, interruptions) are not re-taken: they keep counting.
        Events already emitted are re-taken by the replay but not emitted again (see save).
        """
        emitted = self._emitted_below
        for name, next_seq in self.seq.items():
            if next_seq > emitted.get(name, 0):
                emitted[name] = next_seq
        seq = {name: 1 for name in self.streams}
        seq.update(self._seq_at_checkpoint)
        for name in self.live_streams:
            seq[name] = self.seq[name]
        self.seq = seq
        self._closed_by_rewind = self._closed_by_rewind or self.bundle_name is not None
        self.bundle_name = None
        self.bundle = {}

    # ---- monitors ------------------------------------------------------------------------
    def suspend_monitors(self) -> None:
        for obj, (cb, _) in self.monitors.items():
            obj.clear_sub(cb)

    def restore_monitors(self) -> None:
        for obj, (cb, kwargs) in self.monitors.items():
            obj.subscribe(cb, **kwargs)

    def clear_monitors(self) -> list[Exception]:
        errors = []
        for obj, (cb, _) in list(self.monitors.items()):
            try:
                obj.clear_sub(cb)
            except Exception as err:
                errors.append(err)
            del self.monitors[obj]
        return errors

    # ---- stop ----------------------------------------------------------------------------
    def stop(self, exit_status: str = "success", reason: str = "") -> dict:
        self.clear_monitors()
        num_events = {name: n - 1 for name, n in self.seq.items()}
        doc = {
            "run_start": self.uid,
            "time": time.time(),
            "uid": new_uid(),
            "exit_status": exit_status,
            "reason": reason,
            "num_events": num_events,
        }
        self._emit("stop", doc)
        return doc

    # ---- flyers and assets (state made on first use: most runs have neither) --------------
    @property
    def assets(self) -> RunAssets:
        """The run's asset documents, checked and filled in (see :meth:`emit_assets`)."""
        assets = self.__dict__.get("_assets")
        if assets is None:
            assets = self.__dict__["_assets"] = RunAssets(self.uid, self._emit)
        return assets

    @property
    def stream_resources(self) -> dict[str, str]:
        """The ``data_key`` of every stream_resource this run emitted, by uid."""
        return self.assets.stream_resources

    @property
    def collect_descriptions(self) -> dict[Any, Any]:
        """What each flyer's ``describe_collect()`` returned, asked once per run."""
        return self.__dict__.setdefault("_collect_descriptions", {})

    def emit_event_page(
        self, stream: Stream, data: dict, timestamps: dict, filled: dict, size: int
    ) -> dict:
        """Emit ``size`` events of ``stream`` as one event_page, numbered from its next seq_num."""
        name = stream.descriptor["name"]
        first = self.seq[name]
        self.seq[name] = first + size
        doc = {
            "uid": [new_uid() for _ in range(size)],
            "time": [time.time()] * size,
            "data": data,
            "timestamps": timestamps,
            "seq_num": list(range(first, first + size)),
            "filled": filled,
            "descriptor": stream.uid,
        }
        self._emit("event_page", doc)
        return doc
