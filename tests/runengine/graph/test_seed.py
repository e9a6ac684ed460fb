"""The seed notebook (seeds/004), replayed: every code cell, as written, with its own delays.

``seed_notebook.json`` is the seed itself: the notebook (nbformat 4) kept verbatim, named
``.json`` so that linters and formatters leave its cells as the user wrote them. Each code
cell runs in one namespace, as in Jupyter, and what it prints and the value of its last
expression are compared with the outputs the notebook recorded. One line changes, to its
documented equivalent: the notebook's ``from action import Action`` / ``from engine import
Engine`` (its own modules) becomes ``from runengine.graph import Action, Engine``. Then its TODO
list, item by item, on our API.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import re
import time
from pathlib import Path

import pytest

from runengine.callbacks.graph_monitor import GraphMonitor
from runengine.graph import (
    CANCELLED,
    DONE,
    FAILED,
    TIMEOUT,
    Action,
    Engine,
    GraphFailed,
)

NOTEBOOK = Path(__file__).with_name("seed_notebook.json")
EQUIVALENTS = {
    "from action import Action\nfrom engine import Engine": (
        "from runengine.graph import Action, Engine"
    ),
}
#: Cells whose output the notebook printed in the order of a set (ours: insertion order).
UNORDERED = ("for action in e2.actions",)
#: How long a cell may take: (at least, less than), in seconds, after the notebook's delays.
DURATIONS = {
    "e = Engine(a1, a2, a3)": (2.0, 4.0),  # the longest (2 s), not the sum (4.5 s)
    "e2 = Engine(b1, b2, b3)": (2.5, 4.0),  # b1 (1 s) then b3 (1.5 s), b2 (2 s) beside: not 4.5 s
}


def code_cells() -> list[tuple[str, list[str]]]:
    """``(source, expected output lines)`` of each code cell of the notebook."""
    cells = []
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        expected: list[str] = []
        for output in cell["outputs"]:
            if output["output_type"] == "stream":
                expected += "".join(output["text"]).splitlines()
            elif output["output_type"] == "execute_result":
                expected += "".join(output["data"]["text/plain"]).splitlines()
        cells.append(("".join(cell["source"]), expected))
    return cells


def run_cell(source: str, namespace: dict) -> list[str]:
    """Run ``source`` as Jupyter does: what it prints, then the repr of its last expression
    (unless None)."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(tree, "<cell>", "exec"), namespace)
        value = None
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
    lines = out.getvalue().splitlines()
    if value is not None:
        lines.append(repr(value))
    return lines


def _without_times(lines: list[str]) -> list[str]:
    return [re.sub(r"\b\d\d-\d\d\b", "MM-SS", line) for line in lines]


def test_the_notebook_cells_give_the_notebook_outputs():
    cells = code_cells()
    assert len(cells) == 10  # every code cell of the seed
    namespace: dict = {"__name__": "seed_notebook"}
    for source, expected in cells:
        source = EQUIVALENTS.get(source, source)
        start = time.monotonic()
        got = run_cell(source, namespace)
        took = time.monotonic() - start
        got, expected = _without_times(got), _without_times(expected)
        if source.startswith(UNORDERED):
            got, expected = sorted(got), sorted(expected)
        assert got == expected, source
        for head, (least, most) in DURATIONS.items():
            if source.startswith(head):
                assert least <= took < most, source
    # What the notebook left: its actions, done, with their results.
    assert namespace["b3"].result() == 1500.0 and namespace["a2"].result() == 2000


def test_customizing_the_action_class():
    # The notebook: "specialize AbstractAction; its corun() coroutine is what runs". Ours: an
    # Action subclass gives a bound coroutine function as its body.
    class Countdown(Action):
        def __init__(self, n, **kwargs):
            self.n = n
            super().__init__(self.corun, **kwargs)

        async def corun(self):
            await asyncio.sleep(0.01 * self.n)
            return f"{self.n}... liftoff"

    c = Countdown(3, label="countdown")
    assert Engine(c).orchestrate() is True
    assert c.result() == "3... liftoff"
    assert Engine(c).orchestrate() is True  # a factory: it runs again


# ---- the notebook's TODO list --------------------------------------------------------------
async def mycoro(timeout):
    """The notebook's coroutine, quiet."""
    await asyncio.sleep(timeout)
    return 1000 * timeout


def test_todo_orchestrate_accepts_a_timeout():
    quick, slow = Action(mycoro(0.01), label="quick"), Action(mycoro(30), label="slow")
    e = Engine(quick, slow, critical=False)
    start = time.monotonic()
    assert e.orchestrate(timeout=0.2) is False
    assert 0.2 <= time.monotonic() - start < 10  # not the slow one's 30 s
    assert e.why() == "TIMED OUT after 0.2s"
    assert (quick.state, slow.state) == (DONE, TIMEOUT)
    assert e.last_result.timed_out == [slow]


def test_todo_never_ending_actions():
    ticks: list = []

    async def monitor():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    watch = Action(monitor, label="watch", forever=True)
    e = Engine(watch, Action(mycoro(0.1), label="work"))
    assert e.orchestrate() is True
    assert watch.state == CANCELLED and len(ticks) > 2


def test_todo_shutdown_one_ssh_connection_used_by_several_actions():
    class SshConnection:
        def __init__(self) -> None:
            self.open, self.closes, self.closing = True, 0, False

        async def run(self, command):
            assert self.open, f"{command}: the connection is closed already"
            await asyncio.sleep(0.02)
            return command

        async def close(self):
            assert not self.closing, "closed from two places at the same time"
            self.closing = True
            await asyncio.sleep(0.02)
            self.open, self.closing = False, False
            self.closes += 1

    ssh = SshConnection()
    actions = [
        Action(ssh.run, command, label=command, shutdown=ssh.close)
        for command in ("uname", "uptime", "df")
    ]
    actions[2].requires(actions[0])
    e = Engine(*actions)
    assert e.orchestrate() is True
    assert ssh.closes == 1 and not ssh.open
    # Once per run, also when a user fails and the others are cancelled.
    ssh.open = True

    async def broken():
        raise OSError("lost the link")

    failing = Engine(
        Action(ssh.run, "uname", shutdown=ssh.close),
        Action(broken, label="broken", shutdown=ssh.close),
        Action(mycoro(5), label="slow", shutdown=ssh.close),
    )
    with pytest.raises(GraphFailed):
        failing.orchestrate()
    assert ssh.closes == 2


def test_todo_exceptions():
    async def boom():
        raise ValueError("boom")

    optional = Action(boom, label="optional", critical=False)
    e = Engine(optional, Action(mycoro(0.01), label="fine"))
    assert e.orchestrate() is False
    assert optional.state == FAILED and isinstance(optional.raised_exception(), ValueError)
    with pytest.raises(GraphFailed) as info:
        Engine(Action(boom, label="critical")).orchestrate()
    assert isinstance(info.value.exception, ValueError)
    assert "1 CRITICAL action(s) raised an exception" in info.value.result.graph.debrief()


def test_todo_monitoring():
    first = Action(mycoro(0.01), label="first")
    e = Engine(first, Action(mycoro(0.02), label="last", requires=first))
    monitor = GraphMonitor(e, live=False)
    assert e.orchestrate() is True
    assert [state for _, label, state in monitor.transitions if label == "last"] == [
        "scheduled",
        "running",
        "done",
    ]
    assert e.list() == "⚠☉  ☓    1 first\n⚠☉  ☓    2 last - requires {1}"
