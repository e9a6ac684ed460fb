"""The embedded default store: one append-only msgpack file per run.

Each file, ``<start uid>.msgpack``, holds ``[name, doc]`` records framed like
suitcase-msgpack (msgpack with msgpack-numpy), every document type included. A record
reaches the OS in one ``write()`` as soon as the document arrives, so a crashed process
leaves every whole document it had emitted; an ``fsync`` at stop and every ``fsync_every``
documents or ``fsync_interval`` seconds survives a machine crash too.

    store = RunStore()                 # ~/.local/share/runengine/runs (or $XDG_DATA_HOME)
    store.subscribe(RE)                # first among the subscribers: stored before shown
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import msgpack_numpy
import numpy as np

from runengine.errors import RunEngineError

__all__ = [
    "IMAGES_DIR",
    "RunStore",
    "StoreError",
    "StoreWarning",
    "default_directory",
    "pack_record",
    "safe_uid",
]

SUFFIX = ".msgpack"
#: The store's folder for detector files (``runengine shell`` and ``run`` write images there).
IMAGES_DIR = "images"
_POLICIES = ("abort", "continue")


class StoreError(RunEngineError, OSError):
    """A document could not be stored; names the file, the document and the cause.

    The root of the run store's errors (a RunEngineError and an OSError).
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, cause=None):
        code = getattr(cause, "errno", None)
        super().__init__(code, message)
        self.filename = None if path is None else os.fspath(path)
        self.cause = cause
        self.message = message

    def __str__(self) -> str:
        return self.message


class StoreWarning(UserWarning):
    """A document was not stored and the store was told to continue."""


#: What a run's uid may look like to name its file: no separator, no leading dot.
_SAFE_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def safe_uid(uid: Any) -> str:
    """``uid`` if it can name a file in the store, else :class:`StoreError` naming it:
    a run file's name comes from its uid, so ``../x`` or ``/etc/x`` must never get there."""
    if not isinstance(uid, str) or not _SAFE_UID.fullmatch(uid):
        raise StoreError(
            f"A run uid must be letters, digits, '.', '_' or '-' (not starting with '.'), "
            f"at most 200 characters, to name its file; not {uid!r}"
        )
    return uid


