"""A catalog of the runs in a store directory, with the databroker v2 feel.

    catalog = Catalog()                      # the default store directory, or Catalog(path)
    run = catalog[-1]                        # most recent; or catalog[uid], ["3fa9"], [42]
    run.metadata["start"]["sample"]; run.metadata["stop"]["exit_status"]
    ds = run.primary.read()                  # xarray.Dataset over time
    catalog.search({"sample": "Fe", "scan_id": {"$gte": 10}})

Listing reads only each file's first record (the start document), once; a run's stop is
read from the file's tail when asked for. A file that is not a run file, whose start document
has no string uid or no numeric time, or whose start record is still torn
:data:`TORN_AFTER` seconds after it was last written, is left out of the listing with a
warning and listed in ``catalog.corrupt`` with the reason; ``catalog[its uid]`` raises
:class:`CorruptRunError`. One bad file never stops the others from being listed.
"""

from __future__ import annotations

import math
import operator
import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .catalog_run import Run, Stream
from .records import CorruptRunError, read_start
from .store import SUFFIX, default_directory

__all__ = ["TORN_AFTER", "Catalog", "CorruptRunError", "Run", "Stream", "match"]

#: Seconds after its last write a file whose start record is not whole counts as torn.
TORN_AFTER = 5.0


def _start_problem(start: dict) -> str | None:
    """Why ``start`` cannot be listed among the others, or None."""
    uid, when = start.get("uid"), start.get("time")
    if not isinstance(uid, str):
        return f"the start document's uid is {uid!r}, not a string"
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        return f"the start document's time is {when!r}, not a number of seconds"
    return None


