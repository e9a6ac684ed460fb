"""The heartbeat registry, SuspendOnExpired and RegistryBeat (spec/agents.md §5.2, tests 1-9).

Timing runs on a fake clock driven by hand: ``check()`` is the checker's tick.
"""

import threading
import time

import pytest
from bluesky import plans as bp
from bluesky.utils import Msg
from ophyd.sim import SynAxis, SynGauss

from runengine import FailedPause, RunEngine, RunEngineInterrupted
from runengine.heartbeats import (
    OpCode,
    Registry,
    RegistryBeat,
    SuspendOnExpired,
    describe_change,
)
from tests.conftest import threads_left


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, dt):
        self.t += dt


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def reg(clock):
    return Registry(timeout=5.0, check_period=1.0, clock=clock)


def record(reg, **kw):
    events = []
    reg.subscribe(lambda addr, old, new: events.append((addr, old, new)), **kw)
    return events


def commands_of(RE):
    seen = []
    RE.msg_hook = lambda msg: seen.append(msg.command)
    return seen


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def devices():
    motor = SynAxis(name="motor")
    return motor, SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)


# ---- 1. expiry timing ----------------------------------------------------------------------
def test_silence_of_exactly_timeout_does_not_expire_but_a_bit_more_does(reg, clock):
    reg.beat("a")
    clock.advance(5.0)
    assert reg.check() == []
    assert reg.status()["a"]["expired"] is False
    clock.advance(1e-6)
    assert reg.check() == ["a"]
    assert reg.status()["a"]["expired"] is True


@pytest.mark.parametrize("phase", [0.0, 0.25, 0.5, 0.999])
def test_detection_latency_stays_within_timeout_plus_check_period(clock, phase):
    reg = Registry(timeout=5.0, check_period=1.0, clock=clock)
    expired_at = []
    reg.subscribe(lambda a, old, new: new["expired"] and expired_at.append(clock()))
    clock.advance(phase)
    reg.beat("a")
    last_beat = clock()
    clock.advance(-phase)
    for _ in range(10):  # the checker ticks on whole periods; the beat fell in between
        clock.advance(1.0)
        reg.check()
    latency = expired_at[0] - last_beat
    assert 5.0 < latency <= 6.0


# ---- 2. op codes, events, time_expired -----------------------------------------------------
def test_status_has_the_ocs_layout_and_codes_are_replaced_not_merged(reg):
    reg.beat("obs.fake", {"acq": OpCode.RUNNING, "delay": 1}, agent_class="FakeDataAgent")
    reg.beat("obs.fake", {"acq": OpCode.SUCCEEDED})
    entry = reg.status()["obs.fake"]
    assert set(entry) == {
        "expired",
        "time_expired",
        "last_updated",
        "op_codes",
        "agent_class",
        "agent_address",
    }
    assert entry["op_codes"] == {"acq": 5}  # 'delay' vanished (OCS merges and keeps it)
    assert type(entry["op_codes"]["acq"]) is int
    assert entry["agent_class"] == "FakeDataAgent"
    assert entry["agent_address"] == "obs.fake"
    assert entry["time_expired"] is None
    assert abs(entry["last_updated"] - time.time()) < 5  # a wall time, as in OCS


def test_expiry_sets_codes_expired_once_and_the_next_beat_restores_them(reg, clock):
    events = record(reg)
    reg.beat("a", {"acq": OpCode.RUNNING, "cal": OpCode.NONE})
    for _ in range(3):
        reg.beat("a")  # plain beats: no change event
        clock.advance(1)
    clock.advance(5.5)
    reg.check()
    first = reg.status()["a"]
    assert first["op_codes"] == {"acq": OpCode.EXPIRED, "cal": OpCode.EXPIRED}
    for _ in range(5):  # OCS re-stamps time_expired every loop; ours stays put
        clock.advance(1)
        reg.check()
        assert reg.status()["a"]["time_expired"] == first["time_expired"]
    assert first["time_expired"] - first["last_updated"] == pytest.approx(6.5)
    reg.beat("a")
    assert reg.status()["a"]["op_codes"] == {"acq": 3, "cal": 1}
    kinds = [describe_change(old, new) for _, old, new in events]
    assert kinds == ["new", "expired", "revived"]
    assert events[1][2]["expired"] and events[2][2]["time_expired"] is None


