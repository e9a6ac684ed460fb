"""An SQLite index of a store directory's run files: what a catalog lists without opening them.

It lives in ``.index/`` of the store directory. The run files stay the record (the
write-ahead log); the index is derived from them and can be deleted at any time: the next
:meth:`RunIndex.sync` rebuilds it. One row per run file holds the start document (JSON), a
few of its fields as columns (``uid``, ``time``, ``scan_id``, ``plan_name``), the stop
document once it is stored, and the file's size and mtime, by which a sync sees what changed.
A file whose first record is not a start is a row of ``corrupt``.

A sync is cheap when nothing changed: if the directory's mtime is the one recorded at the last
full look (and that look was made long enough after it, so no file created in the same clock
tick can hide), only runs without a stop and files still being written are looked at again.
Several processes may sync one index at once: every change is an idempotent upsert.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .records import CorruptRunError, read_start, read_stop
from .store import SUFFIX

__all__ = ["INDEX_NAME", "STOP_IN_FILE", "TORN_AFTER", "RunIndex", "start_problem", "to_json"]

logger = logging.getLogger(__name__)

#: The index's path in the store directory: a folder of its own, so that SQLite's journal
#: files coming and going do not change the store directory's mtime (what a sync looks at).
INDEX_NAME = ".index/runs.sqlite"
#: Seconds after its last write a file whose start record is not whole counts as torn.
TORN_AFTER = 5.0
#: The ``stop`` column of a stopped run whose stop document is read from its file.
STOP_IN_FILE = "file"
_SCHEMA_VERSION = 1
_BATCH = 2000  # files read per transaction
_TRUST_AFTER_NS = 2_000_000_000  # a directory mtime this old cannot hide a same-tick create

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    file TEXT PRIMARY KEY, uid TEXT NOT NULL, time REAL NOT NULL,
    scan_id INTEGER, plan_name TEXT,
    odd INTEGER NOT NULL,   -- 1: plan_name/scan_id not plain, or start not kept as JSON
    start TEXT, stop TEXT, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_order ON runs (time, file);
CREATE INDEX IF NOT EXISTS runs_uid ON runs (uid);
CREATE INDEX IF NOT EXISTS runs_scan_id ON runs (scan_id, time);
CREATE INDEX IF NOT EXISTS runs_plan_name ON runs (plan_name, time);
CREATE INDEX IF NOT EXISTS runs_odd ON runs (odd) WHERE odd = 1;
CREATE INDEX IF NOT EXISTS runs_open ON runs (file) WHERE stop IS NULL;
CREATE TABLE IF NOT EXISTS corrupt (
    file TEXT PRIMARY KEY, offset INTEGER NOT NULL,
    reason TEXT,            -- NULL: no whole start yet, but maybe still being written
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
"""


def start_problem(start: dict) -> str | None:
    """Why ``start`` cannot be listed among the others, or None."""
    uid, when = start.get("uid"), start.get("time")
    if not isinstance(uid, str):
        return f"the start document's uid is {uid!r}, not a string"
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        return f"the start document's time is {when!r}, not a number of seconds"
    return None


def to_json(doc: dict) -> str | None:
    """``doc`` as JSON if it reads back equal, else None (numpy values, NaN...)."""
    try:
        text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return text if json.loads(text) == doc else None


