"""ProgressBar: counts, ETA, several streams, pauses and the exit status."""

from __future__ import annotations

import io

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import pytest
from bluesky.plans import count, scan
from bluesky.utils import Msg
from ophyd.sim import det, det1, motor

from runengine import RunEngine
from runengine.callbacks import ProgressBar
from runengine.callbacks.progress import Pace, run_length
from tests.callbacks.interrupted import paused_and_resumed


@pytest.fixture(scope="module")
def RE():
    return RunEngine({}, context_managers=[], call_returns_result=True)


def final(text):
    """The last state the bar printed (tqdm rewrites the line with carriage returns)."""
    return text.replace("\n", "\r").rstrip("\r").split("\r")[-1]


def test_known_length_counts_to_the_end_and_shows_the_exit_status(RE):
    out = io.StringIO()
    progress = ProgressBar(file=out)
    result = RE(count([det], num=500), progress)
    assert result.exit_status == "success"
    last = final(out.getvalue())
    assert "500/500" in last and "100%" in last and "success" in last
    assert progress.total == 500 and progress.bar.n == 500
    assert progress.exit_status == "success" and progress.errors == 0
    assert progress.eta == 0


def test_scan_length_comes_from_num_points(RE):
    out = io.StringIO()
    progress = ProgressBar(file=out)
    RE(scan([det], motor, -1, 1, 7), progress)
    assert progress.total == 7
    assert "7/7" in final(out.getvalue())


def test_run_length():
    assert run_length({"num_points": 5, "num_intervals": 9}) == 5
    assert run_length({"num_intervals": 4}) == 5
    assert run_length({}) is None
    assert run_length({"num_points": "many"}) is None


def unknown_length():
    yield from bps.open_run()
    for _ in range(3):
        yield from bps.trigger_and_read([det])
    yield from bps.close_run()


def test_unknown_length_is_a_counter_without_eta(RE):
    out = io.StringIO()
    progress = ProgressBar(file=out)
    RE(unknown_length(), progress)
    last = final(out.getvalue())
    assert progress.total is None and progress.eta is None
    assert "3pt" in last and "%" not in last and "success" in last


def test_other_streams_are_counted_beside_the_bar(RE):
    out = io.StringIO()
    progress = ProgressBar(file=out)
    plan = bpp.baseline_wrapper(count([det], num=4), [det1])
    RE(plan, progress)
    last = final(out.getvalue())
    assert "4/4" in last and "baseline=2" in last
    assert progress.others == {"baseline": 2}


def failing():
    yield from bps.open_run()
    yield from bps.trigger_and_read([det])
    raise ValueError("sample fell off")


def test_a_failed_run_closes_the_bar_with_fail_and_the_reason(RE):
    out = io.StringIO()
    progress = ProgressBar(file=out)
    with pytest.raises(ValueError):
        RE(failing(), progress)
    assert progress.exit_status == "fail"
    assert "fail" in final(out.getvalue()) and "sample fell off" in final(out.getvalue())


def test_a_pause_on_the_engine_shows_and_the_run_completes(RE):
    def plan():
        yield from bps.open_run()
        yield Msg("checkpoint")
        yield from bps.trigger_and_read([det])
        yield Msg("checkpoint")
        yield Msg("pause")
        yield from bps.trigger_and_read([det])
        yield from bps.close_run()

    result, text = paused_and_resumed(RE, plan(), ProgressBar)
    assert result.exit_status == "success"
    assert "[paused]" in text
    last = final(text)
    assert "2pt" in last and "success" in last and "[paused]" not in last


def synthetic_run(progress, times, interruptions=(), total=100):
    """Feed a run of events at ``times`` (seconds) and interruptions ``(time, what)``."""
    progress("start", {"uid": "r", "time": 0.0, "num_points": total, "scan_id": 1})
    for uid, name in (("d", "primary"), ("i", "interruptions")):
        progress("descriptor", {"uid": uid, "run_start": "r", "name": name, "data_keys": {}})
    feed = [(t, "event", None) for t in times] + [(t, "interruption", w) for t, w in interruptions]
    for seq, (t, kind, what) in enumerate(sorted(feed), 1):
        if kind == "event":
            progress("event", {"descriptor": "d", "seq_num": seq, "time": t, "data": {}})
        else:
            data = {"interruption": what}
            progress("event", {"descriptor": "i", "seq_num": seq, "time": t, "data": data})


@pytest.mark.parametrize("recorded", [True, False])
def test_a_pause_does_not_spoil_the_eta(recorded):
    progress = ProgressBar(file=io.StringIO())
    times = [*range(1, 11), *range(1001, 1011)]  # one point a second, a 990 s pause
    pause = [(10.5, "pause"), (1000.5, "resume")] if recorded else []
    synthetic_run(progress, times, pause)
    assert progress.pace.points == 20
    assert progress.eta == pytest.approx(80, rel=0.05)  # 80 points to go at 1/s
    assert progress.pace.active == pytest.approx(20, abs=1)
    assert progress.pace.paused == pytest.approx(990, abs=1)
    assert progress.bar.format_dict["elapsed"] == pytest.approx(20, abs=1)


def test_a_slow_point_is_not_taken_for_a_pause():
    pace = Pace(0.0)
    for t in range(1, 11):
        pace.point(float(t))
    pace.point(13.0)  # 3 s: slower, below pause_factor x median
    assert pace.paused == 0 and pace.active == 13
    pace.point(14.0, n=1)
    assert 0.5 < pace.rate <= 1.0