class _Index:
    """Start documents of the run files of one directory, refreshed by listing it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.starts: dict[str, tuple[dict, Path]] = {}  # file name -> (start doc, path)
        self.corrupt: dict[Path, CorruptRunError] = {}
        self._torn: set[Path] = set()  # corrupt for now: looked at again at each refresh

    def refresh(self) -> list[tuple[dict, Path]]:
        try:
            names = [e.name for e in os.scandir(self.directory) if e.name.endswith(SUFFIX)]
        except FileNotFoundError:
            names = []
        for name in names:
            if name in self.starts:
                continue
            path = self.directory / name
            if path in self.corrupt and path not in self._torn:
                continue
            try:
                start = read_start(path)
                problem = _start_problem(start) if start is not None else self._torn_for(path)
            except CorruptRunError as err:
                self._left_out(path, err)
                continue
            except OSError:
                continue  # removed or unreadable right now: try again next time
            if problem is not None:
                self._left_out(path, CorruptRunError(path, 0, problem), torn=start is None)
            elif start is not None:  # None: just created, start not yet written whole
                self._torn.discard(path)
                self.corrupt.pop(path, None)
                self.starts[name] = (start, path)
        present = set(names)
        for name in [name for name in self.starts if name not in present]:
            del self.starts[name]
        for path in [path for path in self.corrupt if path.name not in present]:
            del self.corrupt[path]
            self._torn.discard(path)
        entries = list(self.starts.values())
        entries.sort(key=lambda entry: (entry[0]["time"], entry[1].name))
        return entries

    def _torn_for(self, path: Path) -> str | None:
        """Why a file with no whole start record is torn, or None while it may be growing."""
        age = time.time() - path.stat().st_mtime
        if age < TORN_AFTER:
            return None
        return f"no whole start record {age:.0f} s after the file was last written (torn)"

    def _left_out(self, path: Path, err: CorruptRunError, torn: bool = False) -> None:
        if path not in self.corrupt:
            warnings.warn(f"{err}; left out of the catalog", stacklevel=5)
        self.corrupt[path] = err
        if torn:
            self._torn.add(path)


class Catalog:
    """The runs of a store directory, oldest first; a search gives a sub-catalog.

    ``strict=False`` reads runs with corruption up to the corrupt record, with a warning,
    instead of raising :class:`CorruptRunError`.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        strict: bool = True,
        _index: _Index | None = None,
        _queries: tuple[dict, ...] = (),
    ) -> None:
        self.directory = Path(default_directory() if directory is None else directory)
        self.strict = strict
        self._index = _index if _index is not None else _Index(self.directory)
        self._queries = _queries
        self._runs: dict[Path, Run] = {}

    # ---- listing -----------------------------------------------------------------------
    def _entries(self) -> list[tuple[dict, Path]]:
        entries = self._index.refresh()
        if self._queries:
            entries = [e for e in entries if all(match(e[0], q) for q in self._queries)]
        return entries

    def _run(self, entry: tuple[dict, Path]) -> Run:
        start, path = entry
        run = self._runs.get(path)
        if run is None:
            run = self._runs[path] = Run(path, start, strict=self.strict)
        return run

    def __len__(self) -> int:
        return len(self._entries())

    def __iter__(self) -> Iterator[str]:
        """The run uids, oldest first."""
        return iter([start["uid"] for start, _ in self._entries()])

    def keys(self) -> list[str]:
        return list(self)

    def values(self) -> Iterator[Run]:
        return (self._run(entry) for entry in self._entries())

    def items(self) -> Iterator[tuple[str, Run]]:
        return ((entry[0]["uid"], self._run(entry)) for entry in self._entries())

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, CorruptRunError):
            return False
        return True

    @property
    def corrupt(self) -> dict[Path, CorruptRunError]:
        """Files left out of the listing because their first record is not a start."""
        self._index.refresh()
        return dict(self._index.corrupt)

    # ---- lookup ------------------------------------------------------------------------
    def __getitem__(self, key: int | str) -> Run:
        """``-1`` the most recent run (``-2`` the one before...); a non-negative int, the
        most recent run with that ``scan_id``; a str, a uid or a unique uid prefix."""
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise TypeError(f"Look runs up by uid, uid prefix, scan_id or -N, not {key!r}")
        entries = self._entries()
        if isinstance(key, int):
            if key < 0:
                if -key > len(entries):
                    raise IndexError(f"Catalog has {len(entries)} runs; no run at {key}")
                return self._run(entries[key])
            for entry in reversed(entries):
                if entry[0].get("scan_id") == key:
                    return self._run(entry)
            raise KeyError(f"No run with scan_id {key} in {self.directory}")
        found = [e for e in entries if e[0]["uid"] == key]
        if not found:
            found = [e for e in entries if e[0]["uid"].startswith(key)]
        if len(found) == 1:
            return self._run(found[0])
        if len(found) > 1:
            uids = ", ".join(e[0]["uid"] for e in found[:5])
            raise KeyError(f"uid prefix {key!r} is ambiguous: it matches {uids}")
        for path, err in self._index.corrupt.items():
            if path.name.startswith(key) and key:
                raise CorruptRunError(err.path, err.offset, err.reason) from err
        raise KeyError(f"No run {key!r} in {self.directory}")

    def search(self, query: dict) -> Catalog:
        """Runs whose start document matches ``query``, as a catalog.

        Keys are start-document fields (dotted for nested ones, e.g. ``"sample.color"``);
        values match by equality (or membership, for a list field), or are operator dicts:
        ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex``; ``$and``/``$or`` combine
        queries.
        """
        if not isinstance(query, dict):
            raise TypeError(f"A query is a dict of start-document fields, not {query!r}")
        return Catalog(
            self.directory,
            strict=self.strict,
            _index=self._index,
            _queries=(*self._queries, query),
        )

    def __repr__(self) -> str:
        return f"<Catalog {str(self.directory)!r}: {len(self)} runs>"


# ---- queries ---------------------------------------------------------------------------
_MISSING = object()
_ORDER = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def _lookup(doc: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _equal(value: Any, wanted: Any) -> bool:
    if value is _MISSING:
        return False
    if value == wanted:
        return True
    return isinstance(value, list) and not isinstance(wanted, list) and wanted in value


def _compare(value: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return _equal(value, operand)
    if op == "$ne":
        return not _equal(value, operand)
    if op == "$in":
        return any(_equal(value, item) for item in operand)
    if op == "$nin":
        return not any(_equal(value, item) for item in operand)
    if op == "$exists":
        return (value is not _MISSING) == bool(operand)
    if op == "$regex":
        return isinstance(value, str) and re.search(operand, value) is not None
    if op in _ORDER:
        if value is _MISSING:
            return False
        try:
            return bool(_ORDER[op](value, operand))
        except TypeError:
            return False
    raise ValueError(f"Unknown query operator {op!r}")


def match(doc: dict, query: dict) -> bool:
    """Whether a (start) document matches a mongo-style query; see :meth:`Catalog.search`."""
    for key, condition in query.items():
        if key == "$and":
            if not all(match(doc, q) for q in condition):
                return False
            continue
        if key == "$or":
            if not any(match(doc, q) for q in condition):
                return False
            continue
        value = _lookup(doc, key)
        if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
            if not all(_compare(value, op, operand) for op, operand in condition.items()):
                return False
        elif not _equal(value, condition):
            return False
    return True
