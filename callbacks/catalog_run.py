"""One stored run and its streams, read back like databroker v2's ``BlueskyRun``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .filling import Filler
from .records import RecordReader, read_stop

__all__ = ["Run", "Stream"]

_UNKNOWN = object()


class Run:
    """A stored run: ``metadata``, its streams by name (``run["primary"]``, ``run.primary``)
    and ``documents()``; databroker's header spellings too: ``start``, ``stop``,
    ``descriptors``, ``describe()`` and ``table(stream_name)``.

    ``complete`` is False for a run whose writer died before the stop document;
    ``metadata["stop"]`` is then None and the run reads up to its last whole document.
    External data (images in files) are filled on read through ``handlers`` (default: the
    installed ``databroker.handlers``, area-detector-handlers' among them; see :mod:`.filling`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        start: dict,
        *,
        strict: bool = True,
        stop: dict | None = None,
        handlers: Mapping[str, Any] | None = None,
        root_map: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.handlers = handlers
        self.root_map = root_map
        self.uid: str = start["uid"]
        self.strict = strict
        self._start = start
        self._stop: Any = _UNKNOWN if stop is None else stop
        self._scan: tuple[int, dict[str, list[dict]]] | None = None  # (file size, descriptors)

    # ---- metadata ----------------------------------------------------------------------
    @property
    def stop(self) -> dict | None:
        """The stop document, or None while (or if) the run has none."""
        if self._stop is _UNKNOWN or self._stop is None:
            stop = read_stop(self.path, self.uid)
            if stop is None:
                return None
            self._stop = stop  # a stopped run never changes again
        return self._stop

    @property
    def start(self) -> dict:
        """The start document."""
        return self._start

    @property
    def metadata(self) -> dict:
        """``{"start": ..., "stop": ... or None}``."""
        return {"start": self._start, "stop": self.stop}

    @property
    def descriptors(self) -> list[dict]:
        """Every descriptor document of the run, stream by stream (databroker's header)."""
        return [doc for docs in self._descriptors().values() for doc in docs]

    def describe(self) -> dict:
        """The run at a glance: its uid, start, stop, and each stream's data keys."""
        return {
            "uid": self.uid,
            "start": self._start,
            "stop": self.stop,
            "complete": self.complete,
            "streams": {name: self[name].data_keys for name in self},
        }

    def table(
        self, stream_name: str = "primary", *, fill: bool = False, convert_times: bool = True
    ) -> Any:
        """The stream as a ``pandas.DataFrame`` indexed by ``seq_num``, like databroker's
        ``header.table()``: ``time`` as naive UTC datetimes (seconds with
        ``convert_times=False``); external data as references unless ``fill``."""
        table = self[stream_name].to_pandas(fill=fill)
        if convert_times:
            import pandas as pd

            table["time"] = pd.to_datetime(table["time"], unit="s")
        return table

    @property
    def complete(self) -> bool:
        """Whether the run's stop document was stored."""
        return self.stop is not None

    # ---- documents ---------------------------------------------------------------------
    def documents(self, *, strict: bool | None = None) -> Iterator[tuple[str, dict]]:
        """Every stored ``(name, doc)`` in the order it was emitted (replay into callbacks)."""
        strict = self.strict if strict is None else strict
        yield from RecordReader(self.path, strict=strict)

    def replay(self, *callbacks: Any) -> None:
        """Send every stored document to each callback, in order."""
        for name, doc in self.documents():
            for callback in callbacks:
                callback(name, doc)

    # ---- streams -----------------------------------------------------------------------
    def _descriptors(self) -> dict[str, list[dict]]:
        size = os.stat(self.path).st_size
        if self._scan is None or self._scan[0] != size:
            found: dict[str, list[dict]] = {}
            for name, doc in self.documents():
                if name == "descriptor":
                    found.setdefault(doc.get("name", "primary"), []).append(doc)
            self._scan = (size, found)
        return self._scan[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._descriptors())

    def keys(self) -> list[str]:
        """The stream names."""
        return list(self._descriptors())

    def __len__(self) -> int:
        return len(self._descriptors())

    def __contains__(self, name: object) -> bool:
        return name in self._descriptors()

    def __getitem__(self, name: str) -> Stream:
        descriptors = self._descriptors()
        if name not in descriptors:
            raise KeyError(f"Run {self.uid} has no stream {name!r}; it has {list(descriptors)}")
        return Stream(self, name, descriptors[name])

    def __getattr__(self, name: str) -> Stream:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(str(err)) from None

    def __repr__(self) -> str:
        start = self._start
        state = "complete" if self.complete else "incomplete"
        return (
            f"<Run {self.uid[:8]} scan_id={start.get('scan_id')} "
            f"plan={start.get('plan_name', '')!r} {state}>"
        )


class Stream:
    """The events of one stream of a run: ``read()`` (xarray), ``to_pandas()``."""

    def __init__(self, run: Run, name: str, descriptors: list[dict]) -> None:
        self.run = run
        self.name = name
        self.descriptors = descriptors

    @property
    def metadata(self) -> dict:
        """``{"descriptors": [...]}``: every descriptor of this stream."""
        return {"descriptors": self.descriptors}

    @property
    def data_keys(self) -> dict:
        merged: dict = {}
        for descriptor in self.descriptors:
            merged.update(descriptor["data_keys"])
        return merged

    def _columns(self, fill: bool = False) -> tuple[dict[str, list], dict[str, list]]:
        """(``seq_num``/``time``/``uid`` columns, data columns) over events and event pages;
        external values filled if ``fill`` (and there are any)."""
        uids = {d["uid"] for d in self.descriptors}
        meta: dict[str, list] = {"seq_num": [], "time": [], "uid": []}
        data: dict[str, list] = {}
        data_keys = self.data_keys
        filler = None
        if fill and any("external" in key for key in data_keys.values()):
            filler = Filler(self.run.handlers, root_map=self.run.root_map)
        rows = 0
        try:
            for name, doc in self.run.documents():
                if name == "event":
                    if doc["descriptor"] not in uids:
                        continue
                    n = 1
                    values = doc["data"] if filler is None else filler.fill(doc, data_keys)
                    meta["seq_num"].append(doc["seq_num"])
                    meta["time"].append(doc["time"])
                    meta["uid"].append(doc["uid"])
                    for key, value in values.items():
                        column = data.get(key)
                        if column is None:
                            column = data[key] = [np.nan] * rows
                        column.append(value)
                elif name == "event_page":
                    if doc["descriptor"] not in uids:
                        continue
                    n = len(doc["seq_num"])
                    for key in meta:
                        meta[key].extend(doc[key])
                    for key, values in doc["data"].items():
                        column = data.get(key)
                        if column is None:
                            column = data[key] = [np.nan] * rows
                        if filler is not None and "external" in data_keys.get(key, {}):
                            values = [filler.fill_one(v, data_keys[key]) for v in values]
                        column.extend(values)
                else:
                    if filler is not None:
                        filler.add(name, doc)
                    continue
                rows += n
                for column in data.values():
                    if len(column) < rows:
                        column.extend([np.nan] * (rows - len(column)))
        finally:
            if filler is not None:
                filler.close()
        return meta, data

    def read(self, *, fill: bool = True) -> Any:
        """An ``xarray.Dataset``: one variable per data key over ``time`` (arrays keep extra
        dimensions), and ``seq_num``; the ``time`` coordinate is the events' time. External
        data are read from their files (``fill=False``: their datum ids)."""
        import xarray as xr

        meta, data = self._columns(fill)
        data_keys = self.data_keys
        variables = {"seq_num": (("time",), np.asarray(meta["seq_num"], dtype=np.int64))}
        for key, values in data.items():
            array = _stack(values)
            extra = array.ndim - 1
            named = list(data_keys.get(key, {}).get("dims") or ())
            dims = named if len(named) == extra else [f"{key}_dim_{i}" for i in range(extra)]
            variables[key] = (("time", *dims), array, {"data_key": data_keys.get(key, {})})
        return xr.Dataset(
            variables,
            coords={"time": np.asarray(meta["time"], dtype=float)},
            attrs={"stream_name": self.name, "run_start": self.run.uid},
        )

    def to_pandas(self, *, fill: bool = False) -> Any:
        """A ``pandas.DataFrame`` indexed by ``seq_num``: ``time`` and one column per data key
        (array values as objects); external data as datum ids unless ``fill``."""
        import pandas as pd

        meta, data = self._columns(fill)
        columns = {"time": np.asarray(meta["time"], dtype=float)}
        for key, values in data.items():
            array = _stack(values)
            columns[key] = array if array.ndim == 1 else list(array)
        index = pd.Index(np.asarray(meta["seq_num"], dtype=np.int64), name="seq_num")
        return pd.DataFrame(columns, index=index)

    def __repr__(self) -> str:
        return f"<Stream {self.name!r} of run {self.run.uid[:8]}>"


def _stack(values: list) -> np.ndarray:
    """Values of one data key as an array, rows first; ragged values as objects."""
    try:
        return np.asarray(values)
    except ValueError:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
