import pytest

from runengine import STATES, TRANSITIONS, RunEngine, TransitionError
from runengine.states import check_transition, state


def test_state_names_match_bluesky():
    assert list(STATES) == [
        "idle",
        "running",
        "pausing",
        "paused",
        "halting",
        "stopping",
        "aborting",
        "suspending",
        "panicked",
    ]
    assert set(TRANSITIONS) == set(STATES)


def test_state_is_a_string_with_questions():
    s = state("paused")
    assert s == "paused"
    assert isinstance(s, str)
    assert s.is_paused and not s.is_running
    assert s.can_be_running and not s.can_be_pausing
    assert state("running").can_pause
    assert not state("idle").can_pause
    with pytest.raises(AttributeError):
        s.is_sleepy  # noqa: B018


@pytest.mark.parametrize("old", STATES)
@pytest.mark.parametrize("new", STATES)
def test_every_transition_follows_the_table(old, new):
    if new in TRANSITIONS[old]:
        assert check_transition(old, new) == new
    else:
        with pytest.raises(TransitionError, match=f"Cannot transit from '{old}' to '{new}'"):
            check_transition(old, new)


def test_no_self_transitions():
    for name, targets in TRANSITIONS.items():
        assert name not in targets


def test_state_is_read_only():
    RE = RunEngine({}, context_managers=[])
    with pytest.raises(AttributeError):
        RE.state = "running"
    assert RE.state.is_idle