def _plain(value: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def _start_row(name: str, start: dict, stop: dict | None, st: os.stat_result) -> tuple:
    plan_name, scan_id = start.get("plan_name"), start.get("scan_id")
    text = to_json(start)
    odd = (
        text is None
        or ("plan_name" in start and not _plain(plan_name, str))
        or ("scan_id" in start and not _plain(scan_id, int))
    )
    return (
        name,
        start["uid"],
        float(start["time"]),
        scan_id if _plain(scan_id, int) else None,
        plan_name if _plain(plan_name, str) else None,
        int(odd),
        text,
        _stop_json(stop),
        st.st_size,
        st.st_mtime_ns,
    )


def _stop_json(stop: dict | None) -> str | None:
    """The stop as JSON; :data:`STOP_IN_FILE` if it does not read back equal from JSON."""
    if stop is None:
        return None
    return to_json(stop) or STOP_IN_FILE


class RunIndex:
    """The index of ``directory``: in ``directory/.index/`` if it can be kept there
    (``persistent=True`` and the directory writable), else in memory."""

    def __init__(self, directory: str | os.PathLike, *, persistent: bool = True) -> None:
        self.directory = Path(directory)
        self.path: Path | None = None
        self.db = self._open(persistent)
        self.warned: set[Path] = set()  # corrupt files this process was told of

    def _open(self, persistent: bool) -> sqlite3.Connection:
        if persistent and self.directory.is_dir():
            path = self.directory / INDEX_NAME
            try:
                path.parent.mkdir(exist_ok=True)
                db = sqlite3.connect(path, timeout=30, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA cache_size=-65536")  # KiB: a 100k-run build stays in memory
                self._prepare(db)
                self.path = path
                return db
            except (OSError, sqlite3.Error) as err:  # a read-only directory, a damaged index
                logger.info("run index %s not usable (%s); indexing in memory", path, err)
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._prepare(db)
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):  # another layout: it is derived, rebuild it
            db.executescript("DROP TABLE IF EXISTS runs; DROP TABLE IF EXISTS corrupt;"
                             "DROP TABLE IF EXISTS meta;")  # fmt: skip
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (the connection is in autocommit mode otherwise)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- keeping up with the directory -------------------------------------------------
    def sync(self) -> int:
        """Bring the index up to the directory; return how many rows changed."""
        try:
            dir_mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return self._forget_all()
        recorded = self._meta("dir_mtime_ns")
        changed = 0
        if recorded != dir_mtime or not self._meta("dir_trusted"):
            changed += self._full_look(dir_mtime)
        changed += self._look_again()
        return changed

    def _meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _forget_all(self) -> int:
        with self._transaction():
            changed = self.db.execute("DELETE FROM runs").rowcount
            changed += self.db.execute("DELETE FROM corrupt").rowcount
            self.db.execute("DELETE FROM meta")
        return changed

    def _full_look(self, dir_mtime: int) -> int:
        looked_at = time.time_ns()
        try:
            present = {e.name for e in os.scandir(self.directory) if e.name.endswith(SUFFIX)}
        except FileNotFoundError:
            return self._forget_all()
        known = {
            row[0]
            for row in self.db.execute("SELECT file FROM runs UNION SELECT file FROM corrupt")
        }
        gone = known - present
        changed = self._add(sorted(present - known))
        with self._transaction():
            for name in gone:
                self.db.execute("DELETE FROM runs WHERE file = ?", (name,))
                self.db.execute("DELETE FROM corrupt WHERE file = ?", (name,))
            trusted = looked_at - dir_mtime > _TRUST_AFTER_NS
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("dir_mtime_ns", dir_mtime), ("dir_trusted", int(trusted))],
            )
        return changed + len(gone)

    def _look_again(self) -> int:
        """Runs without a stop, and corrupt files, whose file changed since last seen."""
        rows = self.db.execute(
            "SELECT file, size, mtime_ns, 0 FROM runs WHERE stop IS NULL"
            " UNION ALL SELECT file, size, mtime_ns, 1 FROM corrupt"
        ).fetchall()
        stale = []
        for name, size, mtime_ns, corrupt in rows:
            try:
                st = os.stat(self.directory / name)
            except FileNotFoundError:
                stale.append(name)
                continue
            pending = corrupt and self._pending(name)
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns) or pending:
                stale.append(name)
        return self._add(stale) if stale else 0

    def _pending(self, name: str) -> bool:
        row = self.db.execute("SELECT reason FROM corrupt WHERE file = ?", (name,)).fetchone()
        return row is not None and row[0] is None

    def _add(self, names: Iterable[str]) -> int:
        """(Re)read ``names`` and upsert what they are now, committing every :data:`_BATCH`
        files (a first build cut short keeps what it did)."""
        names = list(names)
        changed = 0
        for at in range(0, len(names), _BATCH):
            changed += self._add_batch(names[at : at + _BATCH])
        return changed

    def _add_batch(self, names: list[str]) -> int:
        runs, corrupt, removed = [], [], []
        for name in names:
            path = self.directory / name
            try:
                st = os.stat(path)
                entry = self._read(path, st)
            except FileNotFoundError:
                removed.append((name,))
                continue
            except OSError as err:
                logger.info("cannot read %s now (%s); looking again later", path, err)
                continue
            (corrupt if isinstance(entry[0], int) else runs).append((name, *entry))
        with self._transaction():
            gone = [(row[0],) for row in runs + corrupt] + removed
            self.db.executemany("DELETE FROM runs WHERE file = ?", gone)
            self.db.executemany("DELETE FROM corrupt WHERE file = ?", gone)
            self.db.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)", runs)
            self.db.executemany("INSERT INTO corrupt VALUES (?,?,?,?,?)", corrupt)
        return len(gone)

    def _read(self, path: Path, st: os.stat_result) -> tuple:
        """A run row's fields after the name, or ``(offset, reason|None, size, mtime_ns)``."""
        try:
            start = read_start(path)
        except CorruptRunError as err:
            return (err.offset, err.reason, st.st_size, st.st_mtime_ns)
        if start is None:
            age = time.time() - st.st_mtime_ns / 1e9
            reason = None
            if age >= TORN_AFTER:
                reason = f"no whole start record {age:.0f} s after the file was last written (torn)"
            return (0, reason, st.st_size, st.st_mtime_ns)
        problem = start_problem(start)
        if problem is not None:
            return (0, problem, st.st_size, st.st_mtime_ns)
        return _start_row(path.name, start, read_stop(path, start["uid"]), st)[1:]

    # ---- reading -----------------------------------------------------------------------
    def fresh(self, row: tuple) -> tuple:
        """A catalog row (``time, file, uid, start, stop, odd``), read again if its file
        changed since it was indexed (a run file rewritten or cut, not only appended to)."""
        try:
            st = os.stat(self.directory / row[1])
        except FileNotFoundError:
            return row
        known = self.db.execute(
            "SELECT size, mtime_ns FROM runs WHERE file = ?", (row[1],)
        ).fetchone()
        if known is None or known == (st.st_size, st.st_mtime_ns):
            return row
        self._add([row[1]])
        again = self.db.execute(
            "SELECT time, file, uid, start, stop, odd FROM runs WHERE file = ?", (row[1],)
        ).fetchone()
        return row if again is None else again

    def corrupt(self) -> dict[Path, CorruptRunError]:
        """The files that are not runs, with why (files maybe still being written left out)."""
        rows = self.db.execute(
            "SELECT file, offset, reason FROM corrupt WHERE reason IS NOT NULL ORDER BY file"
        )
        return {
            self.directory / name: CorruptRunError(self.directory / name, offset, reason)
            for name, offset, reason in rows
        }
