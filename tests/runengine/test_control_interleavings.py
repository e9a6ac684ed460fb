"""The control plane under random interleavings: control calls from several threads at once.

Each trial runs short ``ophyd.sim`` scans while chaos threads call pause (deferred or not),
resume, stop, abort, halt, panic, all_is_well and ``RE(plan)`` at random moments, and send
real SIGINTs to the process. Seeded: a failure names its trial's seed. Invariants after every
trial: the engine settles idle or paused within a bound; every control call returned or
raised a refusal within a bound; every state change happened on the loop thread; every run
opened got exactly one stop; seq_nums have no duplicate and no gap; the next ``RE(plan)``
works.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from collections import Counter, defaultdict

import pytest
from bluesky import plans as bp
from bluesky.suspenders import SuspendBoolHigh
from bluesky.utils import Msg, RunEngineInterrupted
from ophyd import Signal
from ophyd.sim import SynAxis, SynGauss

from runengine import EngineBusy, RunEngine, TransitionError

TRIALS = int(os.environ.get("RUNENGINE_INTERLEAVING_TRIALS", "120"))
SETTLE = 15.0  # s: a bound on how long the engine may take to come to rest
CALL_BOUND = 15.0  # s: a bound on any control call (they block at most for a plan segment)
EXPECTED = (TransitionError, RuntimeError, RunEngineInterrupted)


class Trial:
    """One trial's engine, devices, documents and what its threads saw."""

    def __init__(self, seed: int, sigint: bool) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.sigint = sigint
        self.RE = RunEngine({}, context_managers=None if sigint else [])
        self.motor = SynAxis(name="motor")
        self.motor.delay = 0.002
        self.det = SynGauss("det", self.motor, "motor", center=0, Imax=1, sigma=1)
        self.docs: list[tuple[str, dict]] = []
        self.RE.subscribe(lambda name, doc: self.docs.append((name, doc)))
        self.hook_threads: set[int] = set()
        self.RE.state_hook = lambda new, old: self.hook_threads.add(threading.get_ident())
        self.surprises: list[str] = []
        self.slow_calls: list[str] = []
        self.stop_chaos = threading.Event()
        self.beam = Signal(name="beam", value=0)
        self.RE.install_suspender(SuspendBoolHigh(self.beam, sleep=0.01))

    def plan(self):
        kind = self.rng.choice(["scan", "count", "raw"])
        if kind == "scan":
            return bp.scan([self.det], self.motor, -1, 1, self.rng.randint(3, 8))
        if kind == "count":
            return bp.count([self.det], num=self.rng.randint(2, 6), delay=0.003)
        return [
            Msg("open_run"),
            Msg("sleep", None, 0.01),
            Msg("checkpoint"),
            Msg("sleep", None, 0.01),
            Msg("close_run"),
        ]

    def call(self, name: str, func, *args) -> None:
        """Make one control call; anything but a refusal or an interruption is a surprise."""
        started = time.monotonic()
        try:
            func(*args)
        except EXPECTED:
            pass
        except EngineBusy as err:  # the loop is never blocked here: busy would be a bug
            self.surprises.append(f"{name}: {err!r}")
        except Exception as err:
            self.surprises.append(f"{name}: {err!r}")
        if time.monotonic() - started > CALL_BOUND:
            self.slow_calls.append(name)

    def chaos(self, rng: random.Random) -> None:
        RE = self.RE
        actions = [
            ("pause", lambda: RE.request_pause(defer=False)),
            ("defer", lambda: RE.request_pause(defer=True)),
            ("named", lambda: RE.request_pause(True, "agent", lambda: rng.random() < 0.7)),
            ("resume", RE.resume),
            ("stop", RE.stop),
            ("abort", lambda: RE.abort("chaos")),
            ("halt", RE.halt),
            ("panic", RE.panic),
            ("all_is_well", RE.all_is_well),
            ("run", lambda: RE(self.plan())),
            ("trip", lambda: self.beam.put(1)),
            ("clear", lambda: self.beam.put(0)),
        ]
        if self.sigint:
            actions.append(("sigint", lambda: os.kill(os.getpid(), signal.SIGINT)))
        weights = [6, 4, 2, 4, 2, 2, 1, 1, 3, 2, 1, 2] + ([3] if self.sigint else [])
        while not self.stop_chaos.is_set():
            name, action = rng.choices(actions, weights)[0]
            self.call(name, action)
            time.sleep(rng.uniform(0, 0.02))

    def drive(self, duration: float) -> None:
        """The main thread: run plans, and decide when paused, until ``duration`` is over."""
        RE = self.RE
        rng = random.Random(self.seed + 1)
        threads = [
            threading.Thread(target=self.chaos, args=(random.Random(self.seed * 7 + i),))
            for i in range(3)
        ]
        for thread in threads:
            thread.start()
        end = time.monotonic() + duration
        while time.monotonic() < end:
            if RE.state == "idle":
                self.call("run (main)", lambda: RE(self.plan()))
            elif RE.state == "paused":
                verb = rng.choice(["resume", "resume", "resume", "stop", "abort", "halt"])
                self.call(f"{verb} (main)", getattr(RE, verb))
            elif RE.state == "panicked":
                self.call("all_is_well (main)", RE.all_is_well)
            time.sleep(0.002)
        self.stop_chaos.set()
        deadline = time.monotonic() + CALL_BOUND
        for thread in threads:
            # A thread may still be in a resume that waits out a suspension: lift it.
            while thread.is_alive() and time.monotonic() < deadline:
                self.beam.put(0)
                thread.join(0.05)
            assert not thread.is_alive(), f"seed {self.seed}: a control call never returned"
        self.beam.put(0)

    def settle(self) -> str:
        """Wait for rest (idle or paused; panicked lifted); return the state it settled in."""
        RE = self.RE
        deadline = time.monotonic() + SETTLE
        while RE.state not in ("idle", "paused"):
            if RE.state == "panicked":
                RE.all_is_well()
            assert time.monotonic() < deadline, f"seed {self.seed}: stuck in {RE.state}"
            time.sleep(0.005)
        return str(RE.state)

    def finish(self) -> None:
        RE = self.RE
        rested = self.settle()
        if rested == "paused":
            RE.abort("end of trial")
        assert RE.state == "idle", f"seed {self.seed}: {RE.state} after abort"
        self.RE.state_hook = None

    def check(self) -> None:
        seed = self.seed
        assert not self.surprises, f"seed {seed}: {self.surprises}"
        assert not self.slow_calls, f"seed {seed}: calls over {CALL_BOUND} s: {self.slow_calls}"
        assert self.hook_threads <= {self.RE._th.ident}, f"seed {seed}: state written off-loop"
        starts = [doc["uid"] for name, doc in self.docs if name == "start"]
        stops = Counter(doc["run_start"] for name, doc in self.docs if name == "stop")
        assert all(stops[uid] == 1 for uid in starts), f"seed {seed}: a run without one stop"
        assert set(stops) <= set(starts)
        streams = {doc["uid"]: doc["name"] for name, doc in self.docs if name == "descriptor"}
        seq_nums = defaultdict(list)
        for name, doc in self.docs:
            if name == "event":
                seq_nums[doc["descriptor"], streams[doc["descriptor"]]].append(doc["seq_num"])
        for key, nums in seq_nums.items():
            assert nums == list(range(1, len(nums) + 1)), f"seed {seed}: {key} seq_nums {nums}"
        before = len(self.docs)
        self.RE.clear_suspenders()
        assert self.RE(bp.count([self.det], num=2))
        assert [name for name, _ in self.docs[before:]] == [
            "start",
            "descriptor",
            "event",
            "event",
            "stop",
        ]


@pytest.fixture
def quiet_sigint():
    """Presses that land between two calls (no engine handler in place) do nothing."""
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGINT, previous)


def run_trials(count: int, first_seed: int, sigint: bool) -> None:
    for seed in range(first_seed, first_seed + count):
        trial = Trial(seed, sigint)
        trial.drive(duration=trial.rng.uniform(0.1, 0.4))
        trial.finish()
        trial.check()


def test_random_control_calls_from_several_threads(quiet_sigint):
    run_trials(TRIALS, first_seed=1000, sigint=False)


def test_random_control_calls_and_real_sigints(quiet_sigint):
    run_trials(TRIALS // 3, first_seed=5000, sigint=True)


def test_random_control_calls_with_a_tiny_switch_interval(quiet_sigint):
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        run_trials(max(10, TRIALS // 6), first_seed=9000, sigint=False)
    finally:
        sys.setswitchinterval(interval)
