"""bluesky's callbacks subscribed to our engine do what they do on bluesky's.

LiveTable and BestEffortCallback print the same text (modulo clock times, dates and uids),
plots get the same points, writers write the same files; subscriptions, hooks and the
subs argument of ``RE(plan, subs)`` behave the same.
"""

from __future__ import annotations

import json
import re
import threading

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from bluesky import plans as bp
from bluesky.callbacks import CallbackCounter, LiveGrid, LivePlot, LiveTable
from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky.callbacks.json_writer import JSONLinesWriter
from bluesky.utils import Msg, RunEngineInterrupted
from event_model import RunRouter

from .side_by_side import (
    UID,
    assert_same_outcome,
    make_devices,
    message_signatures,
    normalize,
    run_plan,
    validate_documents,
)

CLOCK = re.compile(r"\d\d:\d\d:\d\d(\.\d+)?")
DATE = re.compile(r"\d{4}-\d\d-\d\d")
SHORT = re.compile(r"'[0-9a-f]{8}'")


def same_text(text: str) -> str:
    """Printed output without what differs between two runs: clocks, dates, uids."""
    text = UID.sub("<uid>", text)
    text = SHORT.sub("'<uid>'", text)
    return CLOCK.sub("<time>", DATE.sub("<date>", text))


def printed_by_both(engine_pair, capsys, make_plan, make_callbacks):
    """Run ``make_plan(hw)`` on each engine with ``make_callbacks(hw)`` subscribed.

    Returns the two printed outputs, and the callbacks of each engine.
    """
    outputs, callbacks = [], []
    for RE in engine_pair:
        hw = make_devices()
        cbs = make_callbacks(hw)
        tokens = [RE.subscribe(cb) for cb in cbs]
        capsys.readouterr()
        try:
            out = run_plan(RE, make_plan, hw=hw)
        finally:
            for token in tokens:
                RE.unsubscribe(token)
        assert out.error is None
        outputs.append(capsys.readouterr().out)
        callbacks.append(cbs)
    return outputs, callbacks


def scans(hw):
    def plan():
        yield from bp.scan([hw.det, hw.noisy_det], hw.motor, -1, 1, 5)
        yield from bp.grid_scan([hw.det4], hw.motor1, -1, 1, 3, hw.motor2, -1, 1, 2)
        yield from bp.count([hw.det1, hw.det2], 2)

    return plan()


def test_live_table_prints_the_same(engine_pair, capsys):
    (theirs, ours), _ = printed_by_both(
        engine_pair, capsys, scans, lambda hw: [LiveTable([hw.det, hw.motor, hw.noisy_det])]
    )
    assert "|   seq_num |       time |" in ours
    assert same_text(ours) == same_text(theirs)


def test_best_effort_callback_prints_the_same(engine_pair, capsys):
    def make_callbacks(hw):
        bec = BestEffortCallback()
        bec.disable_plots()
        return [bec]

    def plan(hw):
        def inner():
            yield from scans(hw)
            yield from bp.rel_scan([hw.det], hw.motor, -1, 1, 2, md={"hints": {}})

        return inner()

    (theirs, ours), _ = printed_by_both(engine_pair, capsys, plan, make_callbacks)
    assert "Transient Scan ID: 3" in ours and "Persistent Unique Scan ID" in ours
    assert same_text(ours) == same_text(theirs)


def test_best_effort_callback_with_baseline_prints_the_same(engine_pair, capsys):
    from bluesky.preprocessors import SupplementalData

    def make_callbacks(hw):
        bec = BestEffortCallback()
        bec.disable_plots()
        return [bec]

    def plan(hw):
        sd = SupplementalData(baseline=[hw.det1, hw.motor1], monitors=[hw.sig])
        return sd(bp.scan([hw.det], hw.motor, 0, 1, 2))

    (theirs, ours), _ = printed_by_both(engine_pair, capsys, plan, make_callbacks)
    assert "Start-of-run baseline readings" in ours
    assert same_text(ours) == same_text(theirs)


def _lines(figures):
    return [
        [
            (list(map(float, line.get_xdata())), list(map(float, line.get_ydata())))
            for line in ax.lines
        ]
        for fig in figures
        for ax in fig.axes
    ]