def test_subscriber_errors_are_reported_and_do_not_stop_the_others(reg, clock):
    seen = []

    def broken(addr, old, new):
        raise ValueError("boom")

    reg.subscribe(broken)
    reg.subscribe(lambda addr, old, new: seen.append(addr))
    reg.beat("a")
    assert seen == ["a"]
    assert [str(e) for e in reg.errors] == ["boom"]


def test_the_checker_thread_expires_on_real_time_and_stops_cleanly():
    before = set(threading.enumerate())
    expired = threading.Event()
    with Registry(timeout=0.2, check_period=0.05) as reg:
        reg.subscribe(lambda a, old, new: new["expired"] and expired.set())
        assert reg.running
        reg.beat("a")
        assert expired.wait(2)
    assert not reg.running
    assert threads_left(before) == []


# ---- 3. mid-plan expiry ---------------------------------------------------------------------
def test_mid_plan_expiry_suspends_runs_pre_and_post_plans_and_replays(RE, reg, clock):
    motor, det = devices()
    log = []

    def pre():
        log.append("pre")
        yield Msg("null")

    def post():
        log.append("post")
        yield Msg("null")

    reg.beat("ioc.det")
    suspender = SuspendOnExpired(reg, "ioc.det", sleep=0.2, pre_plan=pre, post_plan=post)
    RE.install_suspender(suspender)
    RE.record_interruptions = True
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    seen = []
    suspended = threading.Event()

    def hook(msg):
        seen.append(msg.command)
        if msg.command == "checkpoint" and seen.count("checkpoint") == 3:
            clock.advance(6)  # the detector's IOC went silent two points ago
            reg.check()
        if msg.command == "_start_suspender":
            suspended.set()

    RE.msg_hook = hook
    released = []

    def heal():
        assert suspended.wait(5)
        time.sleep(0.1)
        assert RE.state == "running" and "_resume_from_suspender" not in seen
        reg.beat("ioc.det")
        time.sleep(0.1)
        assert "_resume_from_suspender" not in seen  # one beat is not steady yet
        reg.beat("ioc.det")
        released.append(time.monotonic())

    helper = threading.Thread(target=heal)
    helper.start()
    RE(bp.scan([det], motor, -1, 1, 5))
    helper.join()
    assert log == ["pre", "post"]
    assert seen.index("_resume_from_suspender") > seen.index("_start_suspender")
    primary = [d for n, d in docs if n == "event" and d["data"].get("motor") is not None]
    assert [d["seq_num"] for d in primary] == [1, 2, 3, 4, 5]
    assert [d["data"]["motor"] for d in primary] == [-1, -0.5, 0, 0.5, 1]
    descriptors = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    interruptions = [
        d for n, d in docs if n == "event" and descriptors[d["descriptor"]] == "interruptions"
    ]
    assert interruptions and "ioc.det silent for 6.0 s" in str(interruptions[0]["data"])
    assert next(d for n, d in docs if n == "stop")["exit_status"] == "success"


def test_the_justification_names_the_silent_agents_and_for_how_long(reg, clock):
    reg.beat("a")
    reg.beat("b")
    suspender = SuspendOnExpired(reg, ["a", "b", "c"], require_seen=True)
    suspender.install(RunEngine({}, context_managers=[]))
    clock.advance(7.25)
    reg.beat("b")
    reg.check()
    assert suspender.tripped
    just = suspender._get_justification()
    assert just == "Heartbeat lost: a silent for 7.2 s; c never seen"
    suspender.remove()


# ---- 4. flapping -------------------------------------------------------------------------------
def test_flapping_beats_do_not_oscillate_the_engine(RE, reg, clock):
    reg.beat("a")
    RE.install_suspender(SuspendOnExpired(reg, "a", resume_after_beats=3))
    seen = commands_of(RE)
    flapped = threading.Event()

    def flap():
        wait_until(lambda: "checkpoint" in seen)
        clock.advance(6)
        reg.check()
        wait_until(lambda: "_start_suspender" in seen)
        for _ in range(4):  # two beats, then silence: never three in a row
            reg.beat("a")
            reg.beat("a")
            clock.advance(6)
            reg.check()
            time.sleep(0.05)
        flapped.set()
        for _ in range(3):
            reg.beat("a")

    helper = threading.Thread(target=flap)
    helper.start()
    RE([Msg("checkpoint"), Msg("sleep", None, 0.2), Msg("null")])
    helper.join()
    assert flapped.is_set()
    assert seen.count("_start_suspender") == 1
    assert seen.count("_resume_from_suspender") == 1


