"""Plans on our RunEngine over the simulated IOCs: real data keys, the peak where the IOC put
it, limits refused at once, and every fault injection observable.

Uses the session's ``beamline`` (every IOC launched once per test session).
"""

from __future__ import annotations

import random
import threading
import time

import bluesky.plan_stubs as bps
import numpy as np
import pytest
from bluesky import plans as bp
from bluesky.suspenders import SuspendFloor
from ophyd.status import StatusTimeoutError
from ophyd.utils.errors import LimitError, WaitTimeoutError

from runengine import RunEngine
from runengine.devices import faults
from tests.runengine.side_by_side import validate_documents

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def RE():
    return RunEngine({}, context_managers=[])


@pytest.fixture
def run(RE):
    """``run(plan) -> documents``: run on our engine; every document validated."""
    taken: list[list] = []

    def run(plan, *subscribers):
        docs: list = []
        RE(plan, [lambda name, doc: docs.append((name, doc)), *subscribers])
        taken.append(docs)
        return docs

    yield run
    for docs in taken:
        validate_documents(docs)


def of(docs, name):
    return [doc for n, doc in docs if n == name]


def poll(predicate, timeout=5.0, interval=0.01):
    """Wait until ``predicate()`` is true (bounded); return its last value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


@pytest.fixture
def peak(beamline):
    """Put the point detector's peak somewhere else for one test; restore it after."""
    det = beamline.det
    saved = {sig: sig.get() for sig in (det.center, det.width, det.height, det.noise)}

    def peak(center, width, height=1000.0, noise=1.0):
        for sig, value in zip(saved, (center, width, height, noise), strict=True):
            sig.put(value, wait=True)

    yield peak
    for sig, value in saved.items():
        sig.put(value, wait=True)


# ---- plans ---------------------------------------------------------------------------------
def test_count_records_the_detectors_real_data_keys_and_configuration(beamline, run):
    det, cam = beamline.det, beamline.cam
    docs = run(bp.count([det, cam], num=3))
    (desc,) = of(docs, "descriptor")
    keys = desc["data_keys"]
    assert set(keys) == {"det", "det_array_counter", "cam_image", "cam_total", "cam_array_counter"}
    assert keys["det"]["source"] == f"PV:{det.prefix}Value_RBV" and keys["det"]["dtype"] == "number"
    assert keys["cam_image"]["shape"] == [64, 64] and keys["cam_image"]["dtype"] == "array"
    config = desc["configuration"]
    assert config["det"]["data"]["det_acquire_time"] == det.acquire_time.get()
    assert set(config["det"]["data"]) == {
        "det_acquire_time", "det_center", "det_width", "det_height", "det_noise"
    }  # fmt: skip
    assert config["cam"]["data"] == {"cam_acquire_time": 0.01, "cam_size0": 64, "cam_size1": 64}
    assert desc["hints"] == {"det": {"fields": ["det"]}, "cam": {"fields": ["cam_total"]}}
    events = of(docs, "event")
    counters = [e["data"]["det_array_counter"] for e in events]
    assert np.diff(counters).tolist() == [1, 1]  # one acquisition per event
    image = events[0]["data"]["cam_image"]
    assert image.shape == (64, 64) and image.sum() == events[0]["data"]["cam_total"]
    assert np.unravel_index(image.argmax(), image.shape) == pytest.approx((32, 32), abs=2)
    assert of(docs, "stop")[0]["exit_status"] == "success"


def test_a_scan_finds_the_peak_where_the_ioc_put_it(beamline, run, peak):
    peak(center=1.3, width=0.4)
    docs = run(bp.scan([beamline.det], beamline.m1, -1, 3, 41))
    events = of(docs, "event")
    x = np.array([e["data"]["m1"] for e in events])
    y = np.array([e["data"]["det"] for e in events])
    assert len(events) == 41 and x == pytest.approx(np.linspace(-1, 3, 41), abs=1e-3)
    assert x[y.argmax()] == pytest.approx(1.3, abs=0.1)
    assert (x * y).sum() / y.sum() == pytest.approx(1.3, abs=0.02)
    assert y.max() == pytest.approx(1000.0, rel=0.02)
    (desc,) = of(docs, "descriptor")
    assert desc["configuration"]["det"]["data"]["det_center"] == 1.3
    assert set(desc["data_keys"]) == {"det", "det_array_counter", "m1", "m1_user_setpoint"}


