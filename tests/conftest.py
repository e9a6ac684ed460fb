"""Fixtures shared by the test suites: a bluesky RunEngine and ours, side by side."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.runengine.side_by_side")

from bluesky import RunEngine as BlueskyRunEngine  # noqa: E402
from ophyd.ophydobj import OphydObject  # noqa: E402

from runengine import RunEngine  # noqa: E402
from tests.runengine.side_by_side import (  # noqa: E402
    assert_same_outcome,
    make_devices,
    run_plan,
    validate_documents,
)


def threads_left(before: set, timeout: float = 5.0) -> list[str]:
    """Names of the threads started since ``before`` (``set(threading.enumerate())``) that
    are still alive after up to ``timeout`` s. Threads other tests left ending meanwhile do
    not count, as they would when comparing thread counts."""
    import threading
    import time

    deadline = time.monotonic() + timeout
    while (extra := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    return sorted(t.name for t in extra)


def fresh_engine(**kwargs) -> RunEngine:
    """A RunEngine for one test: no SIGINT handler, nothing else installed."""
    return RunEngine({}, context_managers=[], **kwargs)


def leave_idle(engine: RunEngine) -> None:
    """After a test: no suspenders, not panicked, idle, whatever the test left."""
    engine.clear_suspenders()
    if engine.state.is_panicked:
        engine.all_is_well()
    if not engine.state.is_idle:
        engine.halt()


@pytest.fixture
def RE():
    """Our RunEngine, made for this test and left idle after it."""
    engine = fresh_engine()
    yield engine
    leave_idle(engine)


@pytest.fixture
def docs(RE):
    """Every ``(name, doc)`` the test's RE emits."""
    collected: list = []
    RE.subscribe(lambda name, doc: collected.append((name, doc)))
    return collected


def _reset(RE) -> None:
    """Back to a freshly made engine: only the versions in md, no hooks or preprocessors."""
    if not RE.state.is_idle:
        RE.halt()
    versions = RE.md["versions"]
    RE.md.clear()
    RE.md["versions"] = versions
    RE.preprocessors.clear()
    RE.msg_hook = RE.state_hook = RE.waiting_hook = None
    RE.clear_suspenders()
    RE.record_interruptions = False
    RE.rewindable = True
    RE.ignore_callback_exceptions = False


@pytest.fixture(scope="session")
def _engines():
    # bluesky's engine sets the global bluesky event loop; ours, made last, sets it again.
    return BlueskyRunEngine({}, context_managers=[]), RunEngine({}, context_managers=[])


def _hash_by_name(obj) -> int:
    return hash(obj.name)


@pytest.fixture
def engine_pair(_engines, monkeypatch):
    """``(bluesky's RunEngine, ours)``, reset before and after the test.

    Every document ours emits during the test is validated at its end (event-model's schemas,
    references, counts), whichever way the test ran its plans.

    bluesky's plans iterate over sets of devices (the motors of a cycler), so the order of
    their messages and of ``start['motors']`` follows ``hash(device)``, an ``id()``. During
    these tests ophyd objects hash by name instead: the same order on both engines.
    """
    monkeypatch.setattr(OphydObject, "__hash__", _hash_by_name)
    for RE in _engines:
        _reset(RE)
    ours = _engines[1]
    emitted: list = []  # every document of ours in this test, validated at the end
    token = ours.subscribe(lambda name, doc: emitted.append((name, doc)))
    yield _engines
    ours.unsubscribe(token)
    for RE in _engines:
        _reset(RE)
    validate_documents(emitted)


@pytest.fixture
def compare(engine_pair, tmp_path):
    """``compare(make_plan, **md)``: run ``make_plan(hw)`` on both engines; assert the same.

    Returns ``(theirs, ours)``: the two :class:`~tests.runengine.side_by_side.Outcome`.
    """
    theirs_RE, ours_RE = engine_pair

    def compare(make_plan, *, assets=False, check=None, **md):
        """``check``: keyword arguments of assert_same_outcome."""
        path = tmp_path if assets else None
        theirs = run_plan(theirs_RE, make_plan, hw=make_devices(path), **md)
        ours = run_plan(ours_RE, make_plan, hw=make_devices(path), **md)
        assert_same_outcome(theirs, ours, **(check or {}))
        return theirs, ours

    return compare


def pytest_sessionfinish(session, exitstatus):
    """No IOC process may outlive the suite: the launcher stops every IOC it started."""
    from runengine.devices.launcher import stop_all
    from tests.devices.procs import ioc_children

    left = ioc_children()
    stop_all()
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nIOC processes left running after the tests (now stopped): {left}")


@pytest.fixture(scope="session")
def beamline():
    """The whole simulated beamline (every IOC on loopback), started once per test session."""
    from runengine.devices.beamline import Beamline

    with Beamline(seed=0) as bl:
        yield bl
