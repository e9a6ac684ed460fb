"""Statuses that are done before the engine sees them: the fast path answers as the slow one."""

from __future__ import annotations

import pytest
from bluesky import plan_stubs as bps
from bluesky.utils import FailedStatus, Msg
from ophyd import Signal, StatusBase


class CountingStatus(StatusBase):
    """A status that counts add_callback calls."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks_added = 0

    def add_callback(self, callback):
        self.callbacks_added += 1
        super().add_callback(callback)


class Made(Signal):
    """A signal whose trigger returns the status given, done or not."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.statuses: list[StatusBase] = []

    def trigger(self):
        return self.statuses.pop(0)


def _trigger_and_wait(device, times=1, results=None):
    yield Msg("open_run")
    for i in range(times):
        yield Msg("trigger", device, group=f"g{i}")
        answer = yield from bps.wait(group=f"g{i}")  # bluesky's: with watch=(), timeout=None
        if results is not None:
            results.append(answer)
    yield Msg("close_run")


def test_a_finished_status_is_settled_without_a_callback(RE):
    statuses = [CountingStatus(), CountingStatus()]
    for status in statuses:
        status.set_finished()
    device = Made(name="made")
    device.statuses = list(statuses)
    results = []
    RE(_trigger_and_wait(device, times=2, results=results))
    assert results == [True, True]
    assert [s.callbacks_added for s in statuses] == [0, 0]


def test_a_status_still_running_is_followed_by_its_callback(RE):
    later = CountingStatus()
    device = Made(name="made")
    device.statuses = [later]

    results = []

    def plan():
        yield Msg("open_run")
        yield Msg("trigger", device, group="g")
        later.set_finished()  # finishes between trigger and wait
        results.append((yield Msg("wait", None, group="g")))
        yield Msg("close_run")

    RE(plan())
    assert results == [True]
    assert later.callbacks_added == 1


def test_a_status_that_failed_before_the_wait_fails_it(RE, docs):
    failed = CountingStatus()
    failed.set_exception(RuntimeError("detector tripped"))
    device = Made(name="made")
    device.statuses = [failed]
    with pytest.raises(FailedStatus) as info:
        RE(_trigger_and_wait(device))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert failed.callbacks_added == 0
    assert RE.state == "idle" and docs[-1][1]["exit_status"] == "fail"


def test_the_waiting_hook_still_sees_a_group_that_finished(RE):
    done = StatusBase()
    done.set_finished()
    device = Made(name="made")
    device.statuses = [done]
    seen = []
    RE.waiting_hook = seen.append
    RE(_trigger_and_wait(device))
    assert seen == [{done}, None]  # a set, as bluesky gives it
