"""The stepping core, driven directly: no engine, no threads, no event loop."""

import pytest
from bluesky.utils import Msg

from runengine.stepper import REPLAYED, MessageCache, PlanFinished, PlanStack, replay


def echo_plan(log):
    for cmd in ("a", "b", "c"):
        log.append((cmd, (yield Msg(cmd))))
    return "done"


def test_stack_sends_responses_and_reports_return():
    log = []
    stack = PlanStack(echo_plan(log))
    assert stack.advance().command == "a"
    assert stack.advance(1).command == "b"
    assert stack.advance(2).command == "c"
    with pytest.raises(PlanFinished) as info:
        stack.advance(3)
    assert info.value.value == "done"
    assert log == [("a", 1), ("b", 2), ("c", 3)]


def test_pushed_generator_runs_first_and_plan_below_gets_what_it_is_owed():
    log = []
    stack = PlanStack(echo_plan(log))
    assert stack.advance().command == "a"
    stack.push(replay([Msg("x"), Msg("y")]), owed="owed-to-plan")
    assert stack.advance().command == "x"
    assert stack.advance("rx").command == "y"
    assert stack.advance("ry").command == "b"
    assert log == [("a", "owed-to-plan")]


def test_replayed_marker_passes_the_last_replayed_response_down():
    log = []
    stack = PlanStack(echo_plan(log))
    stack.advance()
    stack.push(replay([Msg("a")]), owed=REPLAYED)
    assert stack.advance().command == "a"
    assert stack.advance("fresh").command == "b"
    assert log == [("a", "fresh")]


def test_exception_in_pushed_generator_is_thrown_into_plan_below():
    def catching():
        try:
            yield Msg("first")
        except ValueError as err:
            yield Msg("caught", None, str(err))

    def failing():
        yield Msg("boom")
        raise ValueError("from above")

    stack = PlanStack(catching())
    stack.advance()
    stack.push(failing())
    assert stack.advance().command == "boom"
    msg = stack.advance()
    assert msg.command == "caught" and msg.args == ("from above",)


def test_exception_from_bottom_plan_propagates():
    def plan():
        yield Msg("a")
        raise KeyError("k")

    stack = PlanStack(plan())
    stack.advance()
    with pytest.raises(KeyError):
        stack.advance()
    assert len(stack) == 0


def test_close_reports_generators_that_yield_on_close():
    def stubborn():
        while True:
            try:
                yield Msg("a")
            except GeneratorExit:
                yield Msg("refuse")

    stack = PlanStack(stubborn())
    stack.advance()
    assert len(stack.close()) == 1


def test_the_start_of_a_call_is_a_checkpoint():
    cache = MessageCache()
    assert cache.resumable
    assert cache.record(Msg("set", "m", 1))
    assert [m.command for m in cache.take()] == ["set"]


def test_a_cleared_checkpoint_stays_cleared():
    cache = MessageCache()
    cache.clear()
    assert not cache.resumable
    assert not cache.record(Msg("set", "m", 1))
    cache.checkpoint()
    assert not cache.resumable


def test_cache_records_cacheable_messages_until_checkpoint():
    cache = MessageCache()
    cache.checkpoint()
    assert cache.record(Msg("set", "m", 1))
    assert not cache.record(Msg("open_run"))
    assert cache.record(Msg("trigger", "d"))
    assert [m.command for m in cache.msgs] == ["set", "trigger"]
    cache.checkpoint()
    assert cache.msgs == []


def test_cache_respects_rewindable_and_clear_is_sticky():
    cache = MessageCache()
    cache.checkpoint()
    cache.rewindable = False
    assert not cache.record(Msg("set", "m", 1))
    cache.rewindable = True
    cache.clear()
    assert not cache.resumable
    cache.checkpoint()
    assert not cache.resumable
    assert not cache.record(Msg("set", "m", 1))
    assert cache.take() == []


def test_take_empties_the_cache_for_replayed_messages_to_be_recorded_again():
    cache = MessageCache()
    cache.checkpoint()
    cache.record(Msg("sleep", None, 1))
    msgs = cache.take()
    assert [m.command for m in msgs] == ["sleep"]
    assert cache.msgs == []