def default_directory() -> Path:
    """``$XDG_DATA_HOME/runengine/runs``, or ``~/.local/share/runengine/runs``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "runengine" / "runs"


def _encode(obj: Any) -> Any:
    # Object arrays would be pickled by msgpack-numpy (and unpickled on read): store lists.
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "O":
        return obj.tolist()
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    return msgpack_numpy.encode(obj)


def make_packer() -> msgpack.Packer:
    """A packer for ``[name, doc]`` records: msgpack + msgpack-numpy, bin type for bytes."""
    return msgpack.Packer(default=_encode, use_bin_type=True)


def pack_record(name: str, doc: dict) -> bytes:
    """One framed record, as written to a run file."""
    return make_packer().pack((name, doc))


class _RunFile:
    """An open run file: its descriptor, the offset of the last whole record, sync state."""

    __slots__ = ("broken", "failures", "fd", "last_sync", "path", "pos", "uid", "unsynced")

    def __init__(self, path: Path, fd: int | None, uid: str) -> None:
        self.path = path
        self.fd = fd
        self.uid = uid
        self.pos = 0
        self.unsynced = 0
        self.last_sync = time.monotonic()
        self.failures = 0
        self.broken = False  # a torn record could not be cut away: write nothing more

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            if written <= 0:
                raise OSError(errno.EIO, "write() wrote nothing")
            view = view[written:]
        self.pos += len(data)

    def cut_back(self) -> None:
        """After a failed write: drop a partial record so that later ones stay readable."""
        try:
            os.ftruncate(self.fd, self.pos)
            os.lseek(self.fd, self.pos, os.SEEK_SET)
        except OSError:
            self.broken = True

    def sync(self) -> None:
        os.fsync(self.fd)
        self.unsynced = 0
        self.last_sync = time.monotonic()


class RunStore:
    """Subscriber that stores every document of every run, one file per run.

    Parameters
    ----------
    directory:
        Where run files go; created if missing. Default: :func:`default_directory`.
    fsync_every, fsync_interval:
        ``fsync`` a run file after this many documents, or when a document arrives this many
        seconds after the last sync; ``None`` or 0 turns either off. Always at stop.
    on_error:
        ``"abort"``: a failed write raises :class:`StoreError` into the engine, which ends the
        run as failed. ``"continue"``: warn (:class:`StoreWarning`) once per run, count the
        document in :attr:`failures` and go on. Either way the file keeps only whole records.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        fsync_every: int | None = 1000,
        fsync_interval: float | None = 1.0,
        on_error: str = "abort",
    ) -> None:
        if on_error not in _POLICIES:
            raise ValueError(f"on_error must be one of {_POLICIES}, not {on_error!r}")
        self.directory = Path(default_directory() if directory is None else directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise StoreError(f"The run store path {self.directory} is not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"Cannot create the run store directory {self.directory}: {err}",
                self.directory,
                err,
            ) from err
        self.fsync_every = fsync_every or 0
        self.fsync_interval = fsync_interval
        self.on_error = on_error
        self.failures = 0  # documents not stored (on_error="continue")
        self.ignored = 0  # documents of no run this store saw start
        self._packer = make_packer()
        self._lock = threading.Lock()
        self._runs: dict[str, _RunFile] = {}  # run start uid -> file
        self._by_key: dict[str, _RunFile] = {}  # descriptor / resource uid -> file
        self._handlers: dict[str, Callable[[dict], _RunFile | None]] = {
            "start": self._open,
            "descriptor": self._keyed_by_run,
            "resource": self._keyed_by_run,
            "stream_resource": self._keyed_by_run,
            "event": self._by_descriptor,
            "event_page": self._by_descriptor,
            "stream_datum": self._by_stream_resource,
            "datum": self._by_resource,
            "datum_page": self._by_resource,
            "stop": self._by_run,
        }

    # ---- the subscriber ----------------------------------------------------------------
    def __call__(self, name: str, doc: dict) -> None:
        """Store one document (``RE.subscribe(store)``)."""
        with self._lock:
            try:
                data = self._packer.pack((name, doc))
            except Exception as err:
                self._packer = make_packer()  # a failed pack may leave the buffer dirty
                run = self._route(name, doc, open_file=False)
                self._give_up(name, doc, run, err, "cannot be serialized")
                return
            run = self._route(name, doc)
            if run is None:
                return
            if run.broken:
                self._give_up(name, doc, run, None, "was not stored after an earlier error")
                return
            try:
                run.append(data)
            except OSError as err:
                run.cut_back()
                self._give_up(name, doc, run, err, "could not be written")
                return
            run.unsynced += 1
            try:
                if name == "stop":
                    self._close(run)
                elif (self.fsync_every and run.unsynced >= self.fsync_every) or (
                    self.fsync_interval is not None
                    and time.monotonic() - run.last_sync >= self.fsync_interval
                ):
                    run.sync()
            except OSError as err:
                self._failed(name, doc, run, err, "was written but could not be synced")

    def _give_up(self, name: str, doc: dict, run: _RunFile | None, err, what: str) -> None:
        try:
            self._failed(name, doc, run, err, what)
        finally:
            if name == "stop" and run is not None:
                self._close(run, sync=False)

    def subscribe(self, RE: Any) -> int:
        """Subscribe to ``RE`` ahead of every earlier subscriber; return the token.

        Being first, the store has each document before a display callback can raise or lag.
        """
        token = RE.subscribe(self)
        dispatcher = getattr(RE, "dispatcher", None)
        private = set(getattr(dispatcher, "_token_mapping", {}).get(token, ()))
        registry = getattr(dispatcher, "cb_registry", None)
        for callbacks in getattr(registry, "callbacks", {}).values():
            for cid in private & set(callbacks):
                mine = callbacks.pop(cid)
                rest = list(callbacks.items())
                callbacks.clear()
                callbacks[cid] = mine
                callbacks.update(rest)
        return token

    def path_for(self, uid: str) -> Path:
        """The file of the run whose start document has this uid (a :func:`safe_uid`)."""
        return self.directory / f"{safe_uid(uid)}{SUFFIX}"

    @property
    def open_runs(self) -> list[str]:
        """The uids of the runs started and not yet stopped."""
        return list(self._runs)

    def close(self) -> None:
        """Sync and close the files of runs left open (their stop never came)."""
        with self._lock:
            for run in list(self._runs.values()):
                self._close(run)

    # ---- routing -------------------------------------------------------------------------
    def _route(self, name: str, doc: dict, open_file: bool = True) -> _RunFile | None:
        handler = self._handlers.get(name)
        if handler is None:
            self.ignored += 1
            return None
        if name == "start" and not open_file:
            return self._open(doc, create=False)
        return handler(doc)

    def _open(self, doc: dict, create: bool = True) -> _RunFile | None:
        uid = doc.get("uid")
        try:
            path = self.path_for(uid)  # type: ignore[arg-type]
        except StoreError as err:
            self._failed("start", doc, None, err, "could not be stored")
            return None
        run = self._runs[uid] = _RunFile(path, None, uid)
        run.broken = True  # until the file exists: later documents count as not stored
        if not create:
            return run
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            run.fd = os.open(path, flags, 0o666)  # rw for whom the umask allows, never x
            fcntl.flock(run.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while open: see _adopt
        except OSError as err:
            self._failed("start", doc, run, err, "could not be stored: cannot create the file")
            return None
        run.broken = False
        return run

    def _keyed_by_run(self, doc: dict) -> _RunFile | None:
        run = self._runs.get(doc.get("run_start"))
        if run is None and "run_start" not in doc and len(self._runs) == 1:
            run = next(iter(self._runs.values()))  # resources may omit run_start
        if run is None:
            self.ignored += 1
            return None
        self._by_key[doc["uid"]] = run
        return run

    def _lookup(self, key: Any) -> _RunFile | None:
        run = self._by_key.get(key)
        if run is None:
            self.ignored += 1
        return run

    def _by_descriptor(self, doc: dict) -> _RunFile | None:
        return self._lookup(doc.get("descriptor"))

    def _by_stream_resource(self, doc: dict) -> _RunFile | None:
        return self._lookup(doc.get("stream_resource") or doc.get("descriptor"))

    def _by_resource(self, doc: dict) -> _RunFile | None:
        return self._lookup(doc.get("resource"))

    def _by_run(self, doc: dict) -> _RunFile | None:
        run = self._runs.get(doc.get("run_start"))
        if run is None:
            self.ignored += 1
        return run

    def _close(self, run: _RunFile, sync: bool = True) -> None:
        self._runs.pop(run.uid, None)
        for key in [key for key, value in self._by_key.items() if value is run]:
            del self._by_key[key]
        try:
            if sync and run.fd is not None and not run.broken:
                run.sync()
        finally:
            if run.fd is not None:
                os.close(run.fd)
                run.fd = None
            if run.failures and self.on_error == "continue":
                warnings.warn(
                    f"{run.failures} document(s) of run {run.uid} were not stored in {run.path}",
                    StoreWarning,
                    stacklevel=4,
                )

    # ---- failures ------------------------------------------------------------------------
    def _failed(
        self,
        name: str,
        doc: dict,
        run: _RunFile | None,
        err: BaseException | None,
        what: str,
    ) -> None:
        path = run.path if run is not None else self.directory
        cause = f": {err}" if err is not None else ""
        uid = doc.get("uid", "?") if isinstance(doc, dict) else "?"
        message = f"Run store: the {name!r} document {uid} {what} ({path}){cause}"
        self.failures += 1
        first = run is None or run.failures == 0
        if run is not None:
            run.failures += 1
        if self.on_error == "abort" and first:
            raise StoreError(message, path, err) from err
        if first:
            warnings.warn(message, StoreWarning, stacklevel=4)
