"""Live and after-the-fact plots with matplotlib, headless-safe.

Without a display (no ``DISPLAY``/``WAYLAND_DISPLAY`` on Linux, or a non-interactive backend
chosen) figures are plain ``matplotlib.figure.Figure`` objects on an Agg canvas: pyplot is never
imported, nothing opens a window, PNG files are written. With a display, :class:`LivePlot` makes
a pyplot figure and redraws it as events arrive.

``LivePlot(y, x=None, save=path)`` plots ``y`` (one field or several) against ``x`` (default:
``seq_num``) and saves the figure at each stop; ``path`` may use the start document's fields,
e.g. ``"scan_{scan_id}.png"``. ``plot_run(documents, y, x=None, path=...)`` does the same from a
finished run: any iterable of ``(name, doc)`` or an object with ``documents()``. ``peaks=True``
marks the peak statistics of bluesky's ``PeakStats`` (then ``LivePlot.peak_stats``).
Against ``seq_num`` the x ticks are whole numbers; a single x value (a one-point ``count``) gets
one tick at it, with the limits around it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .buffered import SafeCallback

__all__ = ["LivePlot", "headless", "plot_run"]

_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def headless() -> bool:
    """True when no window can be shown: figures then use the Agg canvas."""
    import matplotlib

    backend = (matplotlib.rcParams._get_backend_or_none() or "").lower()
    if backend in _NON_INTERACTIVE:
        return True
    if sys.platform.startswith("linux"):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


def _new_axes(show: bool) -> Any:
    if show:
        import matplotlib.pyplot as plt

        return plt.figure().add_subplot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class LivePlot(SafeCallback):
    """Plot ``y`` against ``x`` (default ``seq_num``), one line per field and run.

    A field missing from the stream, or values that are not numbers, give a
    :class:`~runengine.callbacks.CallbackWarning` naming the field; the run goes on. ``ax``
    draws into existing axes; ``show`` forces (True) or forbids (False) a pyplot window, which
    is redrawn at most every ``redraw_interval`` seconds and at stop.
    """

    def __init__(
        self,
        y: str | Sequence[str],
        x: str | None = None,
        *,
        stream: str = "primary",
        ax: Any = None,
        save: str | os.PathLike | None = None,
        show: bool | None = None,
        peaks: bool = False,
        title: str | None = None,
        redraw_interval: float = 0.2,
        **line_kwargs: Any,
    ) -> None:
        super().__init__()
        self.y = [y] if isinstance(y, str) else list(y)
        if not self.y:
            raise ValueError("LivePlot needs at least one y field")
        self.x = x
        self.stream = stream
        self.save = save
        self.peaks = peaks and x is not None
        self.title = title
        self.redraw_interval = redraw_interval
        self.line_kwargs = {"marker": "o", **line_kwargs}
        self._show = (not headless()) if show is None else show
        self.ax = ax if ax is not None else _new_axes(self._show)
        self.figure = self.ax.figure
        self._default_formatter = self.ax.xaxis.get_major_formatter()
        self.saved: list[Path] = []  # files written
        self.missing: list[str] = []  # fields not in the last run's stream
        self.peak_stats: Any = None
        self._start: dict = {}
        self._descriptors: set[str] = set()
        self._lines: dict[str, Any] = {}
        self._data: dict[str, tuple[list[float], list[float]]] = {}
        self._peaks: Any = None
        self._stream_seen = False
        self._drawn = 0.0

    def start(self, doc: dict) -> None:
        self._start = doc
        self._descriptors = set()
        self._lines = {}
        self._data = {}
        self.missing = []
        self._stream_seen = False
        self._peaks = None
        if self.peaks:
            from bluesky.callbacks.fitting import PeakStats

            self._peaks = PeakStats(self.x, self.y[0])
            self._peaks("start", doc)
        label = f"{doc.get('plan_name', 'run')} #{doc.get('scan_id', '?')}"
        self.ax.set_title(self.title or label)
        self.ax.set_xlabel(self.x or "seq_num")
        if len(self.y) == 1:
            self.ax.set_ylabel(self.y[0])

    def descriptor(self, doc: dict) -> None:
        if doc.get("name", "primary") != self.stream:
            return
        self._descriptors.add(doc["uid"])
        if self._peaks is not None:
            self._peaks("descriptor", doc)
        if self._stream_seen:
            return
        self._stream_seen = True
        keys = doc.get("data_keys", {})
        wanted = self.y + ([self.x] if self.x else [])
        self.missing = [f for f in wanted if f not in keys]
        if self.missing:
            self.warn(
                f"LivePlot: no field {', '.join(map(repr, self.missing))} in stream "
                f"{self.stream!r}; its fields are {sorted(keys)}"
            )
        if self.x in self.missing:
            return
        scan = f"#{self._start.get('scan_id', '?')}"
        for field in self.y:
            if field in keys:
                label = scan if len(self.y) == 1 else f"{field} {scan}"
                (self._lines[field],) = self.ax.plot([], [], label=label, **self.line_kwargs)
                self._data[field] = ([], [])
                units = keys[field].get("units")
                if units and len(self.y) == 1:
                    self.ax.set_ylabel(f"{field} [{units}]")
        if self.x and keys[self.x].get("units"):
            self.ax.set_xlabel(f"{self.x} [{keys[self.x]['units']}]")

    def event(self, doc: dict) -> None:
        if doc.get("descriptor") not in self._descriptors or not self._lines:
            return
        if self._peaks is not None:
            self._peaks("event", doc)
        data = doc.get("data", {})
        x = _number(doc.get("seq_num") if self.x is None else data.get(self.x))
        if x is None:
            self.warn(f"LivePlot: x field {self.x!r} is not a number: {data.get(self.x)!r}")
            return
        for field, line in self._lines.items():
            y = _number(data.get(field))
            if y is None:
                self.warn(f"LivePlot: y field {field!r} is not a number: {data.get(field)!r}")
                continue
            xs, ys = self._data[field]
            xs.append(x)
            ys.append(y)
            line.set_data(xs, ys)
        if self._show and time.monotonic() - self._drawn >= self.redraw_interval:
            self._redraw()

    def _redraw(self) -> None:
        """Rescale and draw; O(points), so at most every ``redraw_interval`` and at stop."""
        self.ax.relim()
        self.ax.autoscale_view()
        self._x_ticks()
        if self._show:
            self.figure.canvas.draw_idle()
        self._drawn = time.monotonic()

    def _x_ticks(self) -> None:
        """seq_num: whole-number ticks; one x value: one tick at it, the limits around it."""
        from matplotlib.ticker import AutoLocator, FixedLocator, MaxNLocator

        xs = {float(x) for line in self.ax.get_lines() for x in line.get_xdata()}
        if len(xs) == 1:
            (x,) = xs
            half = 1.0 if self.x is None else max(abs(x) * 0.05, 0.5)
            self.ax.set_xlim(x - half, x + half, auto=None)  # the next redraw rescales
            self.ax.xaxis.set_major_locator(FixedLocator([x]))
            self.ax.xaxis.set_major_formatter("{x:.6g}")
        elif isinstance(self.ax.xaxis.get_major_locator(), FixedLocator):  # more points now
            self.ax.xaxis.set_major_locator(AutoLocator() if self.x else MaxNLocator(integer=True))
            self.ax.xaxis.set_major_formatter(self._default_formatter)
        elif self.x is None:
            self.ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    def stop(self, doc: dict) -> None:
        if self._peaks is not None:
            self._peaks("stop", doc)
            self.peak_stats = self._peaks
            self._mark_peaks()
        if len(self._lines) > 1 or len(self.ax.get_lines()) > len(self._lines):
            self.ax.legend(loc="best", fontsize="small")
        self._redraw()
        if self.save is not None:
            if not self._lines:
                self.warn(f"LivePlot: nothing to plot for {self.y}; {self.save} not written")
                return
            path = Path(os.fspath(self.save).format_map(_Fields(self._start)))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.figure.savefig(path)
            self.saved.append(path)

    def _mark_peaks(self) -> None:
        stats = self.peak_stats
        cen = getattr(stats, "cen", None)
        if cen is None:
            return
        self.ax.axvline(cen, color="gray", linestyle="--", label=f"cen {round(cen, 9):.4g}")
        if stats.max is not None:
            self.ax.plot(
                *stats.max, "r*", markersize=12, label=f"max at {round(float(stats.max[0]), 9):.4g}"
            )


class _Fields(dict):
    """Start-document fields for a file name; unknown ones stay as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _documents(run: Any) -> Iterable[tuple[str, dict]]:
    documents = getattr(run, "documents", None)
    return documents() if callable(documents) else run


def plot_run(
    run: Any,
    y: str | Sequence[str],
    x: str | None = None,
    path: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Any:
    """Plot a finished run (``(name, doc)`` pairs, or anything with ``documents()``).

    Writes ``path`` (PNG by its suffix) if given and returns the matplotlib Figure. Raises
    KeyError naming the fields the run does not have, ValueError if it has no such stream.
    """
    kwargs.setdefault("show", False)
    plot = LivePlot(y, x, save=None, **kwargs)
    for name, doc in _documents(run):
        plot(name, doc)
        if plot.errors:
            raise RuntimeError(f"plot_run failed on a {name!r} document (see the log)")
    if not plot._stream_seen:
        raise ValueError(f"The run has no {plot.stream!r} stream to plot")
    if plot.missing:
        raise KeyError(f"The {plot.stream!r} stream has no field {', '.join(plot.missing)}")
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        plot.figure.savefig(path)
    return plot.figure
