"""A live terminal view of action graphs: one line per action, as the seed notebook imagined.

It listens to a graph directly (``GraphMonitor(graph)``), or, as a RunEngine subscriber
(``GraphMonitor().attach(RE)``), to the ``action_status`` stream that ``run_graph`` writes in
the open run. Each line shows the action's badge, id, label, state, time in that state and its
exception; the title carries the ``stats()`` line. ``rich`` is imported only when drawing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from runengine.graph import ActionGraph, ActionStatus
from runengine.graph.result import FAILURES, FINISHED

__all__ = ["GraphMonitor"]

_UNICODE = {
    "idle": "⚐",
    "scheduled": "⚑",
    "running": "↺",
    "skipped": "⊘",
    "cancelled": "⊗",
    "done": "☉",
}
_ASCII = {"idle": ".", "scheduled": "o", "running": ">", "skipped": "-", "cancelled": "c"}
_COLOURS = {"running": "cyan", "done": "green", "failed": "red", "timeout": "red"}


class GraphMonitor:
    """Show action states live; ``transitions`` keeps every change received, in order.

    ``live=False`` keeps it quiet (``text()`` still renders); ``console`` is a rich Console.
    """

    def __init__(
        self,
        graph: ActionGraph | None = None,
        *,
        refresh: float = 0.5,
        unicode: bool = True,
        live: bool = True,
        console: Any = None,
        stream: str = "action_status",
    ) -> None:
        self.refresh = refresh
        self.unicode = unicode
        self.stream = stream
        self.rows: dict[tuple[str, int], dict] = {}
        self.transitions: list[tuple[int, str, str]] = []
        self._descriptors: dict[str, None] = {}
        self._lock = threading.Lock()
        self._live_wanted = live
        self._console = console
        self._live: Any = None
        self._graph = graph
        self._tokens: list[tuple[Any, int]] = []
        if graph is not None:
            graph.subscribe(self.on_status)

    # ---- inputs ------------------------------------------------------------------------------
    def on_status(self, event: ActionStatus, graph: str = "") -> None:
        """A graph listener: one state change of one action."""
        exc = "" if event.exc is None else repr(event.exc)
        self._update(graph, event.action_id, event.label, event.state, event.t, exc)

    def __call__(self, name: str, doc: dict) -> None:
        """A RunEngine subscriber: follows the ``action_status`` stream of each run."""
        if name == "descriptor" and doc.get("name") == self.stream:
            self._descriptors[doc["uid"]] = None
        elif name == "event" and doc.get("descriptor") in self._descriptors:
            data = doc["data"]
            self._update(
                data.get("graph", ""),
                data["action_id"],
                data["label"],
                data["state"],
                doc["time"],
                data.get("exception", ""),
            )
        elif name == "stop":
            self.stop()

    def attach(self, RE: Any) -> GraphMonitor:
        """Subscribe to ``RE``'s documents; returns self."""
        self._tokens.append((RE, RE.subscribe(self)))
        return self

    def detach(self) -> None:
        for RE, token in self._tokens:
            RE.unsubscribe(token)
        self._tokens.clear()
        if self._graph is not None:
            self._graph.unsubscribe(self.on_status)
        self.stop()

    def _update(self, graph: str, action_id: int, label: str, state: str, t: float, exc: str):
        with self._lock:
            self.transitions.append((action_id, label, state))
            self.rows[(graph, action_id)] = {
                "id": action_id,
                "label": label,
                "state": state,
                "since": t,
                "exc": exc,
            }
        if self._live_wanted:
            self._draw()

    # ---- output ------------------------------------------------------------------------------
    def stats(self) -> str:
        """``"2D + 3R + 4I = 9"`` over the actions seen."""
        states = [row["state"] for row in self.rows.values()]
        ended = sum(1 for s in states if s in FINISHED)
        running = sum(1 for s in states if s in ("scheduled", "running"))
        return f"{ended}D + {running}R + {len(states) - ended - running}I = {len(states)}"

    def _mark(self, state: str) -> str:
        if state in FAILURES:
            return "★" if self.unicode else ":("
        table = _UNICODE if self.unicode else _ASCII
        return table.get(state, "x")

    def lines(self, now: float | None = None) -> list[str]:
        """The plain-text lines: ``mark id label state (seconds) exception``."""
        now = time.time() if now is None else now
        with self._lock:
            rows = sorted(self.rows.items())
        out = []
        for (_, _), row in rows:
            age = max(0.0, now - row["since"])
            text = f"{self._mark(row['state'])} {row['id']:>3} {row['label']:<24} "
            text += f"{row['state']:<9} {age:6.1f}s"
            if row["exc"]:
                text += f"  {row['exc']}"
            out.append(text)
        return out

    def text(self) -> str:
        return "\n".join([self.stats(), *self.lines()])

    def render(self) -> Any:
        """A rich Table of the actions."""
        from rich.table import Table

        table = Table(title=self.stats(), expand=False)
        for column in ("", "id", "action", "state", "for", "exception"):
            table.add_column(column)
        now = time.time()
        with self._lock:
            rows = sorted(self.rows.items())
        for _, row in rows:
            colour = _COLOURS.get(row["state"], "white")
            table.add_row(
                self._mark(row["state"]),
                str(row["id"]),
                row["label"],
                f"[{colour}]{row['state']}[/{colour}]",
                f"{max(0.0, now - row['since']):.1f}s",
                row["exc"],
            )
        return table

    def _draw(self) -> None:
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                get_renderable=self.render,
                console=self._console,
                refresh_per_second=max(0.1, 1 / self.refresh),
                transient=False,
            )
            self._live.start()  # then redrawn by rich's own refresh thread

    def stop(self) -> None:
        """Stop drawing (the last picture stays on screen)."""
        live, self._live = self._live, None
        if live is not None:
            live.refresh()
            live.stop()


def listener(monitor: GraphMonitor, graph_label: str = "") -> Callable[[ActionStatus], None]:
    """A graph listener feeding ``monitor`` under ``graph_label``."""
    return lambda event: monitor.on_status(event, graph_label)
