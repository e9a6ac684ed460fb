"""Sphinx directive ``state-diagram``: the engine's state machine, drawn from its own table.

Everything comes from :data:`runengine.states.TABLE` at build time: a diagram (inline SVG,
drawn with matplotlib) of the transitions it allows, and the table itself, one row per
``(state, event)`` with the next state and the message the engine prints. Nothing is written
here, so the page cannot drift from the code.
"""

from __future__ import annotations

import io
import math
import re

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

ANY = "any other state"

# Where each state sits in the drawing (x, y); a state not listed goes on a circle.
POSITIONS = {
    "idle": (-3.0, 0.0),
    "running": (0.0, 0.0),
    "suspending": (-1.4, 1.7),
    "pausing": (1.6, 1.7),
    "paused": (3.3, 0.0),
    "halting": (-1.5, -1.9),
    "stopping": (0.4, -1.9),
    "aborting": (2.0, -1.9),
    "panicked": (3.3, 3.0),
    ANY: (0.9, 3.0),
}

COLOURS = {
    "idle": "#d9ead3",
    "running": "#cfe2f3",
    "paused": "#fff2cc",
    "panicked": "#f4cccc",
}


def edges(transitions: dict) -> list[tuple[str, str]]:
    """The arrows to draw; ``panicked``, when every other state may reach it, gets one arrow
    from ANY."""
    states = list(transitions)
    common = {
        target
        for target in ("panicked",)
        if target in transitions and all(target in transitions[s] for s in states if s != target)
    }
    drawn = [(ANY, target) for target in states if target in common]
    for old in states:
        drawn += [(old, new) for new in states if new in transitions[old] and new not in common]
    return drawn


def _positions(names):
    pos = {}
    loose = [s for s in names if s not in POSITIONS]
    for i, name in enumerate(loose):
        angle = 2 * math.pi * i / max(1, len(loose))
        pos[name] = (4.0 * math.cos(angle), 4.0 * math.sin(angle))
    pos.update({s: POSITIONS[s] for s in names if s in POSITIONS})
    return pos


def render_svg(transitions: dict) -> str:
    """The state diagram as an SVG element (no XML prologue), for inline HTML."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    arrows = edges(transitions)
    names = list(transitions) + ([ANY] if any(a == ANY for a, _ in arrows) else [])
    pos = _positions(names)
    pairs = set(arrows)
    fig = Figure(figsize=(8.0, 5.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-3.8, 4.1)
    ax.set_ylim(-2.5, 3.5)
    ax.set_axis_off()
    for old, new in arrows:
        back = (new, old) in pairs
        # Long arrows that would cross the middle bow out more.
        (x0, y0), (x1, y1) = pos[old], pos[new]
        if old == ANY:
            rad = 0.0
        elif back:
            rad = 0.2
        else:
            rad = 0.35 if abs(x1 - x0) > 4 and abs(y1 - y0) < 0.5 else 0.12
        special = new == "panicked"
        ax.add_patch(
            FancyArrowPatch(
                pos[old],
                pos[new],
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>",
                mutation_scale=12,
                shrinkA=20,
                shrinkB=20,
                lw=1.2,
                color="#cc0000" if special else "#444444",
            )
        )
    for name in names:
        x, y = pos[name]
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=11,
            family="sans-serif",
            style="italic" if name == ANY else "normal",
            bbox={
                "boxstyle": "round,pad=0.45",
                "fc": "white" if name == ANY else COLOURS.get(name, "#eeeeee"),
                "ec": "#999999" if name == ANY else "#333333",
                "ls": "--" if name == ANY else "-",
            },
        )
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "runengine"}):
        fig.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    svg = svg[svg.index("<svg") :]
    # Scale with the page: drop the fixed size, keep the viewBox.
    return re.sub(
        r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
        r'<svg\1 style="max-width:100%;height:auto"',
        svg,
        count=1,
    )


class StateDiagram(SphinxDirective):
    """``state-diagram``: the diagram and the rule table of ``runengine.states``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from runengine.states import EVENTS, STATES, TABLE, TRANSITIONS

        svg = render_svg(TRANSITIONS)
        figure = nodes.raw("", f'<div class="state-diagram">{svg}</div>', format="html")
        return [figure, self._table(STATES, TABLE, EVENTS)]

    def _table(self, states, table_rules, events) -> nodes.table:
        table = nodes.table(classes=["state-transitions"])
        group = nodes.tgroup(cols=4)
        table += group
        for width in (12, 40, 14, 34):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += self._row(["in", "when", "goes to", "and prints"])
        body = nodes.tbody()
        group += body
        order = {name: i for i, name in enumerate(states)}
        event_order = {name: i for i, name in enumerate(events)}
        for (old, event), rule in sorted(
            table_rules.items(), key=lambda item: (order[item[0][0]], event_order[item[0][1]])
        ):
            if rule.effect == "nothing" and rule.next == old:
                continue  # accepted and changes nothing: not worth a row
            new = "the state beneath the panic" if rule.next == "<beneath>" else rule.next
            when = f"{events[event]} ({event})"
            body += self._row([old, when, "stays" if new == old else new, rule.message])
        return table

    def _row(self, cells: list[str]) -> nodes.row:
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            para = nodes.paragraph()
            for i, part in enumerate(text.split("`")):
                para += nodes.literal(part, part) if i % 2 else nodes.Text(part)
            entry += para
            row += entry
        return row


def setup(app):
    app.add_directive("state-diagram", StateDiagram)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
