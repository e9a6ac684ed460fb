"""External data filled back into events: a datum id in, the array it names out.

    filler = Filler()                       # handlers: the "databroker.handlers" entry points
    for name, doc in run.documents():
        filler.add(name, doc)               # resources and datums, as they come
    filler.fill(event, data_keys)           # event["data"] with each datum id replaced

Handlers are those the ecosystem registers (area-detector-handlers gives ``AD_HDF5``,
``AD_TIFF``, ...), or a ``{spec: handler class}`` given. A reference whose spec has no
handler is left as it is (the datum id); one whose file cannot be read raises
:class:`FillError`, naming the datum and the file. ``root_map`` maps a resource's ``root``
to where its files are now (databroker's spelling), for data moved since the run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .store import StoreError

__all__ = ["FillError", "Filler", "HandlerRegistry"]

logger = logging.getLogger(__name__)

HANDLER_GROUP = "databroker.handlers"


class FillError(StoreError):
    """External data could not be read; the message names the datum and its file."""


class HandlerRegistry(Mapping[str, Any]):
    """spec -> handler class, from the ``databroker.handlers`` entry points (loaded on first
    use of each spec, so a registry costs nothing until a reference is filled)."""

    def __init__(self) -> None:
        from importlib.metadata import entry_points

        self._points = {point.name: point for point in entry_points(group=HANDLER_GROUP)}
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, spec: str) -> Any:
        if spec not in self._loaded:
            self._loaded[spec] = self._points[spec].load()
        return self._loaded[spec]

    def __iter__(self) -> Iterator[str]:
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)


class Filler:
    """Resolves datum ids of one run; a handler is made once per resource."""

    def __init__(
        self,
        handlers: Mapping[str, Any] | None = None,
        *,
        root_map: Mapping[str, str] | None = None,
    ) -> None:
        self.handlers = HandlerRegistry() if handlers is None else handlers
        self.root_map = dict(root_map or {})
        self._resources: dict[str, dict] = {}
        self._datums: dict[str, dict] = {}
        self._opened: dict[str, Any] = {}

    def add(self, name: str, doc: dict) -> None:
        """Take note of a ``resource``, ``datum`` or ``datum_page``; other documents pass."""
        if name == "resource":
            self._resources[doc["uid"]] = doc
        elif name == "datum":
            self._datums[doc["datum_id"]] = doc
        elif name == "datum_page":
            kwargs = doc["datum_kwargs"]
            for i, datum_id in enumerate(doc["datum_id"]):
                self._datums[datum_id] = {
                    "datum_id": datum_id,
                    "resource": doc["resource"],
                    "datum_kwargs": {key: values[i] for key, values in kwargs.items()},
                }

    def fill(self, event: dict, data_keys: Mapping[str, dict]) -> dict:
        """``event["data"]`` with the external values filled (a new dict; the event is kept)."""
        data = event["data"]
        filled = event.get("filled") or {}
        out = dict(data)
        for key, value in data.items():
            if filled.get(key) is True or "external" not in data_keys.get(key, {}):
                continue
            out[key] = self.fill_one(value, data_keys[key])
        return out

    def fill_one(self, value: Any, data_key: Mapping[str, Any]) -> Any:
        """``value`` filled if it is a datum id, else as it is (filled already)."""
        return self.value(value, data_key) if isinstance(value, str) else value

    def value(self, datum_id: str, data_key: Mapping[str, Any] | None = None) -> Any:
        """The data ``datum_id`` names, shaped as ``data_key`` says; the id itself when its
        resource's spec has no handler (or the datum is not of this run)."""
        datum = self._datums.get(datum_id)
        if datum is None or datum["resource"] not in self._resources:
            return datum_id
        handler = self._handler(self._resources[datum["resource"]])
        if handler is None:
            return datum_id
        try:
            array = np.asarray(handler(**datum["datum_kwargs"]))
        except Exception as err:
            raise FillError(
                f"cannot read datum {datum_id} from {self._where(datum['resource'])}: "
                f"{type(err).__name__}: {err}"
            ) from err
        shape = list((data_key or {}).get("shape") or ())
        if shape and array.ndim == len(shape) + 1 and array.shape[0] == 1:
            array = array[0]  # one frame per point, handed over as a stack of one
        return array

    def _handler(self, resource: dict) -> Any:
        uid = resource["uid"]
        if uid not in self._opened:
            spec = resource.get("spec")
            try:
                handler_class = self.handlers[spec]
            except KeyError:
                logger.debug("no handler for spec %r: its data stay references", spec)
                self._opened[uid] = None
                return None
            try:
                self._opened[uid] = handler_class(
                    self._path(resource), **resource.get("resource_kwargs", {})
                )
            except Exception as err:
                raise FillError(
                    f"cannot open resource {uid} ({spec}) at {self._where(uid)}: "
                    f"{type(err).__name__}: {err}"
                ) from err
        return self._opened[uid]

    def _path(self, resource: dict) -> str:
        root = resource.get("root", "")
        root = self.root_map.get(root, root)
        return os.path.join(root, resource["resource_path"])

    def _where(self, resource_uid: str) -> str:
        return self._path(self._resources[resource_uid])

    def close(self) -> None:
        """Close every handler that has a ``close``."""
        for handler in self._opened.values():
            close = getattr(handler, "close", None)
            if close is not None:
                close()
        self._opened.clear()

    def __enter__(self) -> Filler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
