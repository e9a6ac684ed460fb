"""What a run knows of its streams: each object's description, and the descriptors made from it.

An object is described once per stream (``describe`` and ``read_configuration``); a
descriptor's data keys, configuration, hints and object keys are merged from those of its
objects, whose field names must not collide. :class:`~runengine.documents.RunBundle` emits the
descriptor documents.
"""

from __future__ import annotations

from typing import Any

from event_model import EventModelValidationError

from .errors import RunEngineError

__all__ = [
    "EventKeysMismatch",
    "ObjectInfo",
    "Stream",
    "describe_object",
    "descriptor_fields",
    "split_reading",
]


class EventKeysMismatch(RunEngineError, EventModelValidationError, KeyError):
    """An event's data keys are not its descriptor's: a device's ``read()`` changed its keys
    after it was described. The run fails, as in bluesky (event-model refuses such an event).
    """

    def __init__(self, stream: str, objs: tuple, missing: set, extra: set) -> None:
        self.stream, self.missing, self.extra = stream, missing, extra
        names = ", ".join(getattr(obj, "name", repr(obj)) for obj in objs)
        super().__init__(
            f"An event of stream {stream!r} (read from {names}) does not have its descriptor's "
            f"data keys: missing {sorted(missing)}, not described {sorted(extra)}. A device's "
            "read() must give the keys its describe() gave."
        )

    def __str__(self) -> str:  # a KeyError would show its message in quotes
        return str(self.args[0])


def split_reading(reading: dict) -> tuple[dict, dict]:
    """``{key: {'value', 'timestamp'}}`` into parallel ``data`` and ``timestamps`` dicts."""
    data, stamps = {}, {}
    for key, val in reading.items():
        data[key] = val["value"]
        stamps[key] = val["timestamp"]
    return data, stamps


class Stream:
    """One descriptor and the objects it describes."""

    __slots__ = ("descriptor", "filled", "keys", "objs", "uid")

    def __init__(self, descriptor: dict, objs: tuple) -> None:
        self.descriptor = descriptor
        self.uid = descriptor["uid"]
        self.objs = objs
        data_keys = descriptor["data_keys"]
        self.filled = {
            key: False
            for key, dk in data_keys.items()
            if "external" in dk and dk["external"] != "STREAM:"
        }
        # What an event's data holds: all but the keys whose data live in a stream resource.
        self.keys = {key for key, dk in data_keys.items() if dk.get("external") != "STREAM:"}

    def check_keys(self, data: dict) -> None:
        """Raise :class:`EventKeysMismatch` unless ``data`` has exactly this stream's keys."""
        if data.keys() != self.keys:
            keys = set(data)
            raise EventKeysMismatch(
                self.descriptor["name"], self.objs, self.keys - keys, keys - self.keys
            )


class ObjectInfo:
    """What a run knows of one object: its description and configuration, read once."""

    __slots__ = ("config", "data_keys")

    def __init__(self, data_keys: dict, config: dict) -> None:
        self.data_keys = data_keys
        self.config = config


def describe_object(obj: Any, describe: dict, conf_keys: dict, conf: dict) -> ObjectInfo:
    """What a stream knows of ``obj``: its ``describe()`` (its name added to each data key) and
    its configuration (``describe_configuration()`` and ``read_configuration()``)."""
    obj_name = obj.name
    data_keys = {key: {**dk, "object_name": obj_name} for key, dk in describe.items()}
    data, stamps = split_reading(conf)
    return ObjectInfo(data_keys, {"data": data, "timestamps": stamps, "data_keys": conf_keys})


def descriptor_fields(
    name: str, objs: tuple, info: dict[tuple[str, Any], ObjectInfo]
) -> tuple[dict, dict, dict, dict]:
    """``(data_keys, configuration, hints, object_keys)`` of stream ``name`` of ``objs``.

    Every object must be in ``info`` for that stream; ValueError if two share a field name.
    """
    data_keys: dict = {}
    configuration: dict = {}
    hints: dict = {}
    object_keys: dict = {}
    owners: dict[str, Any] = {}
    for obj in objs:
        obj_info = info[(name, obj)]
        common = [key for key in obj_info.data_keys if key in owners]
        if common:
            raise ValueError(
                f"Data keys (field names) from {obj!r} collide with those from "
                f"{owners[common[0]]!r} in stream {name!r}. The colliding keys are {common}"
            )
        owners.update(dict.fromkeys(obj_info.data_keys, obj))
        obj_name = obj.name
        obj_hints = getattr(obj, "hints", None)
        if obj_hints is not None:
            hints[obj_name] = obj_hints
        object_keys[obj_name] = list(obj_info.data_keys)
        data_keys.update(obj_info.data_keys)
        configuration[obj_name] = obj_info.config
    return data_keys, configuration, hints, object_keys