def test_a_grid_scan_covers_both_motors_and_the_peak_follows_m1_only(beamline, run, peak):
    peak(center=0.0, width=0.5, noise=0.0)
    m1, m2 = beamline.m1, beamline.m2
    docs = run(bp.grid_scan([beamline.det], m1, -1, 1, 3, m2, -2, 2, 3, snake_axes=True))
    events = of(docs, "event")
    points = [(round(e["data"]["m1"], 3), round(e["data"]["m2"], 3)) for e in events]
    assert sorted(points) == sorted((a, b) for a in (-1, 0, 1) for b in (-2, 0, 2))
    values = {p: e["data"]["det"] for p, e in zip(points, events, strict=True)}
    for a in (-1, 0, 1):  # noise 0: the same reading at every m2
        expected = 1000.0 * np.exp(-(a**2) / (2 * 0.5**2))
        assert [values[(a, b)] for b in (-2, 0, 2)] == pytest.approx([expected] * 3, rel=1e-6)
    assert list(of(docs, "start")[0]["shape"]) == [3, 3]


def test_a_temperature_ramp_reaches_each_setpoint_before_reading(beamline, run):
    temp = beamline.temp
    temp.rate.put(200.0, wait=True)

    def ramp(targets):
        yield from bps.open_run()
        for target in targets:
            yield from bps.mv(temp, target)
            yield from bps.trigger_and_read([temp, beamline.beam])
        yield from bps.close_run()

    start = time.monotonic()
    docs = run(ramp([300.0, 320.0, 310.0]))
    took = time.monotonic() - start
    events = of(docs, "event")
    assert [e["data"]["temp"] for e in events] == [300.0, 320.0, 310.0]
    assert [e["data"]["temp_setpoint"] for e in events] == [300.0, 320.0, 310.0]
    assert all(e["data"]["beam"] > 390 for e in events)
    assert took >= 0.9 * (20 + 10) / 200.0  # at least the last two ramps, at 200 K/s
    (desc,) = of(docs, "descriptor")
    assert desc["configuration"]["temp"]["data"] == {"temp_rate": 200.0}
    assert desc["data_keys"]["temp"]["units"] == "K"


def test_the_shutter_opens_and_closes_with_its_readback(beamline, run):
    shutter = beamline.shutter
    docs = run(bp.list_scan([shutter], shutter, ["Open", "Close"]))
    assert [e["data"]["shutter"] for e in of(docs, "event")] == ["Open", "Closed"]
    assert not shutter.is_open


# ---- limits --------------------------------------------------------------------------------
def test_a_move_outside_the_soft_limits_fails_at_once_with_a_clear_error(beamline, RE):
    m1 = beamline.m1
    assert m1.limits == (-10.0, 10.0)
    start = time.monotonic()
    with pytest.raises(
        LimitError, match=r"m1: target 50 is outside the soft limits \[-10.0, 10.0\]"
    ):
        RE(bps.mv(m1, 50))
    assert time.monotonic() - start < 2.0  # not a 3 s put timeout
    assert RE.state == "idle" and abs(m1.position) <= 10


def test_a_scan_past_the_limits_closes_its_run_as_failed_keeping_the_points_taken(beamline, RE):
    docs: list = []
    with pytest.raises(LimitError):
        RE(bp.scan([beamline.det], beamline.m1, 9, 11, 3), lambda n, d: docs.append((n, d)))
    validate_documents(docs)
    (stop,) = of(docs, "stop")
    assert stop["exit_status"] == "fail" and "soft limits" in stop["reason"]
    assert [e["data"]["m1"] for e in of(docs, "event")] == pytest.approx([9.0, 10.0], abs=1e-3)


# ---- faults --------------------------------------------------------------------------------
def test_a_frozen_heartbeat_stops_counting_while_uptime_goes_on(beamline):
    health = beamline.health["temperature"]
    with faults.freeze_heartbeat(beamline.temp) as fault:
        assert fault.active
        frozen = health.heartbeat.get()
        t0 = health.uptime.get(use_monitor=False)
        assert poll(lambda: health.uptime.get(use_monitor=False) >= t0 + 1.5, timeout=5)
        assert health.heartbeat.get(use_monitor=False) == frozen
    beat = health.heartbeat.get(use_monitor=False)
    assert poll(lambda: health.heartbeat.get(use_monitor=False) > beat, timeout=3)