# ---- 5. tripped before the plan starts --------------------------------------------------------
def test_a_suspender_tripped_at_the_start_holds_the_plan_until_the_beats_come(RE, reg):
    suspender = SuspendOnExpired(reg, "never.yet")  # never seen: tripped at install
    RE.install_suspender(suspender)
    assert suspender.tripped
    beats = []

    def come_alive():
        time.sleep(0.3)
        for _ in range(2):
            beats.append(time.monotonic())
            reg.beat("never.yet")

    started = []
    RE.msg_hook = lambda msg: msg.command == "null" and started.append(time.monotonic())
    helper = threading.Thread(target=come_alive)
    helper.start()
    RE([Msg("checkpoint"), Msg("null")])
    helper.join()
    assert started and started[0] >= beats[-1]
    assert not suspender.tripped


# ---- 6. two suspenders -----------------------------------------------------------------------
def step(log, label, duration=0.05):
    def plan():
        log.append(f"{label} begins")
        yield Msg("sleep", None, duration)
        log.append(f"{label} ends")

    return plan


def two_suspenders(RE, reg, log, duration=0.05):
    for addr in ("a", "b"):
        reg.beat(addr)
        RE.install_suspender(
            SuspendOnExpired(
                reg,
                addr,
                pre_plan=step(log, f"pre {addr}", duration),
                post_plan=step(log, f"post {addr}", duration),
            )
        )


def test_two_suspenders_tripped_together_hold_the_plan_until_both_clear(RE, reg, clock):
    log = []
    two_suspenders(RE, reg, log)
    seen = commands_of(RE)

    def drive():
        wait_until(lambda: "checkpoint" in seen)
        clock.advance(6)
        reg.check()  # both expire in one check
        wait_until(lambda: seen.count("wait_for") >= 1)
        reg.beat("a")
        reg.beat("a")
        time.sleep(0.3)
        log.append("a back")
        reg.beat("b")
        reg.beat("b")

    helper = threading.Thread(target=drive)
    helper.start()
    RE([Msg("checkpoint"), Msg("sleep", None, 0.1), Msg("null")])
    helper.join()
    assert sorted(e for e in log if e.startswith("pre")) == [
        "pre a begins",
        "pre a ends",
        "pre b begins",
        "pre b ends",
    ]
    assert "_resume_from_suspender" in seen
    assert log.index("a back") < log.index("post a begins")  # b still held the plan
    assert log.index("a back") < log.index("post b begins")


def test_a_second_trip_during_a_pre_plan_does_not_interleave_the_plans(RE, reg, clock):
    log = []
    two_suspenders(RE, reg, log, duration=0.3)

    def drive():
        wait_until(lambda: "pre a begins" in log)
        reg.beat("a")
        clock.advance(6)
        reg.check()  # b expires while a's pre_plan runs
        time.sleep(0.5)
        for addr in ("a", "a", "b", "b"):
            reg.beat(addr)

    reg.beat("b")
    helper = threading.Thread(target=drive)

    def plan():
        yield Msg("checkpoint")
        clock.advance(6)
        reg.beat("b")
        reg.check()  # a expires
        helper.start()
        yield Msg("sleep", None, 0.2)

    RE(plan())
    helper.join()
    assert log[:2] == ["pre a begins", "pre a ends"]
    assert log.index("post b begins") > log.index("post a ends") or log.index(
        "post a begins"
    ) > log.index("post b ends")


# ---- 7. removal and no checkpoint -------------------------------------------------------------
def test_removing_a_tripped_suspender_releases_the_plan(RE, reg, clock):
    reg.beat("a")
    suspender = SuspendOnExpired(reg, "a")
    RE.install_suspender(suspender)
    seen = commands_of(RE)

    def drive():
        wait_until(lambda: "checkpoint" in seen)
        clock.advance(6)
        reg.check()
        wait_until(lambda: "wait_for" in seen)
        RE.remove_suspender(suspender)

    helper = threading.Thread(target=drive)
    helper.start()
    RE([Msg("checkpoint"), Msg("sleep", None, 0.1), Msg("null")])
    helper.join()
    assert "_resume_from_suspender" in seen and RE.state == "idle"
    assert reg.status()["a"]["expired"]  # it was the removal, not a beat