def test_best_effort_plots_get_the_same_points(engine_pair, capsys):
    """With matplotlib's Agg backend: the same figures, axes and line data."""
    figures = []

    def make_callbacks(hw):
        plt.close("all")
        bec = BestEffortCallback(
            fig_factory=lambda *a, **kw: figures.append(plt.figure()) or figures[-1]
        )
        bec.disable_table()
        bec.disable_heading()
        return [bec]

    lines = []
    for RE in engine_pair:
        figures.clear()
        printed_by_both(
            (RE,), capsys, lambda hw: bp.scan([hw.det], hw.motor, -1, 1, 3), make_callbacks
        )
        lines.append(_lines(figures))
    plt.close("all")
    assert lines[0] == lines[1]
    assert lines[1] and lines[1][0][0][1] == pytest.approx([0.6065, 1.0, 0.6065], abs=1e-3)


def test_live_plot_and_live_grid_get_the_same_points(engine_pair, capsys):
    def make_callbacks(hw):
        plt.close("all")
        return [
            LivePlot("det4", "motor1"),
            LiveGrid((2, 2), "det4", extent=(-1, 1, -1, 1)),
            CallbackCounter(),
        ]

    _, (theirs, ours) = printed_by_both(
        engine_pair,
        capsys,
        lambda hw: bp.grid_scan([hw.det4], hw.motor1, -1, 1, 2, hw.motor2, -1, 1, 2),
        make_callbacks,
    )
    plt.close("all")
    assert ours[0].x_data == theirs[0].x_data and ours[0].y_data == theirs[0].y_data
    assert ours[1]._Idata.tolist() == theirs[1]._Idata.tolist()
    assert ours[2].value == theirs[2].value == 1 + 1 + 4 + 1


def test_json_lines_writer_writes_the_same(engine_pair, tmp_path):
    """Our documents serialize to the same JSON as bluesky's (modulo uids and times)."""
    written = []
    for i, RE in enumerate(engine_pair):
        writer = JSONLinesWriter(tmp_path / str(i), filename="docs.jsonl")
        (tmp_path / str(i)).mkdir()
        token = RE.subscribe(writer)
        try:
            out = run_plan(RE, scans)
        finally:
            RE.unsubscribe(token)
        assert out.error is None
        lines = (tmp_path / str(i) / "docs.jsonl").read_text().splitlines()
        written.append([(d["name"], d["doc"]) for d in map(json.loads, lines)])
    theirs, ours = written
    assert normalize(ours) == normalize(theirs)
    validate_documents(ours)


def test_run_router_sees_each_run(engine_pair):
    """event-model's RunRouter gives each run its own callbacks, the same way."""
    seen = []
    for RE in engine_pair:
        names = []

        def factory(name, start_doc, names=names):
            names.append(("run", start_doc["plan_name"]))

            def callback(name, doc):
                names.append((name, doc.get("name", doc.get("seq_num"))))

            return [callback], []

        token = RE.subscribe(RunRouter([factory]))
        try:
            run_plan(RE, scans)
        finally:
            RE.unsubscribe(token)
        seen.append(names)
    assert seen[0] == seen[1]
    assert [name for name, _ in seen[1]].count("run") == 3


def test_subs_argument_forms(engine_pair):
    """``RE(plan, subs)``: a callable, a list, a dict by document name; all the same."""
    results = []
    for RE in engine_pair:
        got = {"all": [], "list": [], "start": [], "event": [], "stop": []}
        subs_forms = [
            lambda name, doc, got=got: got["all"].append(name),
            [lambda name, doc, got=got: got["list"].append(name)],
            {
                "start": lambda name, doc, got=got: got["start"].append(doc["plan_name"]),
                "event": [lambda name, doc, got=got: got["event"].append(doc["seq_num"])],
                "stop": lambda name, doc, got=got: got["stop"].append(doc["exit_status"]),
            },
        ]
        for subs in subs_forms:
            RE(bp.count([make_devices().det], 2), subs)
        results.append(got)
    assert results[0] == results[1]
    assert results[1]["event"] == [1, 2]