def test_a_beam_loss_suspends_the_scan_and_the_refill_resumes_it(beamline, RE, run):
    beam, det = beamline.beam, beamline.det
    RE.install_suspender(SuspendFloor(beam.current, 100.0, resume_thresh=390.0, sleep=0.1))
    states: list[str] = []
    RE.state_hook = lambda new, old: states.append(new)
    events = []

    def on_event(name, doc):
        if name != "event":
            return
        events.append(doc)
        if len(events) == 3:  # the beam goes away mid-run, and comes back a little later
            faults.drop_beam(beam)
            assert poll(lambda: beam.current.get() < 100.0, timeout=2)
            threading.Thread(target=restore_when_suspended, daemon=True).start()

    def restore_when_suspended():
        poll(lambda: "suspending" in states, timeout=5)  # (a transient state, as in bluesky)
        faults.restore_beam(beam)

    try:
        docs = run(bp.count([det, beam], num=8, delay=0.02), on_event)
    finally:
        faults.restore_beam(beam)
        RE.clear_suspenders()
        RE.state_hook = None
    assert "suspending" in states and RE.state == "idle"
    assert len(events) == 8 and [e["seq_num"] for e in events] == list(range(1, 9))
    # the run waited for the refill: the points after the loss were read with the beam back
    assert all(e["data"]["beam"] > 390.0 for e in events[3:])
    assert of(docs, "stop")[0]["exit_status"] == "success"


def test_a_stalled_motor_never_finishes_until_cleared(beamline):
    m2 = beamline.m2
    target = round(m2.position + 0.5, 3)
    with faults.stall_motor(m2):
        status = m2.set(target)
        assert poll(lambda: m2.motor_done_move.get() == 0, timeout=2)
        moved_from = m2.position
        t0 = beamline.health["motors"].uptime.get(use_monitor=False)
        poll(lambda: beamline.health["motors"].uptime.get(use_monitor=False) > t0 + 0.5, 3)
        assert not status.done and m2.position == moved_from
    status.wait(timeout=3)
    assert status.success and m2.position == pytest.approx(target, abs=1e-6)


def test_a_move_right_after_a_stop_is_done_only_at_its_own_target(beamline):
    """A pause stops a motor and the resume moves it again at once: the stop's done-moving,
    still on its way to the client, must not finish the new move (ophyd's EpicsMotor takes
    any done-moving after a move as its end)."""
    m2, rng = beamline.m2, random.Random(1202)
    home = round(m2.position, 3)
    try:
        for trial in range(40):
            m2.set(home + 1.0)  # 50 ms at 20 mm/s
            time.sleep(rng.uniform(0.0, 0.03))
            m2.stop()
            time.sleep(rng.choice([0.0, rng.uniform(0.0, 0.015)]))
            target = round(home + rng.choice([-0.5, 0.25, 0.5]), 3)
            status = m2.set(target)
            status.wait(timeout=5)
            reached = m2.user_readback.get(use_monitor=False)
            assert status.success and reached == pytest.approx(target, abs=1e-6), (trial, reached)
    finally:
        m2.set(home).wait(timeout=5)


def test_a_stalled_temperature_ramp_holds_until_cleared(beamline):
    temp = beamline.temp
    start = temp.readback.get()
    with faults.stall(temp):
        status = temp.set(start + 5.0)
        assert poll(lambda: temp.done.get() == 0, timeout=2)
        with pytest.raises(WaitTimeoutError):
            status.wait(timeout=0.3)
        assert temp.readback.get() == start
    status.wait(timeout=3)
    assert temp.readback.get() == start + 5.0


def test_failing_puts_make_a_trigger_fail_and_work_again_once_allowed(beamline, monkeypatch):
    det = beamline.det
    monkeypatch.setattr(det, "trigger_margin", 0.5)
    counter = det.array_counter.get()
    with faults.fail_puts(det):
        status = det.trigger()
        with pytest.raises(StatusTimeoutError):
            status.wait(timeout=3)
        assert not status.success and det.array_counter.get(use_monitor=False) == counter
    det.trigger().wait(timeout=3)
    assert det.array_counter.get(use_monitor=False) == counter + 1
