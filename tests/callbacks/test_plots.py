"""Plots: LivePlot and plot_run write PNGs headless; bluesky's PeakStats on our engine."""

from __future__ import annotations

import sys

import matplotlib
import matplotlib.image
import numpy as np
import pytest
from bluesky.callbacks.fitting import PeakStats
from bluesky.plans import count, scan
from ophyd.sim import det, det1, det2, motor

from runengine import RunEngine
from runengine.callbacks import CallbackWarning, LivePlot, headless, plot_run

BLUE = np.array(matplotlib.colors.to_rgb("C0"))


@pytest.fixture(scope="module")
def RE():
    return RunEngine({}, context_managers=[], call_returns_result=True)


@pytest.fixture
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def collect(RE, plan, *subs):
    docs = []
    result = RE(plan, [lambda n, d: docs.append((n, d)), *subs])
    return result, docs


def blue_pixels(path):
    """The number of pixels drawn in the first line colour: a plotted line, not a blank."""
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # not blank
    return int((np.abs(image[..., :3] - BLUE).max(axis=-1) < 0.1).sum())


def pyplot_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    return plt.get_fignums() if plt else []


def test_headless_detection(no_display, monkeypatch):
    if sys.platform.startswith("linux"):
        assert headless()
        monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setitem(matplotlib.rcParams, "backend", "agg")
    assert headless()


def test_live_plot_saves_a_png_at_stop(RE, no_display, tmp_path):
    plot = LivePlot("det", "motor", save=tmp_path / "scan_{scan_id}_{nope}.png")
    result, docs = collect(RE, scan([det], motor, -2, 2, 9), plot)
    assert result.exit_status == "success" and plot.errors == 0
    scan_id = docs[0][1]["scan_id"]
    path = tmp_path / f"scan_{scan_id}_{{nope}}.png"  # unknown fields stay as written
    assert plot.saved == [path] and path.exists()
    assert blue_pixels(path) > 200
    (line,) = plot.ax.get_lines()
    events = [d["data"] for n, d in docs if n == "event"]
    assert line.get_xydata().tolist() == [[e["motor"], e["det"]] for e in events]
    assert plot.ax.get_xlabel() == "motor" and plot.ax.get_ylabel() == "det"
    low, high = plot.ax.get_xlim()
    assert low <= -2 and high >= 2  # rescaled to the data at stop
    assert pyplot_figures() == []  # headless: no pyplot figure, no window


def test_live_plot_against_seq_num_with_several_fields_and_runs(RE, no_display, tmp_path):
    plot = LivePlot(["det1", "det2"], save=tmp_path / "counts.png")
    RE(count([det1, det2], num=4), plot)
    RE(count([det1, det2], num=3), plot)
    lines = plot.ax.get_lines()
    assert [len(line.get_xdata()) for line in lines] == [4, 4, 3, 3]
    assert list(lines[2].get_xdata()) == [1, 2, 3]
    assert len(plot.ax.get_legend().get_texts()) == 4
    assert plot.saved == [tmp_path / "counts.png"] * 2 and blue_pixels(plot.saved[0]) > 50


def test_a_missing_y_field_is_named_and_the_run_succeeds(RE, no_display, tmp_path):
    plot = LivePlot("no_such_det", "motor", save=tmp_path / "bad.png")
    with pytest.warns(CallbackWarning, match="no_such_det") as record:
        result = RE(scan([det], motor, -1, 1, 3), plot)
    assert result.exit_status == "success"
    assert plot.errors == 0 and plot.missing == ["no_such_det"]
    assert any("'det'" in str(w.message) for w in record)  # lists the fields there are
    assert not (tmp_path / "bad.png").exists()


def test_values_that_are_not_numbers_are_skipped_with_a_warning(no_display):
    plot = LivePlot("label", "x")
    keys = {
        "x": {"dtype": "number", "shape": [], "source": "s", "units": "mm"},
        "label": {"dtype": "string", "shape": [], "source": "s"},
    }
    plot("start", {"uid": "r", "time": 0, "scan_id": 1})
    plot("descriptor", {"uid": "d", "run_start": "r", "name": "primary", "data_keys": keys})
    with pytest.warns(CallbackWarning, match="'label' is not a number"):
        plot("event", {"descriptor": "d", "seq_num": 1, "time": 1, "data": {"x": 1, "label": "a"}})
    plot("event", {"descriptor": "d", "seq_num": 2, "time": 2, "data": {"x": 2, "label": "3.5"}})
    assert plot.ax.get_lines()[0].get_xydata().tolist() == [[2.0, 3.5]]
    assert plot.ax.get_xlabel() == "x [mm]" and plot.errors == 0


