"""The engine's states and the one table of transitions allowed between them."""

from __future__ import annotations

from bluesky.run_engine import TransitionError

__all__ = ["STATES", "TRANSITIONS", "EngineState", "TransitionError", "check_transition"]

STATES = (
    "idle",
    "running",
    "pausing",
    "paused",
    "halting",
    "stopping",
    "aborting",
    "suspending",
    "panicked",
)

# from-state -> states it may move to. Every transition the engine makes is checked here.
# Unlike bluesky, 'panicked' is recoverable: all_is_well() returns to idle, or to paused when the
# panic happened while paused (the seed's semantics).
TRANSITIONS: dict[str, frozenset[str]] = {
    "idle": frozenset({"running", "panicked"}),
    "running": frozenset(
        {"idle", "pausing", "halting", "stopping", "aborting", "suspending", "panicked"}
    ),
    "pausing": frozenset({"paused", "idle", "halting", "aborting", "panicked"}),
    "suspending": frozenset({"running", "idle", "halting", "aborting", "panicked"}),
    "paused": frozenset({"idle", "running", "halting", "stopping", "aborting", "panicked"}),
    "halting": frozenset({"idle", "panicked"}),
    "stopping": frozenset({"idle", "panicked"}),
    "aborting": frozenset({"idle", "panicked"}),
    "panicked": frozenset({"idle", "paused"}),
}


class EngineState(str):
    """A state name that compares equal to its string and answers ``is_<state>`` questions.

    ``RE.state == 'idle'`` and ``RE.state.is_idle`` both work, as bluesky's suspenders expect.
    """

    __slots__ = ()

    def __getattr__(self, attr: str) -> bool:
        if attr.startswith("is_") and attr[3:] in TRANSITIONS:
            return str(self) == attr[3:]
        if attr.startswith("can_be_") and attr[7:] in TRANSITIONS:
            return attr[7:] in TRANSITIONS[str(self)]
        if attr == "can_pause":
            return "pausing" in TRANSITIONS[str(self)]
        raise AttributeError(attr)

    @staticmethod
    def states() -> list[str]:
        """All state names, in bluesky's order."""
        return list(STATES)


_INTERNED = {name: EngineState(name) for name in STATES}


def check_transition(old: str, new: str) -> EngineState:
    """The state object for ``new``; TransitionError if ``old -> new`` is not allowed."""
    if new not in TRANSITIONS.get(old, ()):
        raise TransitionError(f"Cannot transit from {old!r} to {new!r}.")
    return _INTERNED[new]


def state(name: str) -> EngineState:
    """The state object for a name."""
    return _INTERNED[name]
