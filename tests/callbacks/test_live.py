"""Live tables: bluesky's LiveTable on our engine, and our RichTable."""

from __future__ import annotations

import io
import re

import bluesky.plan_stubs as bps
import pytest
from bluesky.callbacks import LiveTable
from bluesky.plans import count, scan
from bluesky.utils import Msg
from ophyd.sim import det, det1, det2, motor
from rich.console import Console

from runengine import RunEngine
from runengine.callbacks import CallbackWarning, RichTable
from tests.callbacks.interrupted import paused_and_resumed

ROW = re.compile(r"^\|\s+(\d+) \|")


@pytest.fixture(scope="module")
def RE():
    engine = RunEngine({}, context_managers=[], call_returns_result=True)
    yield engine
    engine.record_interruptions = False


def rows(text):
    """The table's data rows as lists of cells."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if ROW.match(line)
    ]


def test_bluesky_live_table_on_our_engine(RE, capsys):
    result = RE(scan([det], motor, -1, 1, 3), LiveTable(["motor", "det"]))
    assert result.exit_status == "success"
    out = capsys.readouterr().out
    table = rows(out)
    assert [row[0] for row in table] == ["1", "2", "3"]
    assert [row[2:] for row in table] == [
        ["-1.000", "0.607"],
        ["0.000", "1.000"],
        ["1.000", "0.607"],
    ]
    assert "scan num: 1" in out or "scan num:" in out


def test_rich_table_picks_hinted_columns_and_prints_each_row(RE):
    out = io.StringIO()
    table = RichTable(file=out)
    result = RE(scan([det1, det2], motor, -1, 1, 5), table)
    assert result.exit_status == "success"
    text = out.getvalue()
    header = next(line for line in text.splitlines() if "seq_num" in line)
    assert header.split() == [
        "|",
        "seq_num",
        "|",
        "time",
        "|",
        "motor",
        "|",
        "det1",
        "|",
        "det2",
        "|",
    ]
    body = rows(text)
    assert [row[0] for row in body] == ["1", "2", "3", "4", "5"]
    assert [row[2] for row in body] == ["-1.000", "-0.500", "0.000", "0.500", "1.000"]
    assert all(re.fullmatch(r"\d+\.\d{3}", row[3]) for row in body)
    assert "\x1b[" not in text  # plain text: not a terminal
    assert table.rows == 5 and table.errors == 0
    assert re.search(r"Run \d+ success: 5 rows", text)


def test_rich_table_styles_a_terminal(RE):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard")
    RE(count([det], num=2), RichTable(console=console))
    assert "\x1b[" in out.getvalue()
    assert len(rows(re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()))) == 2


def test_units_and_precision_come_from_the_descriptor():
    out = io.StringIO()
    table = RichTable(file=out)
    data_keys = {
        "x": {"dtype": "number", "shape": [], "source": "s", "units": "mm", "precision": 1},
        "n": {"dtype": "integer", "shape": [], "source": "s"},
        "label": {"dtype": "string", "shape": [], "source": "s"},
        "image": {"dtype": "array", "shape": [4, 4], "source": "s"},
    }
    table("start", {"uid": "r1", "time": 0.0, "scan_id": 9, "plan_name": "p", "motors": ["x"]})
    table(
        "descriptor",
        {
            "uid": "d1",
            "run_start": "r1",
            "name": "primary",
            "time": 0.0,
            "data_keys": data_keys,
            "object_keys": {"dev": list(data_keys)},
        },
    )
    table(
        "event",
        {
            "descriptor": "d1",
            "seq_num": 1,
            "time": 1.0,
            "data": {"x": 1.23456, "n": 7, "label": "ok", "image": [[0]]},
        },
    )
    table(
        "event",
        {
            "descriptor": "d1",
            "seq_num": 4,
            "time": 2.0,
            "data": {"x": 2.0, "n": 8, "label": "ok", "image": [[0]]},
        },
    )
    table(
        "stop",
        {"uid": "s1", "run_start": "r1", "time": 3.0, "exit_status": "abort", "reason": "user"},
    )
    text = out.getvalue()
    assert "x [mm]" in text and "image" not in text  # non-scalar fields are left out
    assert [row[2:] for row in rows(text)] == [["1.2", "7", "ok"], ["2.0", "8", "ok"]]
    assert "2 events not shown" in text  # a gap in seq_num (e.g. dropped by Buffered)
    assert "Run 9 abort (user): 2 rows in 3.0 s" in text
    assert table.errors == 0


def pause_once():
    yield Msg("open_run")
    yield Msg("checkpoint")
    yield from bps.trigger_and_read([det])
    yield Msg("checkpoint")
    yield Msg("pause")
    yield from bps.trigger_and_read([det])
    yield Msg("close_run")


def test_pause_and_resume_show_as_notes_between_rows(RE):
    result, text = paused_and_resumed(RE, pause_once(), RichTable)
    assert result.exit_status == "success"
    lines = text.splitlines()
    kinds = [
        "row"
        if ROW.match(line)
        else "paused"
        if "paused" in line
        else "resumed"
        if "resumed" in line
        else None
        for line in lines
    ]
    assert [k for k in kinds if k] == ["row", "paused", "resumed", "row"]
    assert "requested by plan" in text


def test_a_missing_field_is_named_and_the_run_succeeds(RE):
    out = io.StringIO()
    table = RichTable(["det", "no_such_field"], file=out)
    with pytest.warns(CallbackWarning, match="no_such_field"):
        result = RE(count([det], num=3), table)
    assert result.exit_status == "success"
    values = [row[2] for row in rows(out.getvalue())]
    assert len(values) == 3 and all(re.fullmatch(r"\d\.\d{3}", v) for v in values)
    assert table.errors == 0


def test_a_broken_handler_never_reaches_the_engine(RE, caplog):
    class Broken(RichTable):
        def event(self, doc):
            raise RuntimeError("display bug")

    table = Broken(file=io.StringIO())
    result = RE(count([det], num=4), table)
    assert result.exit_status == "success"
    assert table.errors == 4
    assert "Broken" in caplog.text and "display bug" in caplog.text
