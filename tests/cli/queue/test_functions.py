"""The profile's functions and QueueRunEngine in one process: what function_execute calls."""

from __future__ import annotations

import threading
import time

import bluesky.plans as bp
import pytest
from bluesky.utils import RunEngineInterrupted
from ophyd.sim import SynAxis, SynGauss

from runengine.callbacks.catalog import Catalog
from runengine.callbacks.store import RunStore
from runengine.cli.queue.engine import QueueRunEngine
from runengine.cli.queue.functions import FUNCTION_NAMES, profile_functions

POINTS = 20


@pytest.fixture
def setup(tmp_path):
    RE = QueueRunEngine({})
    store = RunStore(tmp_path / "runs")
    store.subscribe(RE)
    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)
    functions = profile_functions(RE, Catalog(store.directory))
    return RE, functions, det, motor


def in_thread(call, *args, after: float = 0.2, **kwargs) -> list:
    """Call ``call`` from another thread ``after`` s from now (as function_execute does)."""
    out: list = []

    def later() -> None:
        time.sleep(after)
        try:
            out.append(call(*args, **kwargs))
        except BaseException as exc:
            out.append(exc)

    threading.Thread(target=later, daemon=True).start()
    return out


def slow_count(det):
    return bp.count([det], POINTS, delay=0.05)


def test_the_functions_are_the_ones_named_for_the_permissions(setup):
    _, functions, _, _ = setup
    assert tuple(functions) == FUNCTION_NAMES
    assert all(f.__doc__ for f in functions.values())


def test_a_hold_refuses_resume_by_raising_until_released(setup):
    RE, f, det, _ = setup
    held = in_thread(f["hold"], "alignment", reason="realigning")
    with pytest.raises(RunEngineInterrupted):
        RE(slow_count(det))
    assert RE.state == "paused" and held[0]["holds"] == {"alignment": "realigning"}
    with pytest.raises(RunEngineInterrupted, match="alignment"):  # queueserver: stays paused
        RE.resume()
    assert RE.state == "paused"
    assert f["release"]("alignment")["holds"] == {}
    RE.resume()
    assert RE.state == "idle"
    runs = f["stored_runs"]()
    assert [(r["exit_status"], r["num_events"]) for r in runs] == [("success", {"primary": POINTS})]


def test_bad_arguments_name_themselves_and_leave_nothing_behind(setup):
    RE, f, det, _ = setup
    with pytest.raises(TypeError, match="defer must be true or false, not 'false'"):
        f["hold"]("x", defer="false")
    for bad in ("", "   ", 3, None, "n" * 201):
        with pytest.raises(ValueError, match="name must be"):
            f["hold"](bad)
    with pytest.raises(ValueError, match="no hold named 'nobody'"):
        f["release"]("nobody")
    for bad in (0, -1, True, "3"):
        with pytest.raises(ValueError, match="limit must be"):
            f["stored_runs"](bad)
    from bluesky.run_engine import TransitionError

    with pytest.raises(TransitionError):  # idle: nothing to pause, and the hold is not kept
        f["hold"]("early")
    assert f["engine_status"]()["holds"] == {} and RE.state == "idle"
    RE(bp.count([det]))
    assert f["stored_runs"]()[0]["exit_status"] == "success"


def test_panic_aborts_and_all_is_well_recovers(setup):
    RE, f, det, _ = setup
    panicked = in_thread(f["panic"])
    with pytest.raises(Exception):  # noqa: B017 - whatever the engine raises for a panic
        RE(slow_count(det))
    assert panicked[0]["state"] == "panicked" and RE.state == "panicked"
    assert f["all_is_well"]()["state"] == "idle"
    RE(bp.count([det], 2))
    statuses = [r["exit_status"] for r in f["stored_runs"]()]
    assert statuses == ["abort", "success"]


def test_engine_status_lists_pause_requests_and_suspenders(setup):
    RE, f, det, _ = setup
    from runengine.suspenders import SuspendWhileFileExists

    RE.install_suspender(SuspendWhileFileExists("/nonexistent/HOLD"))
    in_thread(f["hold"], "a")
    with pytest.raises(RunEngineInterrupted):
        RE(slow_count(det))
    status = f["engine_status"]()
    assert status["state"] == "paused" and status["pause_requests"] == ["a"]
    assert len(status["suspenders"]) == 1 and "HOLD" in status["suspenders"][0]
    f["release"]("a")
    RE.abort("done")
    assert f["beamline_info"]() == {}