def test_expiry_before_any_checkpoint_suspends_and_replays_from_the_start(RE, reg, clock):
    """As in bluesky, the start of a call is a checkpoint: an expiry before the plan's first
    one suspends it, and when the agent beats again the plan replays from its start."""
    reg.beat("a")
    RE.install_suspender(SuspendOnExpired(reg, "a"))
    seen = commands_of(RE)
    docs = []

    def plan():
        yield Msg("open_run")
        if "_start_suspender" not in seen:
            clock.advance(6)
            reg.check()  # a expires
            for delay in (0.3, 0.35):  # two beats in a row: the agent is back
                threading.Timer(delay, reg.beat, ["a"]).start()
        yield Msg("sleep", None, 0.2)
        yield Msg("close_run")

    RE(plan(), lambda name, doc: docs.append((name, doc)))
    assert seen.count("_start_suspender") == 1 and seen.count("sleep") == 2
    assert [name for name, _ in docs] == ["start", "stop"]
    assert docs[-1][1]["exit_status"] == "success" and RE.state == "idle"


def test_expiry_after_clear_checkpoint_aborts_with_failed_pause(RE, reg, clock):
    reg.beat("a")
    RE.install_suspender(SuspendOnExpired(reg, "a"))
    docs, thrown = [], []

    def plan():
        yield Msg("open_run")
        yield Msg("clear_checkpoint")
        clock.advance(6)
        reg.check()
        try:
            yield Msg("sleep", None, 0.2)
        except Exception as exc:
            thrown.append(exc)
            raise
        yield Msg("close_run")

    with pytest.raises(RunEngineInterrupted):
        RE(plan(), lambda name, doc: docs.append((name, doc)))
    assert len(thrown) == 1 and isinstance(thrown[0], FailedPause)
    assert docs[-1][1]["exit_status"] == "abort"
    assert RE.state == "idle"


# ---- 8. the loop busy --------------------------------------------------------------------------
def test_a_trip_while_the_engine_loop_is_blocked_is_not_lost(RE, reg, clock):
    reg.beat("a")
    RE.install_suspender(SuspendOnExpired(reg, "a"))
    seen = []
    blocked = threading.Event()

    def hook(msg):
        seen.append(msg.command)
        if msg.command == "null" and not blocked.is_set():
            blocked.set()
            time.sleep(0.4)  # something hogging the engine's thread

    RE.msg_hook = hook

    def drive():
        assert blocked.wait(5)
        time.sleep(0.05)
        clock.advance(6)
        reg.check()  # from another thread, while the loop is blocked
        wait_until(lambda: "wait_for" in seen)
        reg.beat("a")
        reg.beat("a")

    helper = threading.Thread(target=drive)
    helper.start()
    RE([Msg("open_run"), Msg("checkpoint"), Msg("null"), Msg("sleep", None, 0.2), Msg("close_run")])
    helper.join()
    assert "_start_suspender" in seen and "_resume_from_suspender" in seen


# ---- 9. restarts, never seen, grace ----------------------------------------------------------
def test_a_new_session_id_is_a_restart_event_and_can_trip(reg, clock):
    events = record(reg)
    RE = RunEngine({}, context_managers=[])
    suspender = SuspendOnExpired(reg, "ioc", suspend_on_restart=True, resume_after_beats=2)
    reg.beat("ioc", session_id="s1")
    suspender.install(RE)
    reg.beat("ioc", session_id="s1")
    assert not suspender.tripped
    reg.beat("ioc", session_id="s2")
    assert [describe_change(o, n) for _, o, n in events] == ["new", "restart"]
    assert reg.entry("ioc")["restarts"] == 1
    assert suspender.tripped and "ioc restarted" in suspender._get_justification()
    reg.beat("ioc", session_id="s2")
    assert not suspender.tripped
    suspender.remove()


@pytest.mark.parametrize("require_seen", [True, False])
def test_a_never_seen_address_follows_require_seen(reg, require_seen):
    suspender = SuspendOnExpired(reg, "ghost", require_seen=require_seen)
    suspender.install(RunEngine({}, context_managers=[]))
    assert suspender.tripped is require_seen
    assert reg.health("ghost") == "unknown"
    suspender.remove()


