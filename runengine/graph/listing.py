"""Text views of an action graph: badges, ``list()``, ``debrief()``, ``stats()``, DOT export.

A badge is 7 characters: critical, outcome (2), space, lifecycle, space, forever. Unicode:
``⚠`` critical, ``★`` raised, ``☉`` returned; lifecycle ``⚐`` idle, ``⚑`` scheduled, ``↺``
running, ``☓`` ended, ``⊘`` skipped, ``⊗`` cancelled; ``∞`` forever. ASCII: ``!``, ``:(``,
``:)``; ``.``, ``o``, ``>``, ``x``, ``-``, ``c``; ``8``.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from .result import CANCELLED, DONE, FAILURES, FINISHED, IDLE, RUNNING, SCHEDULED, SKIPPED

if TYPE_CHECKING:
    from .action import Action
    from .graph import ActionGraph

__all__ = ["badge", "debrief", "export", "list_", "list_safe", "stats", "to_dot"]

_LIFE = {
    IDLE: ("⚐", "."),
    SCHEDULED: ("⚑", "o"),
    RUNNING: ("↺", ">"),
    SKIPPED: ("⊘", "-"),
    CANCELLED: ("⊗", "c"),
}
_ENDED = ("☓", "x")


def badge(action: Action, unicode: bool = True) -> str:
    """The 7-character status badge of ``action``."""
    pick = 0 if unicode else 1
    crit = ("⚠", "!")[pick] if action.critical else " "
    if action.state in FAILURES:
        outcome = ("★ ", ":(")[pick]
    elif action.state == DONE:
        outcome = ("☉ ", ":)")[pick]
    else:
        outcome = "  "
    life = _LIFE.get(action.state, _ENDED)[pick]
    forever = ("∞", "8")[pick] if action.forever else " "
    return f"{crit}{outcome} {life} {forever}"


def _line(action: Action, graph: ActionGraph, unicode: bool, depth: int, details: bool) -> str:
    reqs = sorted(r.id or 0 for r in graph._requirements(action))
    text = f"{'> ' * depth}{badge(action, unicode)} {action.id or 0:>2} {action.text_label}"
    if reqs:
        text += " - requires {" + ", ".join(map(str, reqs)) + "}"
    if details and action.timeout is not None:
        text += f" (timeout {action.timeout}s)"
    if details and action.state in FAILURES:
        text += f" -> {action.raised_exception()!r}"
    elif details and action.state == DONE and not hasattr(action, "actions"):
        text += f" -> {action._value!r}"
    return text


def _lines(graph: ActionGraph, order: list, unicode: bool, depth: int, details: bool) -> list:
    lines = []
    for action in order:
        lines.append(_line(action, graph, unicode, depth, details))
        if hasattr(action, "actions"):
            lines.extend(_lines(action, _safe_order(action), unicode, depth + 1, details))
    return lines


def _safe_order(graph: ActionGraph) -> list:
    from .result import GraphCycleError

    try:
        return graph.topological_order()
    except GraphCycleError:
        return list(graph.actions)


def list_(self: ActionGraph, details: bool = False, unicode: bool = True) -> str:
    """One line per action in topological order (nested graphs indented with ``>``)."""
    self._number()
    return "\n".join(_lines(self, self.topological_order(), unicode, 0, details))


def list_safe(self: ActionGraph, details: bool = False, unicode: bool = True) -> str:
    """Like :func:`list_`, and works with cycles (insertion order where no order exists)."""
    self._number()
    return "\n".join(_lines(self, _safe_order(self), unicode, 0, details))


def stats(self: ActionGraph) -> str:
    """``"2D + 3R + 4I = 9"``: ended, scheduled or running, idle (top-level actions)."""
    ended = sum(1 for a in self.actions if a.state in FINISHED)
    running = sum(1 for a in self.actions if a.state in (SCHEDULED, RUNNING))
    idle = len(self.actions) - ended - running
    return f"{ended}D + {running}R + {idle}I = {len(self.actions)}"


def debrief(self: ActionGraph, details: bool = False, unicode: bool = True) -> str:
    """Why it ended, the listing, then the critical and non-critical failures.

    ``details``: full tracebacks instead of one line per exception.
    """
    lines = [f"{self.text_label}: {self.why()} - {stats(self)}", list_safe(self, False, unicode)]
    for critical in (True, False):
        failed = [
            a for a in self.iterate() if a.raised_exception() is not None and a.critical is critical
        ]
        if not failed:
            continue
        kind = "CRITICAL" if critical else "non-critical"
        lines.append(f"===== {len(failed)} {kind} action(s) raised an exception =====")
        for action in failed:
            exc = action.raised_exception()
            lines.append(f"{action.id or 0:>2} {action.text_label} ({action.state}):")
            if details:
                lines.append("".join(traceback.format_exception(exc)).rstrip())
            else:
                lines.append(f"   {type(exc).__name__}: {exc}")
    for action, exc in self.shutdown_errors.items():
        lines.append(f"shutdown of {action.text_label}: {type(exc).__name__}: {exc}")
    return "\n".join(lines)


# ---- graphviz ---------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _node_attrs(action: Action) -> str:
    attrs = [f"label={_quote(f'{action.id}: {action.text_label}')}"]
    style = ["rounded"]
    if action.forever:
        style.append("dashed")
    attrs.append(f"style={_quote(','.join(style))}")
    if action.critical:
        attrs += ["color=red", "penwidth=2"]
    return ", ".join(attrs)


def _entries(graph: ActionGraph) -> list:
    """Atomic nodes an edge into ``graph`` points at (its entry actions, recursively)."""
    out = []
    for action in graph.actions:
        if not graph._requirements(action):
            out.extend(_entries(action) if hasattr(action, "actions") else [action])
    return out


def _exits(graph: ActionGraph) -> list:
    out = []
    required = {r for a in graph.actions for r in graph._requirements(a)}
    for action in graph.actions:
        if action not in required and not action.forever:
            out.extend(_exits(action) if hasattr(action, "actions") else [action])
    return out


def _dot_body(graph: ActionGraph, indent: str, lines: list) -> None:
    for action in _safe_order(graph):
        if hasattr(action, "actions"):
            lines.append(f"{indent}subgraph cluster_{action.id} {{")
            inner = indent + "  "
            lines.append(f"{inner}label={_quote(f'{action.id}: {action.text_label}')};")
            style = "dashed" if action.forever else "solid"
            lines.append(f"{inner}style={style};")
            if action.critical:
                lines.append(f"{inner}color=red; penwidth=2;")
            _dot_body(action, inner, lines)
            lines.append(f"{indent}}}")
        else:
            lines.append(f"{indent}{action.id} [{_node_attrs(action)}];")
    for action in _safe_order(graph):
        for req in graph._requirements(action):
            tails = _exits(req) if hasattr(req, "actions") else [req]
            heads = _entries(action) if hasattr(action, "actions") else [action]
            extra = []
            if hasattr(req, "actions"):
                extra.append(f"ltail=cluster_{req.id}")
            if hasattr(action, "actions"):
                extra.append(f"lhead=cluster_{action.id}")
            attrs = f" [{', '.join(extra)}]" if extra else ""
            if tails and heads:
                lines.append(f"{indent}{tails[0].id} -> {heads[0].id}{attrs};")


def to_dot(self: ActionGraph) -> str:
    """The graph in graphviz DOT: critical red with penwidth 2, forever dashed, actions rounded,
    nested graphs as sharp-cornered clusters; edges join atomic nodes (``compound=true``)."""
    self._number()
    lines = [f"digraph {_quote(self.text_label)} {{", "  compound=true;"]
    lines.append("  graph [fontname=Arial];")
    lines.append('  node [shape=box, fontname=Arial, style="rounded"];')
    _dot_body(self, "  ", lines)
    lines.append("}")
    return "\n".join(lines) + "\n"


def export(self: ActionGraph, path: str) -> str:
    """Write the DOT text to ``path`` (``.dot``/``.gv``); other suffixes need graphviz's ``dot``."""
    import subprocess

    text = to_dot(self)
    suffix = path.rsplit(".", 1)[-1].lower()
    if suffix in ("dot", "gv"):
        with open(path, "w") as out:
            out.write(text)
        return path
    subprocess.run(["dot", f"-T{suffix}", "-o", path], input=text, text=True, check=True)
    return path
