"""RichTable: a live table of a run, printed row by row with ``rich``.

Columns are picked as bluesky's ``BestEffortCallback`` picks them (the start document's
``hints['dimensions']`` or ``motors``, then the descriptor's hinted fields), headers carry the
units and numbers the precision of the descriptor's ``data_keys``. Pauses, resumes and
suspensions (the ``interruptions`` stream, recorded when ``RE.record_interruptions`` is True) and
skipped events (e.g. dropped by :class:`~runengine.callbacks.Buffered`) show as notes between
rows. On a terminal the header and notes are styled; elsewhere the output is plain text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

from rich.console import Console
from rich.text import Text

from .buffered import SafeCallback

__all__ = ["RichTable", "dimension_fields", "hinted_fields"]

DEFAULT_PRECISION = 3
MIN_WIDTH = 10


def hinted_fields(descriptor: dict) -> list[str]:
    """The fields an object hints at (all of its fields if it gives no hint), in object order."""
    hints = descriptor.get("hints") or {}
    fields: list[str] = []
    for obj, keys in (descriptor.get("object_keys") or {}).items():
        hint = hints.get(obj)
        fields.extend(hint["fields"] if hint and "fields" in hint else keys)
    return fields


def dimension_fields(start: dict, stream: str = "primary") -> list[str]:
    """The independent variables of ``stream``: ``hints['dimensions']``, else the motors."""
    dimensions = (start.get("hints") or {}).get("dimensions")
    if dimensions is None:
        return list(start.get("motors") or ())
    return [f for fields, s in dimensions if s == stream for f in fields if f != "time"]


def _scalar(data_key: dict) -> bool:
    return not data_key.get("shape") and data_key.get("dtype") != "array"


class RichTable(SafeCallback):
    """Print one row per event of ``stream``.

    ``fields`` picks the columns (default: the hinted ones, see the module doc); a field that is
    not in the stream is named in a :class:`~runengine.callbacks.CallbackWarning` and left out.
    Output goes to ``console`` or a ``rich.console.Console`` on ``file`` (default stdout).
    """

    def __init__(
        self,
        fields: Sequence[str] | None = None,
        *,
        stream: str = "primary",
        console: Console | None = None,
        file: IO[str] | None = None,
        min_width: int = MIN_WIDTH,
        default_precision: int = DEFAULT_PRECISION,
    ) -> None:
        super().__init__()
        self.fields = None if fields is None else list(fields)
        self.stream = stream
        self.console = console if console is not None else Console(file=file, highlight=False)
        self.min_width = min_width
        self.default_precision = default_precision
        self.rows = 0  # rows printed in the current (or last) run
        self._start: dict = {}
        self._columns: list[tuple[str, str, int, dict]] = []  # field, header, width, key
        self._descriptors: dict[str, str] = {}  # uid -> stream name
        self._last_seq = 0
        self._t0 = 0.0

    # ---- output ------------------------------------------------------------------------
    def _line(self, text: str, style: str | None = None) -> None:
        console = self.console
        if console.is_terminal or console.record:
            console.print(Text(text, style=style or ""), soft_wrap=True)
        else:  # plain text: rich would only add its overhead
            console.file.write(text + "\n")

    def _border(self) -> str:
        return "+" + "+".join("-" * (width + 2) for _, _, width, _ in self._columns) + "+"

    def _row(self, cells: list[str]) -> str:
        padded = (
            cell.rjust(width) for cell, (_, _, width, _) in zip(cells, self._columns, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    def _note(self, text: str) -> None:
        if not self._columns:
            self._line(f"-- {text} --", "yellow")
            return
        inner = len(self._border()) - 4
        self._line("| " + f"-- {text} --".center(inner) + " |", "yellow")

    def format_value(self, value: Any, data_key: dict) -> str:
        """A cell: numbers at the data key's precision, the rest as text."""
        if isinstance(value, bool) or value is None:
            return str(value)
        if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
            return str(int(value))
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        precision = data_key.get("precision")
        if not isinstance(precision, int) or precision < 0:
            precision = self.default_precision
        return f"{number:.{precision}f}"

    # ---- documents ---------------------------------------------------------------------
    def start(self, doc: dict) -> None:
        self._start = doc
        self._columns = []
        self._descriptors = {}
        self._last_seq = 0
        self.rows = 0
        self._t0 = doc.get("time", time.time())
        plan = doc.get("plan_name", "")
        self._line(
            f"Run {doc.get('scan_id', '?')} {plan} · uid {doc['uid'][:8]} · "
            f"{_clock(self._t0, seconds=True)}",
            "bold",
        )

    def descriptor(self, doc: dict) -> None:
        name = doc.get("name", "primary")
        self._descriptors[doc["uid"]] = name
        if name != self.stream or self._columns:
            return
        data_keys = doc.get("data_keys", {})
        if self.fields is None:
            wanted = dimension_fields(self._start, name)
            wanted += [f for f in hinted_fields(doc) if f not in wanted]
        else:
            wanted = self.fields
            missing = [f for f in wanted if f not in data_keys]
            if missing:
                self.warn(
                    f"RichTable: no field {', '.join(map(repr, missing))} in stream {name!r}; "
                    f"its fields are {sorted(data_keys)}"
                )
        fields = [f for f in wanted if f in data_keys and _scalar(data_keys[f])]
        columns = [("seq_num", {}), ("time", {})] + [(f, data_keys[f]) for f in fields]
        for field, key in columns:
            header = f"{field} [{key['units']}]" if key.get("units") else field
            self._columns.append((field, header, max(self.min_width, len(header)), key))
        self._line(self._border())
        self._line(self._row([header for _, header, _, _ in self._columns]), "bold")
        self._line(self._border())

    def event(self, doc: dict) -> None:
        stream = self._descriptors.get(doc.get("descriptor", ""))
        if stream == "interruptions":
            self._interruption(doc)
            return
        if stream != self.stream or not self._columns:
            return
        seq = doc.get("seq_num", self._last_seq + 1)
        if seq > self._last_seq + 1:
            skipped = seq - self._last_seq - 1
            self._note(f"{skipped} event{'s' if skipped > 1 else ''} not shown")
        self._last_seq = seq
        data = doc.get("data", {})
        cells = [str(seq), _clock(doc.get("time", time.time()))]
        for field, _, _, key in self._columns[2:]:
            cells.append(self.format_value(data[field], key) if field in data else "")
        self._line(self._row(cells))
        self.rows += 1

    def _interruption(self, doc: dict) -> None:
        data = doc.get("data", {})
        what = str(data.get("interruption", "interruption"))
        label = {"pause": "paused", "resume": "resumed"}.get(what, f"suspended: {what}")
        who = data.get("requested_by")
        reason = data.get("reason")
        extra = "".join(
            f", {text}" for text in (who and f"requested by {who}", reason and str(reason)) if text
        )
        self._note(f"{label}{extra} at {_clock(doc.get('time', time.time()), seconds=True)}")

    def stop(self, doc: dict) -> None:
        if self._columns:
            self._line(self._border())
        status = doc.get("exit_status", "?")
        reason = f" ({doc['reason']})" if doc.get("reason") else ""
        elapsed = doc.get("time", time.time()) - self._t0
        style = "green" if status == "success" else "bold red"
        self._line(
            f"Run {self._start.get('scan_id', '?')} {status}{reason}: "
            f"{self.rows} rows in {elapsed:.1f} s",
            style,
        )
        self._columns = []


def _clock(timestamp: float, seconds: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp)
    return moment.strftime("%H:%M:%S") if seconds else moment.strftime("%H:%M:%S.%f")[:-5]
