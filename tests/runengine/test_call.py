"""The call context's seam for features: replay policies said once, and hooks per call."""

from __future__ import annotations

import pytest
from bluesky.utils import InvalidCommand, Msg, RunEngineInterrupted
from hypothesis import given, settings
from hypothesis import strategies as st

from runengine.commands.spec import COMMAND_SPECS, command
from tests.conftest import fresh_engine, leave_idle
from tests.runengine import call_kit
from tests.runengine.call_kit import COUNTS, HEARD, KIT


@pytest.fixture
def RE():
    call_kit.reset()
    engine = fresh_engine(extensions=[KIT])
    yield engine
    leave_idle(engine)


def _run_to_the_end(RE, plan) -> int:
    """Run ``plan``, resuming every pause; how many pauses there were."""
    pauses = 0
    try:
        RE(plan)
        return 0
    except RunEngineInterrupted:
        pauses += 1
    while True:
        try:
            RE.resume()
            return pauses
        except RunEngineInterrupted:
            pauses += 1


def test_each_policy_does_what_it_says_on_a_replay(RE):
    got = {}

    def plan():
        yield Msg("checkpoint")
        got["once"] = yield Msg("kit_once", None, "a")
        got["resend"] = yield Msg("kit_resend", None, "b")
        got["skip"] = yield Msg("kit_skip", None, "c")
        got["async"] = yield Msg("kit_once_async", None, "d")
        yield Msg("pause", defer=False)
        got["after"] = yield Msg("kit_resend", None, "e")

    assert _run_to_the_end(RE, plan()) == 1
    # once: never again; resend: again in the replay; skip: not even replayed
    assert dict(COUNTS) == {"once": 1, "resend": 3, "skip": 1, "once_async": 1}
    assert got["once"] == ("once", 1, "a") and got["async"] == ("once_async", 1, "d")
    assert got["after"] == ("resend", 3, "e")  # the replay's resend was the second
    assert RE.state == "idle"


def test_a_replay_does_not_tell_the_plan_again_of_an_error_it_caught(RE):
    caught = []

    def plan(name):
        yield Msg("checkpoint")
        try:
            yield Msg(name)
        except ValueError as err:
            caught.append(err.args[0][0])
        yield Msg("kit_once")
        yield Msg("pause", defer=False)

    assert _run_to_the_end(RE, plan("kit_once_fail")) == 1
    assert caught == ["once_fail"]  # the replay answered as it did, quietly
    assert COUNTS["once_fail"] == 1 and COUNTS["once"] == 1
    # bluesky's policy runs it again: its error goes into the replay, and out of the plan
    with pytest.raises(RunEngineInterrupted):
        RE(plan("kit_resend_fail"))
    with pytest.raises(ValueError, match="resend_fail"):
        RE.resume()
    assert COUNTS["resend_fail"] == 2 and RE.state == "idle"


@pytest.mark.parametrize(
    ("command", "runs"), [("kit_fail_as_pause_comes", 1), ("kit_resend_fail_as_pause_comes", 2)]
)
def test_the_message_a_pause_cut_short_answers_its_replay_as_it_was_answered(RE, command, runs):
    """A pause forgives the error of the message it came at: its replay decides. A once
    command's replay gives the plan the error it raised; a resend command runs again."""
    caught = []

    def plan():
        yield Msg("checkpoint")
        try:
            yield Msg(command)
        except ValueError as err:
            caught.append(err.args[0][1])

    assert _run_to_the_end(RE, plan()) == 1
    name = command.removeprefix("kit_")
    assert COUNTS[name] == runs
    assert caught == [runs]  # told once, by the replay: of the first run's error, or the second's


STEPS = st.lists(st.sampled_from(["once", "resend", "skip", "checkpoint", "pause"]), max_size=20)


@settings(max_examples=60, deadline=None)
@given(steps=STEPS)
def test_random_plans_run_each_policy_as_a_model_says(steps):
    """Against a model of the cache: a pause replays what was cached since the last
    checkpoint; once commands never run for a replay, resend ones do, skip ones are not cached."""
    call_kit.reset()
    RE = fresh_engine(extensions=[KIT])
    answers = []

    def plan():
        for i, step in enumerate(steps):
            if step == "checkpoint":
                yield Msg("checkpoint")
            elif step == "pause":
                yield Msg("pause", defer=False)
            else:
                answers.append((yield Msg(f"kit_{step}", None, i)))

    model = {"once": 0, "resend": 0, "skip": 0}
    cached: list[str] = []
    expected_answers = []
    for i, step in enumerate(steps):
        if step == "checkpoint":
            cached = []
        elif step == "pause":
            model["resend"] += cached.count("resend")
        else:
            model[step] += 1
            expected_answers.append((step, model[step], i))
            if step != "skip":
                cached.append(step)
    try:
        pauses = _run_to_the_end(RE, plan())
        assert pauses == steps.count("pause")
        assert {k: COUNTS[k] for k in model} == model
        assert answers == expected_answers
        assert [("paused", 1), ("resumed", 1)] * pauses + [("ended success", 1)] == HEARD
    finally:
        leave_idle(RE)


def test_hooks_hear_each_call_and_its_end_however_it_ends(RE):
    RE([Msg("null")])
    with pytest.raises(RunEngineInterrupted):
        RE([Msg("checkpoint"), Msg("pause", defer=False), Msg("null")])
    RE.stop()
    with pytest.raises(ZeroDivisionError):
        RE(_failing())
    assert [call.exit_status for call in call_kit.CALLS] == ["success", "success", "fail"]
    assert HEARD == [
        ("ended success", 1),
        ("paused", 2),
        ("ended success", 2),  # stop() ends a paused plan successfully, as in bluesky
        ("ended fail", 3),
    ]


def _failing():
    yield Msg("null")
    raise ZeroDivisionError


def test_an_extension_whose_on_call_fails_fails_the_call_and_the_engine_goes_on(RE):
    call_kit.FAIL_ON_CALL.append(True)
    with pytest.raises(RuntimeError, match="call_kit refuses"):
        RE([Msg("kit_once")])
    assert RE.state == "idle" and COUNTS["once"] == 0
    call_kit.FAIL_ON_CALL.clear()
    RE([Msg("kit_once")])
    assert COUNTS["once"] == 1


def test_an_engine_without_the_extension_lacks_its_commands_though_it_is_loaded(RE):
    RE([Msg("kit_once")])  # the kit's module is loaded now
    other = fresh_engine()
    try:
        assert "kit_once" not in other.commands
        with pytest.raises(InvalidCommand):
            other([Msg("kit_once")])
        assert COUNTS["once"] == 1
    finally:
        leave_idle(other)


def test_a_policy_is_one_of_three():
    with pytest.raises(ValueError, match="replay must be one of"):
        command("kit_never", replay="twice")
    assert "kit_never" not in COMMAND_SPECS
    assert {spec.replay for spec in COMMAND_SPECS.values()} <= {"resend", "once", "skip"}


def test_locks_and_scripts_leave_their_replays_to_the_core():
    import runengine.locks.commands
    import runengine.scripts.commands  # noqa: F401

    policies = {
        name: COMMAND_SPECS[name].replay
        for name in ("acquire_lock", "release_lock", "yield_lock", "run_script", "open_run")
    }
    assert policies == {"acquire_lock": "once", "release_lock": "once", "yield_lock": "resend",
                        "run_script": "once", "open_run": "skip"}  # fmt: skip
