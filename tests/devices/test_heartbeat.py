"""End to end over the IOCs: heartbeat PVs feeding the registry, expiry suspending a scan, and
a file-triggered pause (spec/agents.md §5.2 test 10, issue 6 "Proof")."""

from __future__ import annotations

import threading
import time

import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.suspenders import SuspendBoolLow
from ophyd.sim import SynAxis, SynGauss

from runengine import RunEngine, RunEngineInterrupted
from runengine.agents import FilePausingAgent
from runengine.devices import faults
from runengine.devices.beamline import Beamline
from runengine.devices.heartbeat import HeartbeatSource, alive_signal
from runengine.heartbeats import Registry, SuspendOnExpired

pytestmark = pytest.mark.integration


def wait_until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.01)


def slow_step(detectors, step, pos_cache):
    yield from bps.one_nd_step(detectors, step, pos_cache)
    yield from bps.sleep(0.3)


@pytest.fixture
def noiseless(beamline):
    """The point detector without noise: two scans read the same values."""
    noise = beamline.det.noise.get()
    beamline.det.noise.put(0, wait=True)
    yield beamline
    beamline.det.noise.put(noise, wait=True)


def scan(bl, num=9):
    return bp.scan([bl.det], bl.m1, -1, 1, num, per_step=slow_step)


def primary(docs):
    """(seq_num, data) of the primary stream's events: what must match an uninterrupted scan.

    The detector's acquisition counter counts every trigger since the IOC started: left out.
    """
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    return [
        (d["seq_num"], {k: v for k, v in d["data"].items() if not k.endswith("array_counter")})
        for n, d in docs
        if n == "event" and streams[d["descriptor"]] == "primary"
    ]


def run_collecting(RE, plan):
    docs = []
    RE(plan, lambda name, doc: docs.append((name, doc)))
    return docs


def test_a_frozen_heartbeat_suspends_the_scan_and_thawing_resumes_it(RE, noiseless):
    bl = noiseless
    reference = primary(run_collecting(RE, scan(bl)))
    prefix = bl.iocs["pointdet"].prefix
    with Registry(timeout=1.5, check_period=0.1) as reg:
        source = HeartbeatSource.from_device(reg, bl.health["pointdet"], "ioc.pointdet").start()
        wait_until(lambda: source.beats >= 2, what="two heartbeats from the IOC")
        RE.install_suspender(SuspendOnExpired(reg, "ioc.pointdet", sleep=0.2))
        RE.record_interruptions = True
        seen, marks = [], {}

        def freeze_then_thaw():
            faults.freeze_heartbeat(prefix)
            marks["frozen"] = time.monotonic()
            wait_until(lambda: "_start_suspender" in seen, what="the suspension")
            marks["suspended"] = time.monotonic()
            time.sleep(0.5)
            faults.thaw_heartbeat(prefix)

        helper = threading.Thread(target=freeze_then_thaw)

        def hook(msg):
            seen.append(msg.command)
            if msg.command == "checkpoint" and seen.count("checkpoint") == 2:
                helper.start()

        RE.msg_hook = hook
        try:
            docs = run_collecting(RE, scan(bl))
        finally:
            helper.join()
            faults.thaw_heartbeat(prefix)
            source.stop()
    assert "_resume_from_suspender" in seen
    assert 0.5 < marks["suspended"] - marks["frozen"] < 4.0  # timeout 1.5 s after the last beat
    assert primary(docs) == reference
    interruptions = [d for n, d in docs if n == "descriptor" and d["name"] == "interruptions"]
    assert interruptions, "the suspension is recorded"
    events = [d for n, d in docs if n == "event" and d["descriptor"] == interruptions[0]["uid"]]
    assert "ioc.pointdet silent for" in str(events[0]["data"])
    assert next(d for n, d in docs if n == "stop")["exit_status"] == "success"
    assert source.errors == [] and reg.errors == []


def test_a_file_created_mid_scan_pauses_it_until_removed(RE, noiseless, tmp_path):
    bl = noiseless
    reference = primary(run_collecting(RE, scan(bl, num=5)))
    flag = tmp_path / "PAUSE"
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    checkpoints = []

    def hook(msg):
        if msg.command == "checkpoint":
            checkpoints.append(msg)
            if len(checkpoints) == 3:
                flag.touch()

    RE.msg_hook = hook
    with FilePausingAgent(RE, flag, "operator hold") as agent:
        with pytest.raises(RunEngineInterrupted):
            RE(scan(bl, num=5))
        assert RE.state == "paused"
        assert RE.resume() == ["operator hold"]
        assert RE.state == "paused"
        flag.unlink()
        RE.resume()
    assert RE.state == "idle"
    assert primary(docs) == reference
    assert agent.errors == []


def test_killing_the_ioc_suspends_and_restarting_it_resumes():
    """Our own beamline: the session's IOCs are shared with other tests.

    The plan runs in a thread and the IOC is restarted from the main thread: an IOC started
    from a thread that then ends is killed with it (the launcher's PR_SET_PDEATHSIG).
    """
    with Beamline(["temperature"]) as bl, Registry(timeout=1.5, check_period=0.1) as reg:
        ioc = bl.iocs["temperature"]
        source = HeartbeatSource.from_device(reg, bl.health["temperature"], "ioc.temp").start()
        wait_until(lambda: source.beats >= 2, what="two heartbeats from the IOC")
        alive = alive_signal(reg, "ioc.temp")
        assert alive.get() is True
        RE = RunEngine({}, context_managers=[])
        RE.install_suspender(SuspendOnExpired(reg, "ioc.temp"))
        seen, outcome = [], []
        RE.msg_hook = lambda msg: seen.append(msg.command)
        det = SynGauss("det", SynAxis(name="x"), "x", center=0, Imax=1)

        def run():
            try:
                outcome.append(RE(bp.count([det], num=8, delay=0.3)))
            except BaseException as exc:
                outcome.append(exc)

        runner = threading.Thread(target=run)
        runner.start()
        try:
            wait_until(lambda: seen.count("checkpoint") >= 2, what="the scan under way")
            ioc.kill()
            wait_until(lambda: "_start_suspender" in seen, what="the suspension")
            assert alive.get() is False
            ioc.restart()
            runner.join(60)  # CA reconnects after a few seconds, then two beats release it
        finally:
            if runner.is_alive():
                RE.halt()
            runner.join()
            source.stop()
            RE.clear_suspenders()
        assert "_resume_from_suspender" in seen
        assert isinstance(outcome[0], tuple), outcome
        assert alive.get() is True
        assert reg.entry("ioc.temp")["restarts"] == 1  # seen by the IOC's uptime
        assert source.errors == []


def test_alive_signal_works_with_bluesky_suspend_bool_low(RE, beamline):
    with Registry(timeout=1.5, check_period=0.1) as reg:
        source = HeartbeatSource.from_device(reg, beamline.health["beam"], "ioc.beam").start()
        wait_until(lambda: source.beats >= 1, what="a heartbeat")
        alive = alive_signal(reg, "ioc.beam")
        suspender = SuspendBoolLow(alive)
        RE.install_suspender(suspender)
        assert not suspender.tripped
        with faults.freeze_heartbeat(beamline.health["beam"].prefix):
            wait_until(lambda: suspender.tripped, timeout=5, what="the trip")
        wait_until(lambda: not suspender.tripped, timeout=5, what="the heartbeat back")
        source.stop()