def test_plot_run_after_the_fact(RE, no_display, tmp_path):
    _, docs = collect(RE, scan([det], motor, -3, 3, 13))
    figure = plot_run(docs, "det", "motor", path=tmp_path / "after.png")
    assert blue_pixels(tmp_path / "after.png") > 200
    assert len(figure.axes[0].get_lines()[0].get_xdata()) == 13

    class Run:  # what the catalog's runs offer
        def documents(self):
            return iter(docs)

    figure = plot_run(Run(), "det", path=tmp_path / "by_seq.png")
    assert list(figure.axes[0].get_lines()[0].get_xdata()) == list(range(1, 14))
    assert (tmp_path / "by_seq.png").exists()


def test_plot_run_bad_input(RE, no_display):
    _, docs = collect(RE, scan([det], motor, -1, 1, 3))
    with pytest.warns(CallbackWarning), pytest.raises(KeyError, match="no_such_det"):
        plot_run(docs, "no_such_det", "motor")
    with pytest.raises(ValueError, match="'dark'"):
        plot_run(docs, "det", stream="dark")


def test_bluesky_peak_stats_on_our_engine(RE):
    stats = PeakStats("motor", "det")
    result = RE(scan([det], motor, -5, 5, 41), stats)
    assert result.exit_status == "success"
    assert stats.cen == pytest.approx(0, abs=1e-6)
    assert stats.com == pytest.approx(0, abs=1e-6)
    assert stats.max == pytest.approx((0, 1))
    assert stats.fwhm == pytest.approx(2 * np.sqrt(2 * np.log(2)), rel=0.05)  # sigma 1


def test_live_plot_marks_peak_statistics(RE, no_display, tmp_path):
    plot = LivePlot("det", "motor", peaks=True, save=tmp_path / "peak.png")
    RE(scan([det], motor, -4, 4, 33), plot)
    assert plot.peak_stats.cen == pytest.approx(0, abs=1e-6)
    labels = [text.get_text() for text in plot.ax.get_legend().get_texts()]
    assert "cen 0" in labels and "max at 0" in labels
    assert (tmp_path / "peak.png").exists()


def test_live_plot_argument_errors():
    with pytest.raises(ValueError, match="at least one y"):
        LivePlot([])


def test_plot_run_from_the_store_catalog(RE, no_display, tmp_path):
    from runengine.callbacks.catalog import Catalog
    from runengine.callbacks.store import RunStore

    RE(scan([det], motor, -2, 2, 5), RunStore(tmp_path / "runs"))
    run = Catalog(tmp_path / "runs")[-1]
    figure = plot_run(run, "det", "motor", path=tmp_path / "stored.png")
    assert list(figure.axes[0].get_lines()[0].get_xdata()) == [-2, -1, 0, 1, 2]
    assert blue_pixels(tmp_path / "stored.png") > 100


def test_show_draws_a_pyplot_figure_rescaled_while_running(RE, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setitem(matplotlib.rcParams, "backend", "agg")  # a "window" we can test
    plot = LivePlot("det", "motor", show=True, redraw_interval=0)
    try:
        assert plot.figure.number in plt.get_fignums()
        limits = []
        original = plot._redraw

        def redraw():
            original()
            limits.append(plot.ax.get_xlim())

        plot._redraw = redraw
        RE(scan([det], motor, 0, 4, 5), plot)
        assert len(limits) == 6  # each point and the stop
        assert limits[-1][0] <= 0 and limits[-1][1] >= 4
    finally:
        plt.close(plot.figure)


def x_ticks(plot):
    plot.figure.canvas.draw()
    low, high = plot.ax.get_xlim()
    ticks = [t for t in plot.ax.get_xticks() if low <= t <= high]
    return ticks, [t.get_text() for t in plot.ax.get_xticklabels() if t.get_text()]


def test_a_one_point_count_shows_one_whole_seq_num_tick(RE, no_display):
    plot = LivePlot("det")
    RE(count([det]), plot)
    assert x_ticks(plot) == ([1.0], ["1"])  # not 0.96 ... 1.04
    low, high = plot.ax.get_xlim()
    assert low < 1 < high and high - low >= 1
    RE(count([det], num=7), plot)  # more points on the same axes: whole numbers, rescaled
    ticks, labels = x_ticks(plot)
    assert len(ticks) > 1 and all(t == int(t) for t in ticks)
    assert all(label.lstrip("-\u2212").isdigit() for label in labels)
    assert plot.ax.get_xlim()[1] >= 7


def test_a_one_point_scan_shows_its_position(RE, no_display):
    plot = LivePlot("det", "motor")
    RE(scan([det], motor, 0.5, 0.5, 1), plot)
    assert x_ticks(plot) == ([0.5], ["0.5"])
