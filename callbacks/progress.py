"""ProgressBar: a tqdm progress bar per run, with an ETA for plans of known length.

The length comes from the start document: ``num_points``, else ``num_intervals + 1`` (as
bluesky's plans set them); without either the bar is a counter without ETA. It counts the
events of one stream (``primary``); events of other streams are counted beside it.

Time is taken from the documents, not from the clock of the callback, so the ETA stays right
when the callback runs late (behind :class:`~runengine.callbacks.Buffered`). Pauses are taken
out of the estimate: elapsed time and rate count *active* time only. A pause is known exactly
from the ``interruptions`` stream (``RE.record_interruptions = True``); without it, a gap
between two points longer than ``pause_factor`` times the median of the recent intervals (and
at least ``min_pause`` seconds) counts as a pause and is replaced by that median. The rate is
the number of recent points over their active time, so one slow point moves the ETA little.
At stop the bar closes with the exit status, the wall time and the time spent paused.
"""

from __future__ import annotations

import collections
import statistics
import sys
from typing import IO, Any

from tqdm import tqdm

from .buffered import SafeCallback

__all__ = ["AboveTheBar", "Pace", "ProgressBar", "run_length"]


def run_length(start: dict) -> int | None:
    """The number of points a plan announces: ``num_points``, else ``num_intervals + 1``."""
    points = start.get("num_points")
    if isinstance(points, int) and points >= 0:
        return points
    intervals = start.get("num_intervals")
    if isinstance(intervals, int) and intervals >= 0:
        return intervals + 1
    return None


class Pace:
    """Active time and rate of a stream of points, from document timestamps."""

    def __init__(
        self, t0: float, window: int = 50, pause_factor: float = 10.0, min_pause: float = 2.0
    ) -> None:
        self.t0 = self.last = t0
        self.active = 0.0  # seconds, pauses excluded
        self.paused = 0.0  # seconds taken out
        self.points = 0
        self.pause_factor = pause_factor
        self.min_pause = min_pause
        self._intervals: collections.deque[float] = collections.deque(maxlen=window)
        self._paused_at: float | None = None

    def pause(self, t: float) -> None:
        """A known pause began at ``t``."""
        if self._paused_at is None:
            self._paused_at = t

    def resume(self, t: float) -> None:
        """A known pause ended at ``t``: its length is not active time."""
        if self._paused_at is None:
            return
        gap = max(0.0, t - max(self._paused_at, self.last))
        self._paused_at = None
        self.paused += gap
        self.last += gap

    def point(self, t: float, n: int = 1) -> None:
        """``n`` points arrived at ``t``."""
        dt = max(0.0, t - self.last)
        if self._paused_at is not None:  # a pause without its resume: the point says it ended
            self.resume(t)
            dt = max(0.0, t - self.last)
        typical = statistics.median(self._intervals) if len(self._intervals) >= 5 else None
        if typical is not None and dt > max(self.min_pause, self.pause_factor * typical * n):
            self.paused += dt - typical * n
            dt = typical * n
        self.last = t
        self.active += dt
        self.points += n
        self._intervals.extend([dt / n] * min(n, self._intervals.maxlen or n))

    @property
    def rate(self) -> float | None:
        """Points per active second over the recent window (None before the first interval)."""
        span = sum(self._intervals)
        return len(self._intervals) / span if span > 0 else None

    def eta(self, total: int | None) -> float | None:
        """Seconds to go for ``total`` points, or None if unknown."""
        rate = self.rate
        if total is None or rate is None:
            return None
        return max(0, total - self.points) / rate


class _Bar(tqdm):
    """tqdm that shows the active time and the pace's rate instead of its own clock's.

    It leaves the last two columns of the terminal free: a ``^C`` the terminal echoes after
    the bar then stays on the bar's line (instead of wrapping onto the next one), where the
    next status line (``runengine.console.announce``) overwrites it.
    """

    pace: Pace | None = None

    @property
    def format_dict(self) -> dict[str, Any]:
        d = super().format_dict
        if self.pace is not None:
            d["elapsed"] = self.pace.active
            d["rate"] = self.pace.rate
        if d.get("ncols"):
            d["ncols"] = max(10, d["ncols"] - 2)
        return d


