"""The asset documents of a run: resource, datum, stream_resource and stream_datum.

A device hands them over from ``collect_asset_docs()``; the engine fills in what only it knows
(``run_start``, and in stream datums ``descriptor`` and ``seq_nums``) and checks them as bluesky
does before they are emitted. :meth:`~runengine.documents.RunBundle.emit_assets` is the way in.
"""

from __future__ import annotations

from collections.abc import Callable

from .descriptors import Stream

__all__ = ["RunAssets", "stream_keys"]


def stream_keys(stream: Stream) -> list[str]:
    """The data keys of ``stream`` that stream datums fill ("STREAM:" external ones)."""
    data_keys = stream.descriptor["data_keys"]
    return [key for key, dk in data_keys.items() if dk.get("external") == "STREAM:"]


class RunAssets:
    """The asset documents of one run, emitted through ``emit`` once filled in and checked."""

    __slots__ = ("emit", "run_uid", "stream_resources")

    def __init__(self, run_uid: str, emit: Callable[[str, dict], None]) -> None:
        self.run_uid = run_uid
        self.emit = emit
        self.stream_resources: dict[str, str] = {}  # the data_key of each one emitted, by uid

    def emit_all(
        self,
        docs: list[tuple[str, dict]],
        stream: Stream | None,
        seq: dict[str, int],
        *,
        per_event: bool = True,
    ) -> int:
        """Emit ``docs`` of ``stream``, whose next seq_num is in ``seq``; see ``emit_assets``."""
        width = 0
        covered: set[str] = set()
        for name, doc in docs:
            if name == "resource":
                doc = {**doc, "run_start": self.run_uid}
            elif name == "stream_resource":
                doc = self._stream_resource(doc, stream)
            elif name == "stream_datum":
                doc, width = self._stream_datum(doc, stream, seq, width)
                covered.add(self.stream_resources[doc["stream_resource"]])
            elif name != "datum":
                raise RuntimeError(
                    f"Tried to emit an external asset {name!r}; acceptable external assets are "
                    "'resource', 'stream_resource', 'datum' and 'stream_datum'"
                )
            self.emit(name, doc)
        if covered and stream is not None and covered != set(stream_keys(stream)):
            raise RuntimeError(
                f"Received `stream_datum` for each of the data_keys {sorted(covered)}, expected "
                f"`stream_datum` for each of the data_keys {stream_keys(stream)}."
            )
        if per_event and width > 1:
            raise RuntimeError(
                "Received multiple indices in a `stream_datum` document for one event, during a "
                '`read()` `save()`. `stream_datum` should have indices {"start": n, "stop": n+1} '
                "in a `read()` `save()`."
            )
        return width

    def _stream_resource(self, doc: dict, stream: Stream | None) -> dict:
        uid, data_key = doc["uid"], doc["data_key"]
        if uid in self.stream_resources:
            raise RuntimeError(f"Received `stream_resource` with uid {uid} twice.")
        external = stream_keys(stream) if stream is not None else []
        if data_key not in external:
            raise RuntimeError(
                f"Received a `stream_resource` with data_key {data_key} that is not in the "
                f"descriptor 'STREAM:' data_keys {external}"
            )
        self.stream_resources[uid] = data_key
        return {**doc, "run_start": self.run_uid}

    def _stream_datum(
        self, doc: dict, stream: Stream | None, seq: dict[str, int], width: int
    ) -> tuple[dict, int]:
        """``doc`` with its descriptor and seq_nums, and its indices' width (checked)."""
        from event_model import EventModelValueError  # only stream assets need it

        if doc.get("descriptor"):
            raise RuntimeError(
                f"Received a `stream_datum` {doc['uid']} with a `descriptor` uid already filled "
                f"in, with the value {doc['descriptor']}; this should be an empty string."
            )
        if stream is None:
            raise RuntimeError(f"`stream_datum` {doc['uid']} arrived with no stream declared.")
        if doc["stream_resource"] not in self.stream_resources:
            raise RuntimeError(
                f"Received a `stream_datum` referring to an unknown stream resource "
                f"{doc['stream_resource']}"
            )
        if doc.get("seq_nums") not in (None, {"start": 0, "stop": 0}):
            raise EventModelValueError(
                f"Received `seq_nums` {doc['seq_nums']} in stream {doc['stream_resource']}: "
                "the run engine fills them in; leave them None or {'start': 0, 'stop': 0}."
            )
        indices = doc["indices"]
        new_width = indices["stop"] - indices["start"]
        if width and width != new_width:
            raise EventModelValueError(
                f"Received `indices` {indices} of width {new_width}, unlike the width {width} "
                "of other stream datums in the same collect() or save()."
            )
        first = seq[stream.descriptor["name"]]
        seq_nums = {"start": first, "stop": first + new_width}
        return {**doc, "descriptor": stream.uid, "seq_nums": seq_nums}, new_width