def test_subscribe_by_document_name(engine_pair):
    results = []
    for RE in engine_pair:
        got = []
        tokens = [
            RE.subscribe(lambda name, doc, got=got: got.append(("d", name)), "descriptor"),
            RE.subscribe(lambda name, doc, got=got: got.append(("e", doc["seq_num"])), "event"),
        ]
        RE(bp.count([make_devices().det], 2))
        for token in tokens:
            RE.unsubscribe(token)
        RE(bp.count([make_devices().det], 2))  # no longer subscribed
        results.append(got)
    assert results[0] == results[1] == [("d", "descriptor"), ("e", 1), ("e", 2)]


def test_msg_hook_sees_the_same_messages_for_a_scan(engine_pair):
    theirs, ours = (
        run_plan(RE, lambda hw: bp.scan([hw.det], hw.motor, -1, 1, 3)) for RE in engine_pair
    )
    assert_same_outcome(theirs, ours)
    signatures = message_signatures(ours.msgs)
    assert signatures == message_signatures(theirs.msgs)
    assert [s[0] for s in signatures][:6] == [
        "stage",
        "stage",
        "open_run",
        "checkpoint",
        "set",
        "wait",
    ]


def test_state_hook_sees_the_same_transitions(engine_pair):
    transitions = []
    for RE in engine_pair:
        seen = []
        RE.state_hook = lambda new, old, seen=seen: seen.append((str(new), str(old)))
        RE(bp.count([make_devices().det]))
        RE.state_hook = None
        transitions.append(seen)
    assert transitions[0] == transitions[1] == [("running", "idle"), ("idle", "running")]


def test_callback_exception_is_raised_from_the_call(engine_pair):
    """A failing callback ends the plan with the callback's exception, run closed 'fail'."""
    results = []
    for RE in engine_pair:

        def fail_on_event(name, doc):
            if name == "event":
                raise RuntimeError("callback broke")

        docs = []
        with pytest.raises(RuntimeError, match="callback broke"):
            RE(
                bp.count([make_devices().det], 3),
                [fail_on_event, lambda n, d, docs=docs: docs.append((n, d))],
            )
        results.append(normalize(docs))
    assert results[0] == results[1]
    assert results[1][-1][1]["exit_status"] == "fail"


def test_ignored_callback_exceptions_let_the_plan_finish(engine_pair):
    results = []
    for RE in engine_pair:
        RE.ignore_callback_exceptions = True

        def fail_on_event(name, doc):
            if name == "event":
                raise RuntimeError("callback broke")

        docs = []
        with pytest.warns(UserWarning):
            RE(
                bp.count([make_devices().det], 2),
                [fail_on_event, lambda n, d, docs=docs: docs.append((n, d))],
            )
        RE.ignore_callback_exceptions = False
        results.append(normalize(docs))
    assert results[0] == results[1]
    assert results[1][-1][1]["exit_status"] == "success"


def test_callbacks_run_on_the_engine_thread(engine_pair):
    threads = []
    for RE in engine_pair:
        names = set()
        RE(
            bp.count([make_devices().det]),
            lambda n, d, names=names: names.add(threading.current_thread().name),
        )
        threads.append(names)
    assert threads[0] == threads[1] == {"bluesky-run-engine"}


def test_state_hook_through_a_pause_and_resume(engine_pair):
    transitions = []
    for RE in engine_pair:
        seen = []
        RE.state_hook = lambda new, old, seen=seen: seen.append((str(new), str(old)))
        with pytest.raises(RunEngineInterrupted):
            RE([Msg("open_run"), Msg("checkpoint"), Msg("pause"), Msg("close_run")])
        RE.resume()
        RE.state_hook = None
        transitions.append(seen)
    assert (
        transitions[0]
        == transitions[1]
        == [
            ("running", "idle"),
            ("pausing", "running"),
            ("paused", "pausing"),
            ("running", "paused"),
            ("idle", "running"),
        ]
    )


def test_waiting_hook_sees_the_same_waits(engine_pair):
    """waiting_hook: the statuses of each wait on a non-empty group, then None."""
    calls = []
    for RE in engine_pair:
        seen = []

        def hook(statuses, seen=seen):
            seen.append(None if statuses is None else sorted(type(s).__name__ for s in statuses))

        RE.waiting_hook = hook
        run_plan(RE, lambda hw: bp.scan([hw.det], hw.motor, 0, 1, 2))
        RE.waiting_hook = None
        calls.append(seen)
    assert calls[0] == calls[1]
    assert calls[1] and calls[1][-1] is None