def test_a_restarted_registry_with_a_grace_period_trips_nothing_spuriously(clock):
    reg = Registry(timeout=5.0, clock=clock, grace_period=3.0)
    suspender = SuspendOnExpired(reg, ["a", "b"])
    suspender.install(RunEngine({}, context_managers=[]))
    assert not suspender.tripped  # nobody has beaten yet: within the grace period
    clock.advance(1)
    reg.beat("a")
    reg.check()
    assert not suspender.tripped
    clock.advance(2.5)  # grace over, "b" still never seen
    reg.check()
    assert suspender.tripped and "b never seen" in suspender._get_justification()
    suspender.remove()


def test_required_op_codes_trip_while_violated(reg):
    suspender = SuspendOnExpired(reg, "det", require_ops={"det": {"acq": {OpCode.RUNNING}}})
    reg.beat("det", {"acq": OpCode.RUNNING})
    suspender.install(RunEngine({}, context_managers=[]))
    assert not suspender.tripped
    reg.beat("det", {"acq": OpCode.FAILED})
    assert suspender.tripped
    assert "det op 'acq' is FAILED (wants RUNNING)" in suspender._get_justification()
    reg.beat("det", {"acq": OpCode.RUNNING})
    assert not suspender.tripped
    suspender.remove()


# ---- the RunEngine's own heartbeat ------------------------------------------------------------
def test_the_engine_beats_its_state_as_op_codes(RE):
    reg = Registry(timeout=5.0)
    codes = []
    reg.subscribe(lambda a, old, new: codes.append(new["op_codes"]["run"]))
    beat = RegistryBeat(RE, reg, address="re.main", period=0.02)
    with beat:
        wait_until(lambda: codes)
        RE([Msg("open_run"), Msg("sleep", None, 0.3), Msg("close_run")])
        wait_until(lambda: codes[-1] == OpCode.SUCCEEDED)

        def failing():
            yield Msg("open_run")
            raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            RE(failing())
        wait_until(lambda: codes[-1] == OpCode.FAILED)
    assert codes[0] == OpCode.NONE
    assert OpCode.RUNNING in codes
    assert reg.status()["re.main"]["agent_class"] == "RunEngine"
    assert beat.errors == []


def test_the_engine_expires_when_its_loop_stalls(RE):
    before = set(threading.enumerate())
    with Registry(timeout=0.3, check_period=0.05) as reg, RegistryBeat(RE, reg, period=0.05):
        wait_until(lambda: reg.health("re.main") == "alive")
        RE._loop.call_soon_threadsafe(time.sleep, 1.0)  # the engine's loop stalls
        wait_until(lambda: reg.health("re.main") == "expired", timeout=3)
        wait_until(lambda: reg.health("re.main") == "alive", timeout=3)
    assert threads_left(before) == []


def test_the_engine_beats_on_its_own_loop_with_no_thread_of_its_own(RE):
    reg = Registry(timeout=5.0)
    beaters = []
    reg.beat = lambda *a, **k: beaters.append(threading.current_thread().name)
    before = set(threading.enumerate())
    with RegistryBeat(RE, reg, period=0.01):
        wait_until(lambda: len(beaters) >= 3)
        assert set(threading.enumerate()) - before == set()
    assert set(beaters) == {"bluesky-run-engine"}


def test_after_stop_returns_no_beat_comes_and_one_start_beats_once_per_period(RE):
    """start() and stop() from several threads at random: whatever the interleaving, a final
    stop() leaves no beat to come, and a final start() one chain of beats, not several."""
    import random

    reg = Registry(timeout=5.0)
    beats = []
    reg.beat = lambda *a, **k: beats.append(time.monotonic())
    beat = RegistryBeat(RE, reg, period=0.05)

    def toggle(seed):
        rng = random.Random(seed)
        for _ in range(40):
            (beat.start if rng.random() < 0.5 else beat.stop)()
            time.sleep(rng.random() * 0.002)

    for trial in range(3):
        threads = [threading.Thread(target=toggle, args=(trial * 10 + i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        beat.stop()
        settled = len(beats)
        time.sleep(0.2)  # four periods
        assert len(beats) == settled, "a beat came after stop() returned"
        beat.start()
        time.sleep(0.5)  # ten periods: one chain beats about ten times, two chains twenty
        beat.stop()
        assert len(beats) - settled <= 13, f"{len(beats) - settled} beats in ten periods"
    assert beat.errors == []
