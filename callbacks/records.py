"""Reading run files written by :class:`~runengine.callbacks.store.RunStore`.

A run file is a sequence of msgpack ``[name, doc]`` records: one start first, one stop last.
A file cut inside its last record (the writer died mid-write) reads up to its last whole
record; what follows a stop is not the run's and is left unread (``trailing`` counts it);
anything else that is not a whole record, or a second start, is corruption, reported with the
file and the byte offset.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import msgpack_numpy

from .store import StoreError

__all__ = ["CorruptRunError", "RecordReader", "read_start", "read_stop"]

_STOP_MARK = b"\x92\xa4stop"  # a fixarray of 2 starting with the fixstr "stop"
_TAIL_WINDOWS = (4096, 65536, 1 << 20)
_CHUNK = 1 << 16
_MAX_BUFFER = 2**31 - 1


class CorruptRunError(StoreError, ValueError):
    """A run file holds something that is not a whole ``[name, doc]`` record."""

    def __init__(self, path: str | os.PathLike, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"Corrupt run file {self.path} at byte {offset}: {reason}", path)


def _decode(obj: dict) -> Any:
    # msgpack-numpy's decoder, except that pickled (object) arrays stay undecoded.
    if b"nd" in obj:
        if obj.get(b"kind") == b"O":
            return obj
        return msgpack_numpy.decode(obj)
    if b"complex" in obj:
        return msgpack_numpy.decode(obj)
    return obj


def _unpacker(file: Any = None) -> msgpack.Unpacker:
    return msgpack.Unpacker(
        file, object_hook=_decode, raw=False, max_buffer_size=_MAX_BUFFER, read_size=_CHUNK
    )


def _check(record: Any, path: Path, offset: int) -> tuple[str, dict]:
    if (
        type(record) is not list
        or len(record) != 2
        or type(record[0]) is not str
        or type(record[1]) is not dict
    ):
        raise CorruptRunError(path, offset, f"not a [name, document] record: {record!r:.80}")
    return record[0], record[1]


class RecordReader:
    """Iterate over the ``(name, doc)`` records of one run file, in order.

    After iteration: ``torn`` (the file ends inside a record), ``end`` (the offset after
    the last whole record), ``trailing`` (bytes after the stop record, left unread) and
    ``error`` (the corruption met, in lenient mode).
    ``strict=False`` turns corruption into a warning and an early end. ``offset``: begin at
    this record boundary (an ``end`` of an earlier reader), to read what was appended since.
    """

    def __init__(self, path: str | os.PathLike, strict: bool = True, *, offset: int = 0) -> None:
        self.path = Path(path)
        self.strict = strict
        self.offset = offset
        self.torn = False
        self.end = 0
        self.trailing = 0
        self.error: CorruptRunError | None = None

    def __iter__(self) -> Iterator[tuple[str, dict]]:
        path = self.path
        base = offset = self.offset
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            file.seek(base)
            unpacker = _unpacker(file)
            unpack = unpacker.unpack

            def tell() -> int:
                return base + unpacker.tell()

            while True:
                try:
                    record = unpack()
                except msgpack.OutOfData:
                    self.end = offset
                    self.torn = offset < size
                    return
                except Exception as err:
                    self._corrupt(CorruptRunError(path, offset, f"{type(err).__name__}: {err}"))
                    return
                if type(record) is list and len(record) == 2 and type(record[1]) is dict:
                    name = record[0]
                    if name == "start" and offset > 0:
                        self._corrupt(CorruptRunError(path, offset, "a second start record"))
                        return
                    if type(name) is str:
                        offset = tell()
                        yield name, record[1]
                        if name == "stop":  # the run's last document: the rest is not its
                            self.end = offset
                            self.trailing = size - offset
                            return
                        continue
                try:
                    _check(record, path, offset)
                except CorruptRunError as err:
                    self._corrupt(err)
                    return

    def _corrupt(self, err: CorruptRunError) -> None:
        self.end = err.offset
        self.error = err
        if self.strict:
            raise err
        warnings.warn(f"{err}; reading up to there", stacklevel=3)


def read_start(path: str | os.PathLike) -> dict | None:
    """The start document of a run file; ``None`` while the file holds no whole record.

    Reads only the first record. Raises :class:`CorruptRunError` if it is not a start.
    """
    path = Path(path)
    unpacker = _unpacker()
    with open(path, "rb") as file:
        while True:
            chunk = file.read(_CHUNK)
            if not chunk:
                return None
            unpacker.feed(chunk)
            try:
                record = unpacker.unpack()
                break
            except msgpack.OutOfData:
                continue
            except Exception as err:
                raise CorruptRunError(path, 0, f"{type(err).__name__}: {err}") from err
    name, doc = _check(record, path, 0)
    if name != "start" or "uid" not in doc:
        raise CorruptRunError(path, 0, f"the first record is {name!r}, not a start document")
    return doc


def read_stop(path: str | os.PathLike, run_uid: str) -> dict | None:
    """The stop document of the run, else ``None``.

    Reads the tail of the file only: the stop record is found by its leading bytes, the last
    whole one that refers to ``run_uid`` (bytes appended after it do not hide it).
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        for window in _TAIL_WINDOWS:
            start = max(0, size - window)
            file.seek(start)
            tail = file.read(size - start)
            at = len(tail)
            while (at := tail.rfind(_STOP_MARK, 0, at)) >= 0:
                unpacker = _unpacker()
                unpacker.feed(tail[at:])
                try:
                    record = unpacker.unpack()  # whatever follows it (garbage) is not the run's
                except Exception:
                    continue
                if (
                    type(record) is list
                    and len(record) == 2
                    and type(record[1]) is dict
                    and record[1].get("run_start") == run_uid
                ):
                    return record[1]
            if start == 0:
                return None
    return None
