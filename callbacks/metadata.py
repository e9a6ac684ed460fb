"""``RE.md`` kept in the run store, so scan_id and the rest carry over from one process to the next.

    RE = RunEngine(StoredMetadata(store.directory))   # what `runengine shell` and `run` do
    RE.scan_id_source = RE.md.next_scan_id           # scan_ids unique across processes

bluesky users keep ``RE.md`` in a ``bluesky.utils.PersistentDict``; that one is for one process
at a time and a crash mid-write can leave a torn file. This one is one msgpack file in the store
directory, replaced atomically (written beside it, fsynced, renamed) at each change, under a
lock file shared by every process of the store, and re-read whenever another process changed
it. ``next_scan_id`` takes the next number under that lock, so two sessions on one store never
give two runs one scan_id. Values are what the store can keep (msgpack, numpy arrays included).
As with bluesky's PersistentDict, a value changed in place (``md["sample"]["x"] = 1``) is kept
at the next assignment; assign it again to keep it now.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import msgpack

from .records import _decode
from .store import StoreError, _encode

__all__ = ["METADATA_FILE", "StoredMetadata"]

#: The file in the store directory: a dot file, so never a run's (a uid never starts with '.').
METADATA_FILE = ".metadata"


class StoredMetadata(MutableMapping):
    """A dict of metadata persisted in ``directory`` (see the module)."""

    def __init__(self, directory: str | os.PathLike, initial: dict | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / METADATA_FILE
        self._lock_path = self.directory / (METADATA_FILE + ".lock")
        self._data: dict = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, inode) of what _data holds
        if initial:
            with self._locked():
                self._write({**initial, **self._data})

    # ---- the mapping ---------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._current()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._locked():
            if key in self._data and _same(self._data[key], value):
                return  # as stored already (open_run sets the scan_id next_scan_id took)
            self._write({**self._data, key: value})

    def __delitem__(self, key: str) -> None:
        with self._locked():
            data = dict(self._data)
            del data[key]
            self._write(data)

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._current()))

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return f"StoredMetadata({str(self.directory)!r}, {self._current()!r})"

    def next_scan_id(self, md: Any = None) -> int:
        """The next scan_id, taken under the store's lock (a RunEngine ``scan_id_source``)."""
        with self._locked():
            scan_id = int(self._data.get("scan_id", 0)) + 1
            self._write({**self._data, "scan_id": scan_id})
        return scan_id

    # ---- the file ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's metadata lock, with what another process wrote read in."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._current()  # what another process wrote since, read in
            yield
        finally:
            os.close(fd)  # releases the lock

    def _current(self) -> dict:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return self._data
        if (stat.st_mtime_ns, stat.st_ino) != self._seen:
            self._read()
        return self._data

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as file:
                stat = os.fstat(file.fileno())
                raw = file.read()
        except FileNotFoundError:
            return
        try:
            data = msgpack.unpackb(raw, object_hook=_decode, raw=False)
        except Exception as err:
            raise StoreError(f"The stored metadata {self.path} cannot be read: {err}") from err
        if not isinstance(data, dict):
            raise StoreError(f"The stored metadata {self.path} is not a dict")
        self._data = data
        self._seen = (stat.st_mtime_ns, stat.st_ino)

    def _write(self, data: dict) -> None:
        """Replace the file with ``data``; only then is it what this mapping holds."""
        try:
            raw = msgpack.packb(data, default=_encode, use_bin_type=True)
        except Exception as err:
            raise StoreError(f"Metadata cannot be stored in {self.path}: {err}") from err
        temporary = self.path.with_name(f".{METADATA_FILE}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        stat = os.stat(self.path)
        self._data = data
        self._seen = (stat.st_mtime_ns, stat.st_ino)


def _same(stored: Any, value: Any) -> bool:
    if stored is value:
        return True
    try:
        return type(stored) is type(value) and bool(stored == value)
    except Exception:  # arrays compare element-wise: count them as changed
        return False
