"""A catalog of the runs in a store directory, with the databroker v2 feel.

    catalog = Catalog()                      # the default store directory, or Catalog(path)
    run = catalog[-1]                        # most recent; or catalog[uid], ["3fa9"], [42]
    run.metadata["start"]["sample"]; run.metadata["stop"]["exit_status"]
    ds = run.primary.read()                  # xarray.Dataset over time
    catalog.search({"sample": "Fe", "scan_id": {"$gte": 10}})

The listing comes from the store's run index (in ``.index/`` of the store directory, see
:mod:`.run_index`): the first catalog over a store builds it, reading each file's first record
and its stop once; later ones read only what changed. Where the directory is not writable
(or with ``index=False``) the index is kept in memory, for this catalog only.

A file that is not a run file, whose start document has no string uid or no numeric time, or
whose start record is still torn :data:`TORN_AFTER` seconds after it was last written, is left
out of the listing with a warning and listed in ``catalog.corrupt`` with the reason;
``catalog[its uid]`` raises :class:`CorruptRunError`. One bad file never stops the others
from being listed.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .catalog_query import check_query, match, translate
from .catalog_run import Run, Stream
from .records import CorruptRunError, read_start
from .run_index import STOP_IN_FILE, TORN_AFTER, RunIndex
from .store import default_directory

__all__ = ["TORN_AFTER", "Catalog", "CorruptRunError", "Run", "Stream", "match"]

_COLUMNS = "time, file, uid, start, stop, odd"


class Catalog:
    """The runs of a store directory, oldest first; a search gives a sub-catalog.

    ``strict=False`` reads runs with corruption up to the corrupt record, with a warning,
    instead of raising :class:`CorruptRunError`. ``index=False`` keeps the run index in
    memory instead of in the store directory. ``handlers`` (spec -> handler class) and
    ``root_map`` say how external data are filled on read (see :mod:`.filling`).
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        strict: bool = True,
        index: bool = True,
        handlers: Mapping[str, Any] | None = None,
        root_map: Mapping[str, str] | None = None,
        _index: RunIndex | None = None,
        _queries: tuple[dict, ...] = (),
    ) -> None:
        self.directory = Path(default_directory() if directory is None else directory)
        self.strict = strict
        self.handlers = handlers
        self.root_map = root_map
        self._index = _index if _index is not None else RunIndex(self.directory, persistent=index)
        self._queries = _queries
        self._where = translate(_queries)
        self._runs: dict[str, Run] = {}

    # ---- listing -----------------------------------------------------------------------
    def _refresh(self) -> None:
        self._index.sync()
        for path, err in self._index.corrupt().items():
            if path not in self._index.warned:
                self._index.warned.add(path)
                warnings.warn(f"{err}; left out of the catalog", stacklevel=4)

    def _start(self, row: tuple) -> dict:
        text = row[3]
        return json.loads(text) if text is not None else read_start(self.directory / row[1])

    def _matches(self, row: tuple, queries: list[dict] | tuple[dict, ...]) -> bool:
        start = self._start(row)
        return start is not None and all(match(start, q) for q in queries)

    def _rows(self, *, newest_first: bool = False, limit: int | None = None) -> list[tuple]:
        """The matching index rows in order (``limit`` of them), after a refresh."""
        self._refresh()
        where, db = self._where, self._index.db
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {_COLUMNS} FROM runs WHERE odd = 0 AND {where.clause}"
        if where.residual:  # unordered: lets SQLite narrow by its indexes before the JSON
            rows = [r for r in db.execute(sql, where.params) if self._matches(r, where.residual)]
        else:
            sql += f" ORDER BY time {order}, file {order}" + (" LIMIT ?" if limit else "")
            rows = db.execute(sql, [*where.params, *([limit] if limit else [])]).fetchall()
        odd = [
            r
            for r in db.execute(f"SELECT {_COLUMNS} FROM runs WHERE odd = 1")
            if self._matches(r, self._queries)
        ]
        if odd or where.residual:
            rows.extend(odd)
            rows.sort(key=lambda r: (r[0], r[1]), reverse=newest_first)
        return rows[:limit] if limit else rows

    def _count(self) -> int:
        if self._where.residual:
            return len(self._rows())
        self._refresh()
        (plain,) = self._index.db.execute(
            f"SELECT COUNT(*) FROM runs WHERE odd = 0 AND {self._where.clause}",
            self._where.params,
        ).fetchone()
        odd = self._index.db.execute(f"SELECT {_COLUMNS} FROM runs WHERE odd = 1")
        return plain + sum(1 for r in odd if self._matches(r, self._queries))

    def _run(self, row: tuple) -> Run:
        name = row[1]
        fresh = self._index.fresh(row)
        if fresh is not row:  # the file changed since it was indexed
            self._runs.pop(name, None)
        row = fresh
        run = self._runs.get(name)
        if run is None:
            stop = json.loads(row[4]) if row[4] not in (None, STOP_IN_FILE) else None
            run = Run(
                self.directory / name, self._start(row), strict=self.strict, stop=stop,
                handlers=self.handlers, root_map=self.root_map,
            )  # fmt: skip
            self._runs[name] = run
        return run

    def _narrowed(self, query: dict) -> Catalog:
        return Catalog(
            self.directory,
            strict=self.strict,
            handlers=self.handlers,
            root_map=self.root_map,
            _index=self._index,
            _queries=(*self._queries, query),
        )

    def __len__(self) -> int:
        return self._count()

    def __iter__(self) -> Iterator[str]:
        """The run uids, oldest first."""
        return iter([row[2] for row in self._rows()])

    def keys(self) -> list[str]:
        return list(self)

    def values(self) -> Iterator[Run]:
        return (self._run(row) for row in self._rows())

    def items(self) -> Iterator[tuple[str, Run]]:
        return ((row[2], self._run(row)) for row in self._rows())

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, CorruptRunError):
            return False
        return True

    @property
    def corrupt(self) -> dict[Path, CorruptRunError]:
        """Files left out of the listing because their first record is not a start."""
        self._refresh()
        return self._index.corrupt()

    # ---- lookup ------------------------------------------------------------------------
    def __getitem__(self, key: int | str) -> Run:
        """``-1`` the most recent run (``-2`` the one before...); a non-negative int, the
        most recent run with that ``scan_id``; a str, a uid or a unique uid prefix."""
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise TypeError(f"Look runs up by uid, uid prefix, scan_id or -N, not {key!r}")
        if isinstance(key, int):
            if key < 0:
                rows = self._rows(newest_first=True, limit=-key)
                if len(rows) < -key:
                    raise IndexError(f"Catalog has {len(rows)} runs; no run at {key}")
                return self._run(rows[-1])
            rows = self._narrowed({"scan_id": key})._rows(newest_first=True, limit=1)
            if not rows:
                raise KeyError(f"No run with scan_id {key} in {self.directory}")
            return self._run(rows[0])
        found = self._narrowed({"uid": key})._rows(limit=2)
        if not found:
            prefixed = self
            if key:  # every uid starting with key, and only those, sorts in [key, after)
                after = key[:-1] + chr(ord(key[-1]) + 1)
                prefixed = self._narrowed({"uid": {"$gte": key, "$lt": after}})
            found = prefixed._rows(limit=6)
        if len(found) == 1:
            return self._run(found[0])
        if len(found) > 1:
            uids = ", ".join(row[2] for row in found[:5])
            raise KeyError(f"uid prefix {key!r} is ambiguous: it matches {uids}")
        for path, err in self._index.corrupt().items():
            if path.name.startswith(key) and key:
                raise CorruptRunError(err.path, err.offset, err.reason) from err
        raise KeyError(f"No run {key!r} in {self.directory}")

    def search(self, query: dict) -> Catalog:
        """Runs whose start document matches ``query``, as a catalog.

        Keys are start-document fields (dotted for nested ones, e.g. ``"sample.color"``);
        values match by equality (or membership, for a list field), or are operator dicts:
        ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex`` (and the rest of mongoquery's);
        ``$and``/``$or`` combine queries. Queries on ``uid``, ``time``, ``plan_name`` and
        ``scan_id`` are answered by the index alone.
        """
        check_query(query)
        return self._narrowed(query)

    def __repr__(self) -> str:
        return f"<Catalog {str(self.directory)!r}: {len(self)} runs>"
