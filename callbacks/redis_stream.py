"""Every run's documents on a Redis stream, and a consumer that stores them on another host.

    RE.subscribe(DocumentPublisher("redis://127.0.0.1:6379/0"))     # after the local RunStore
    DocumentConsumer("redis://...", "/data/runs", consumer="store-1").run(stop_event)

The local :class:`~runengine.callbacks.store.RunStore` stays the source of truth; the stream is
a copy for remote readers. Each stream entry is one msgpack record ``[seq, run_uid, name, doc]``
(msgpack-numpy, as in run files), ``seq`` counting the publisher's documents.

The consumer reads with a consumer group (``XREADGROUP``), first its own entries delivered
but never acknowledged (a crash), then new ones; it acknowledges (``XACK``) after writing.
It trusts nothing it reads: an entry that is not such a record, names a run uid that cannot
name a file (``../evil``), or that the store refuses, is set aside on ``<stream>:rejected``
with the reason (``rejected`` counts them), acknowledged, and the consumer goes on: one bad
entry never wedges it. It appends only to run files it can lock: a file another store is
writing, or whose start is another run's, is never truncated or written.
Writes are idempotent, keyed by each document's uid (``datum_id`` for datums, the first uid
for pages): a run file met again is re-read to learn which documents it already holds, so a
consumer killed and restarted anywhere ends with every document exactly once.

``on_failure`` of the publisher: ``"fallback"`` drops documents while Redis is gone (counted
in ``dropped``; the local store has them); ``"fail"`` raises BackendUnavailable into the
engine at the next document, which ends the run clearly.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from typing import Any

import msgpack

from runengine.scaleout.connection import BackendUnavailable, check_policy, connect, redis_errors

from .records import RecordReader, _decode
from .store import RunStore, StoreError, _RunFile, make_packer, safe_uid

__all__ = [
    "BadEntry",
    "DocumentConsumer",
    "DocumentPublisher",
    "ResumableRunStore",
    "document_key",
]

logger = logging.getLogger(__name__)

DEFAULT_STREAM = "runengine:documents"
REJECTED_MAXLEN = 10_000  # entries kept on <stream>:rejected
_NAMES = frozenset(
    ("start", "descriptor", "event", "event_page", "resource", "datum", "datum_page",
     "stream_resource", "stream_datum", "stop")
)  # fmt: skip
_PARENT = {  # document name -> the key of the document it belongs to
    "descriptor": "run_start", "resource": "run_start", "stream_resource": "run_start",
    "stop": "run_start", "event": "descriptor", "event_page": "descriptor",
    "datum": "resource", "datum_page": "resource", "stream_datum": "stream_resource",
}  # fmt: skip


class BadEntry(StoreError):
    """A stream entry the consumer cannot take; the message says why (it is set aside)."""


def decode_entry(data: bytes) -> tuple[str, str, dict]:
    """``(run uid, document name, document)`` of one entry's record, or :class:`BadEntry`."""
    try:
        record = msgpack.unpackb(data, object_hook=_decode, raw=False)
    except Exception as err:  # whatever the bytes were, they are not our record
        raise BadEntry(f"not a msgpack record: {type(err).__name__}: {err}") from None
    if not isinstance(record, list) or len(record) != 4:
        raise BadEntry(f"not a [seq, run uid, name, document] record: {_short(record)}")
    _, run, name, doc = record
    if name not in _NAMES or not isinstance(doc, dict):
        raise BadEntry(f"not a document: name {_short(name)}, document {_short(doc)}")
    try:
        safe_uid(run)
    except StoreError as err:
        raise BadEntry(str(err)) from None
    if name == "start" and doc.get("uid") != run:
        raise BadEntry(f"a start whose uid {_short(doc.get('uid'))} is not its run's {run!r}")
    if _PARENT.get(name) == "run_start" and doc.get("run_start") not in (None, run):
        raise BadEntry(f"a {name} of run {_short(doc.get('run_start'))} sent as run {run!r}")
    return run, name, doc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def document_key(name: str, doc: dict) -> str:
    """What makes a document unique among its run's: ``name:uid`` (datum_id, first of pages)."""
    key = doc.get("uid", doc.get("datum_id"))
    if isinstance(key, list | tuple):
        key = key[0] if key else doc.get("descriptor")
    return f"{name}:{key}"


