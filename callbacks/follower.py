"""The follower: keeps a store's run index, and a tiled catalog, up with its run files.

    follower = Follower(store_dir, client)        # client: tiled, e.g. store_client(store_dir)
    follower.step()                               # index and export what is new; or:
    follower.follow(stop_event)                   # until stop_event is set

It reads the run files and nothing else: the engine never waits for it, and it may run in
another process (``runengine serve`` does), stop, and start again. Each run goes into tiled
once: what was exported is recorded in the index (``exports``), so a follower started again
goes on where the last one stopped; a run it had half exported (its process died) is deleted
from tiled and exported again whole. Rows are written in batches; a run still being written
gets what it holds written at the end of each step (so tiled lags the file by one step), and
is finished when its stop arrives.
A run that cannot be exported (tiled refuses it) is recorded with the reason in ``failed``
and not retried until its file changes; the others go on. While tiled cannot be reached, a
step exports nothing and says so (``offline``); the next one tries again.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import RecordReader
from .run_index import RunIndex
from .store import default_directory

__all__ = ["Follower", "StepReport"]

logger = logging.getLogger(__name__)

#: Rows per write; a growing run also writes what it holds at the end of each step.
BATCH = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exports (
    target TEXT NOT NULL, file TEXT NOT NULL, uid TEXT NOT NULL,
    done INTEGER NOT NULL,       -- 1: the stop went in; 0: begun by a follower now gone
    failed TEXT, size INTEGER,   -- why tiled refused it, at this file size
    PRIMARY KEY (target, file)
);
"""


def _offline_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean tiled is not there (rather than that it refused a run)."""
    try:
        import httpx
    except ImportError:
        return (OSError,)
    return (OSError, httpx.TransportError)


@dataclass
class _Live:
    """A run being streamed into tiled by this follower."""

    uid: str
    writer: Any
    offset: int = 0
    docs: int = 0


@dataclass
class StepReport:
    """What one :meth:`Follower.step` did."""

    indexed: int = 0
    exported: list[str] = field(default_factory=list)  # uids whose stop went in
    documents: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # uid -> reason
    offline: str | None = None  # why tiled could not be reached, if it could not


class Follower:
    """Indexes ``directory`` and exports its runs into the tiled ``client`` (optional).

    ``target`` names the client in the export records (default: its URI), so one store can
    feed several catalogs.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        client: Any = None,
        *,
        target: str | None = None,
    ) -> None:
        self.directory = Path(default_directory() if directory is None else directory)
        self.index = RunIndex(self.directory)
        self.client = client
        self.target = target or (str(getattr(client, "uri", "tiled")) if client else "")
        self._live: dict[str, _Live] = {}
        self.index.db.executescript(_SCHEMA)

    # ---- one pass ----------------------------------------------------------------------
    def step(self) -> StepReport:
        """Index what changed, then export every run not yet wholly in tiled."""
        report = StepReport(indexed=self.index.sync())
        if self.client is None:
            return report
        rows = self.index.db.execute(
            "SELECT r.file, r.uid, r.size, e.done, e.failed, e.size"
            " FROM runs r LEFT JOIN exports e ON e.target = ? AND e.file = r.file"
            " WHERE e.done IS NOT 1 ORDER BY r.time, r.file",
            (self.target,),
        ).fetchall()
        for file, uid, size, done, failed, failed_size in rows:
            if failed is not None and failed_size == size:
                continue  # refused before, and the file has not changed since
            try:
                self._export(file, uid, begun=done is not None, report=report)
            except _offline_errors() as err:
                self._live.pop(file, None)  # its writer may have lost rows: begin it again
                report.offline = f"{type(err).__name__}: {err}"
                logger.info("tiled %s is not reachable (%s)", self.target, report.offline)
                break
            except Exception as err:  # one run tiled refuses must not stop the others
                reason = f"{type(err).__name__}: {err}"
                logger.warning("could not export run %s to %s: %s", uid, self.target, reason)
                self._live.pop(file, None)
                self._record(file, uid, done=0, failed=reason, size=size)
                report.failed[uid] = reason
        return report

    def _export(self, file: str, uid: str, *, begun: bool, report: StepReport) -> None:
        live = self._live.get(file)
        if live is None:
            if begun or uid in self.client:
                if self._whole_in_tiled(uid):
                    self._record(file, uid, done=1)
                    return
                self.client.delete_contents(uid, recursive=True, external_only=False)
            live = self._live[file] = _Live(uid, self._writer())
            self._record(file, uid, done=0)
        reader = RecordReader(self.directory / file, offset=live.offset)
        for name, doc in reader:
            live.writer(name, doc)
            live.docs += 1
            report.documents += 1
            if name == "stop":
                del self._live[file]
                self._record(file, uid, done=1)
                report.exported.append(uid)
                return
        live.writer.flush()  # the run grows: tiled shows what the file holds now
        live.offset = reader.end

    def _whole_in_tiled(self, uid: str) -> bool:
        """Whether tiled holds the run with its stop (exported by an earlier follower)."""
        try:
            return self.client[uid].metadata.get("stop") is not None
        except KeyError:
            return False

    def _writer(self) -> Any:
        from .tiled_mirror import RunExport

        return RunExport(self.client, batch_size=BATCH)

    def _record(self, file: str, uid: str, *, done: int, failed: str | None = None,
                size: int | None = None) -> None:  # fmt: skip
        self.index.db.execute(
            "INSERT OR REPLACE INTO exports VALUES (?, ?, ?, ?, ?, ?)",
            (self.target, file, uid, done, failed, size),
        )

    # ---- following ---------------------------------------------------------------------
    def follow(self, stop: threading.Event, interval: float = 0.5) -> None:
        """:meth:`step` every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # a bad pass is logged; the next one tries again
                logger.exception("follower step failed")
            stop.wait(interval)

    def exported(self) -> dict[str, bool]:
        """The uids this store sent to the target, with whether each went in whole."""
        rows = self.index.db.execute(
            "SELECT uid, done FROM exports WHERE target = ? AND failed IS NULL", (self.target,)
        )
        return {uid: bool(done) for uid, done in rows}

    def close(self) -> None:
        self.index.close()