class ProgressBar(SafeCallback):
    """A progress bar per run on ``file`` (default stderr); ``stream`` is the one counted.

    ``bar`` is the tqdm of the current (or last) run, ``pace`` its :class:`Pace`; ``total`` the
    announced length; ``eta`` the seconds to go (None if unknown). Extra keyword arguments go to
    ``tqdm``.
    """

    def __init__(
        self,
        *,
        stream: str = "primary",
        file: IO[str] | None = None,
        pause_factor: float = 10.0,
        min_pause: float = 2.0,
        **tqdm_kwargs: Any,
    ) -> None:
        super().__init__()
        self.stream = stream
        self.file = file
        self.pause_factor = pause_factor
        self.min_pause = min_pause
        self.tqdm_kwargs = tqdm_kwargs
        self.bar: _Bar | None = None
        self.pace: Pace | None = None
        self.total: int | None = None
        self.exit_status: str | None = None
        self.others: dict[str, int] = {}
        self._descriptors: dict[str, str] = {}
        self._label = ""

    @property
    def eta(self) -> float | None:
        return None if self.pace is None else self.pace.eta(self.total)

    def start(self, doc: dict) -> None:
        if self.bar is not None:
            self.bar.close()
        self.total = run_length(doc)
        self.exit_status = None
        self.others = {}
        self._descriptors = {}
        self.pace = Pace(
            doc.get("time", 0.0), pause_factor=self.pause_factor, min_pause=self.min_pause
        )
        self._label = f"{doc.get('plan_name', 'run')} #{doc.get('scan_id', '?')}"
        options = {"unit": "pt", "dynamic_ncols": True, "mininterval": 0.1, "leave": True}
        options.update(self.tqdm_kwargs)
        self.bar = _Bar(
            total=self.total,
            desc=self._label,
            file=self.file if self.file is not None else sys.stderr,
            **options,
        )
        self.bar.pace = self.pace

    def descriptor(self, doc: dict) -> None:
        self._descriptors[doc["uid"]] = doc.get("name", "primary")

    def event(self, doc: dict) -> None:
        if self.bar is None or self.pace is None:
            return
        stream = self._descriptors.get(doc.get("descriptor", ""), "")
        t = doc.get("time", self.pace.last)
        if stream == self.stream:
            self.pace.point(t)
            self.bar.update(1)
        elif stream == "interruptions":
            what = doc.get("data", {}).get("interruption")
            if what == "resume":
                self.pace.resume(t)
                self.bar.set_description_str(self._label, refresh=False)
            else:
                self.pace.pause(t)
                state = "paused" if what == "pause" else "suspended"
                self.bar.set_description_str(f"{self._label} [{state}]")
        else:
            self.others[stream] = self.others.get(stream, 0) + 1
            counts = ", ".join(f"{name}={n}" for name, n in self.others.items())
            self.bar.set_postfix_str(counts, refresh=False)

    def stop(self, doc: dict) -> None:
        if self.bar is None or self.pace is None:
            return
        self.exit_status = doc.get("exit_status", "?")
        wall = doc.get("time", self.pace.last) - self.pace.t0
        parts = [self.exit_status]
        if doc.get("reason"):
            parts.append(repr(doc["reason"]))
        parts.append(f"{wall:.1f} s")
        if self.pace.paused >= 0.05:
            parts.append(f"{self.pace.paused:.1f} s paused")
        parts.extend(f"{name}={n}" for name, n in self.others.items())
        self.bar.set_postfix_str(", ".join(parts), refresh=False)
        self.bar.close()


class AboveTheBar:
    """A text file whose whole lines print above any progress bar on the same terminal.

    Give it to a live table (``RichTable(file=AboveTheBar())``) beside a :class:`ProgressBar`:
    the bar is cleared, the lines written, the bar redrawn, so the two never interleave.
    """

    def __init__(self, file: IO[str] | None = None) -> None:
        self.file = file if file is not None else sys.stdout
        self._partial = ""

    def write(self, text: str) -> int:
        lines, _, self._partial = (self._partial + text).rpartition("\n")
        if lines or _:
            with tqdm.external_write_mode(file=self.file):
                self.file.write(lines + "\n")
                self.file.flush()
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.write("\n")

    def isatty(self) -> bool:
        return self.file.isatty()

    def fileno(self) -> int:
        return self.file.fileno()