class DocumentPublisher:
    """A subscriber that copies every document to a Redis stream, from a background thread.

    ``maxlen``: the stream is trimmed to about that many entries. ``queue_size``: documents
    held while Redis is slow before the oldest are dropped (counted).
    """

    def __init__(
        self,
        url: str | Any = "redis://127.0.0.1:6379/0",
        stream: str = DEFAULT_STREAM,
        *,
        on_failure: str = "fallback",
        maxlen: int = 1_000_000,
        socket_timeout: float = 1.0,
        batch: int = 500,
        queue_size: int = 100_000,
    ) -> None:
        self.on_failure = check_policy(on_failure)
        self.stream = stream
        self.maxlen = maxlen
        self.batch = batch
        self.redis = connect(url, socket_timeout)
        self.seq = 0
        self.published = 0
        self.dropped = 0
        self.error: BaseException | None = None
        self._runs: dict[str, str] = {}  # descriptor/resource uid -> run uid
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._send, name="doc-publisher", daemon=True)
        self._thread.start()

    def __call__(self, name: str, doc: dict) -> None:
        """Queue one document for the stream (``RE.subscribe(publisher)``)."""
        if self.error is not None and self.on_failure == "fail":
            raise BackendUnavailable(f"Document stream {self.stream!r}: {self.error}")
        if name == "start":
            run = doc["uid"]
        else:
            run = doc.get(_PARENT.get(name, "run_start"))
            run = self._runs.get(run, run)
        if name in ("descriptor", "resource", "stream_resource"):
            self._runs[doc["uid"]] = run
        elif name == "stop":
            for key in [k for k, v in self._runs.items() if v == run]:
                del self._runs[key]
        self.seq += 1
        self._idle.clear()
        try:
            self._queue.put_nowait((self.seq, run, name, doc))
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued document was sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        while not (self._queue.empty() and self._idle.is_set()):
            if time.monotonic() > deadline:
                return False
            self._idle.wait(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush, then stop the thread."""
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)

    def _send(self) -> None:
        packer = make_packer()
        while True:  # until close() queues None
            items = [self._queue.get()]
            while len(items) < self.batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            stop = items[-1] is None
            items = [item for item in items if item is not None]
            self._publish(items, packer)
            if self._queue.empty():
                self._idle.set()
            if stop:
                return

    def _publish(self, items: list, packer: msgpack.Packer) -> None:
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        for item in items:
            try:
                data = packer.pack(list(item))
            except Exception:
                packer = make_packer()
                self.dropped += 1
                logger.exception("Document %s %s cannot be packed: not published", *item[2:3])
                continue
            pipe.xadd(self.stream, {b"d": data}, maxlen=self.maxlen, approximate=True)
        try:
            pipe.execute()
        except redis_errors() as err:
            self.dropped += len(items)
            if self.error is None:
                logger.error("Document stream %r: Redis unreachable (%s); documents are only "
                             "stored locally until it answers", self.stream, err)  # fmt: skip
            self.error = err
            return
        if self.error is not None:
            logger.warning("Document stream %r: Redis answers again", self.stream)
            self.error = None
        self.published += len(items)


class ResumableRunStore(RunStore):
    """A RunStore that takes documents again idempotently (:meth:`accept`), and picks up the
    run files it finds already begun (after a restart) where they end."""

    def __init__(self, directory: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._seen: dict[str, set[str]] = {}  # open run uid -> keys of its stored documents
        self._closed: set[str] = set()
        self.duplicates = 0
        self.orphans = 0  # documents of runs whose start this store never had

    def accept(self, run: str | None, name: str, doc: dict) -> bool:
        """Store the document unless it is already stored; whether it was written."""
        with self._lock:
            if run is None or run in self._closed:
                self.duplicates += run is not None
                return False
            if run not in self._runs and not self._adopt(run) and name != "start":
                self.orphans += 1
                return False
            if run in self._closed:
                self.duplicates += 1
                return False
            seen = self._seen.setdefault(run, set())
            key = document_key(name, doc)
            if key in seen:
                self.duplicates += 1
                return False
        self(name, doc)
        with self._lock:
            seen.add(key)
            if name == "stop":
                self._closed.add(run)
                self._seen.pop(run, None)
        return True

    def _adopt(self, run: str) -> bool:
        """(under _lock) Re-open the run's file if it exists: learn what it holds.

        Only a file this store may own: one no other store holds locked (it is being
        written), whose first record is this run's start. Anything else is left as it is
        and the entry refused (:class:`BadEntry`)."""
        path = self.path_for(run)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BadEntry(f"{path} is being written by another store: not touched") from None
            reader = RecordReader(path, strict=False)
            records = list(reader)
            first = records[0] if records else None
            if first is None or first[0] != "start" or first[1].get("uid") != run:
                if reader.end == 0 and os.fstat(fd).st_size == 0:
                    records = []  # empty: created, then its writer died; ours to fill
                else:
                    raise BadEntry(f"{path} is not run {run!r}'s file: not touched")
        except BaseException:
            os.close(fd)
            raise
        if any(name == "stop" for name, _ in records):
            os.close(fd)
            self._closed.add(run)
            return True
        os.ftruncate(fd, reader.end)  # a record torn by a crash goes; it comes again
        os.lseek(fd, reader.end, os.SEEK_SET)
        handle = self._runs[run] = _RunFile(path, fd, run)
        handle.pos = reader.end
        for name, doc in records:
            if name in ("descriptor", "resource", "stream_resource"):
                self._by_key[doc["uid"]] = handle
        self._seen[run] = {document_key(name, doc) for name, doc in records}
        return True


class DocumentConsumer:
    """Read the stream with a consumer group and write each run into a ResumableRunStore.

    ``claim_idle``: entries another consumer of the group left unacknowledged for this many
    seconds are taken over at start (a consumer that died under another name).
    """

    def __init__(
        self,
        url: str | Any,
        store: ResumableRunStore | str | os.PathLike,
        stream: str = DEFAULT_STREAM,
        *,
        group: str = "stores",
        consumer: str = "store-1",
        batch: int = 200,
        block: float = 0.5,
        socket_timeout: float = 1.0,
        claim_idle: float | None = 60.0,
    ) -> None:
        self.store = store if isinstance(store, RunStore) else ResumableRunStore(store)
        self.stream, self.group, self.consumer = stream, group, consumer
        self.batch, self.block = batch, block
        self.redis = connect(url, socket_timeout + block)
        self.written = 0
        self.rejected = 0
        self.rejected_stream = f"{stream}:rejected"
        self._pending = True  # first our own unacknowledged entries
        with contextlib.suppress(Exception):  # BUSYGROUP: it exists
            self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        if claim_idle is not None:
            self.redis.xautoclaim(stream, group, consumer, int(claim_idle * 1000), count=10_000)

    def poll(self) -> int:
        """Read, store and acknowledge one batch; how many entries it handled."""
        entries = []
        if self._pending:  # after a restart: what was delivered to us and never acknowledged
            found = self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=self.batch
            )
            entries = found[0][1] if found else []
            self._pending = bool(entries)
        if not entries:
            found = self.redis.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=self.batch,
                block=int(self.block * 1000),
            )
            entries = found[0][1] if found else []
        ids = []
        for entry_id, fields in entries:
            ids.append(entry_id)
            data = (fields or {}).get(b"d")
            if data is None:
                continue  # trimmed away before it was read
            try:
                run, name, doc = decode_entry(data)
                self.written += self.store.accept(run, name, doc)
            except BadEntry as err:
                self._reject(entry_id, data, err)
        if ids:
            self.redis.xack(self.stream, self.group, *ids)
        return len(ids)

    def _reject(self, entry_id: bytes, data: bytes, err: BadEntry) -> None:
        """Set the entry aside on ``<stream>:rejected`` (best effort) with why."""
        self.rejected += 1
        logger.warning("stream entry %s set aside: %s", entry_id.decode(errors="replace"), err)
        with contextlib.suppress(*redis_errors()):
            self.redis.xadd(
                self.rejected_stream,
                {"id": entry_id, "reason": str(err)[:2000], "d": data},
                maxlen=REJECTED_MAXLEN,
                approximate=True,
            )

    def run(self, stop: threading.Event | None = None, idle_exit: float | None = None) -> None:
        """Poll until ``stop`` is set, or until nothing came for ``idle_exit`` seconds."""
        stop = stop or threading.Event()
        quiet_since = time.monotonic()
        while not stop.is_set():
            if self.poll():
                quiet_since = time.monotonic()
            elif idle_exit is not None and time.monotonic() - quiet_since > idle_exit:
                return

    def close(self) -> None:
        """Close the run files it has open (their locks go with them); what it has not
        acknowledged is delivered again to the next consumer of its name."""
        self.store.close()

    def lag(self) -> int | None:
        """Entries of the stream not yet delivered to the group (Redis >= 7), else None."""
        for info in self.redis.xinfo_groups(self.stream):
            if info.get("name") in (self.group, self.group.encode()):
                return info.get("lag")
        return None
