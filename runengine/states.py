"""The engine's state machine as one table: ``(state, event) -> (next state, effect, message)``.

Pure data and one pure function, :func:`decide`; no threads, no I/O. The engine's controller
(``runengine.control``) is the only code that moves the state, always on the loop thread, and
only by looking a rule up here. :data:`TRANSITIONS` (which states may follow which) is derived
from the table, and so is the state diagram in the documentation.

Events come from two sides:

* control calls (``RE(plan)``, ``request_pause``, ``resume``, ``stop``, ``abort``, ``halt``,
  ``panic``, ``all_is_well``, a suspender's ``request_suspend``, Ctrl+C): an event that has no
  rule in the current state is refused with :class:`TransitionError` naming the state, and
  nothing changes;
* the message loop itself (:data:`INTERNAL` events: the plan parked, a suspension began, the
  plan ended, ...), which always have a rule where they can happen.

While ``panicked`` the plan underneath goes on winding down: internal events then move the
state *beneath* the panic (see :attr:`Rule.beneath`), which ``all_is_well`` returns to.
"""

from __future__ import annotations

from typing import NamedTuple

from bluesky.run_engine import TransitionError

__all__ = [
    "EVENTS",
    "INTERNAL",
    "PANIC_MSG",
    "PRIORITY",
    "STATES",
    "SUSPENDING_MSG",
    "TABLE",
    "TRANSITIONS",
    "EngineState",
    "Rule",
    "TransitionError",
    "check_transition",
    "decide",
]

PANIC_MSG = "The RunEngine is panicked: call RE.all_is_well() before resuming or running a plan."

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

#: What can happen, and who makes it happen.
EVENTS: dict[str, str] = {
    "start": "`RE(plan)` claims the engine",
    "pause_deferred": "`RE.request_pause(defer=True)`, one Ctrl+C, `Msg('pause', defer=True)`",
    "pause_now": "`RE.request_pause()`, a second Ctrl+C, `Msg('pause')`",
    "pause_hold": "a named `RE.request_pause(name=..., callback=...)` while pausing or paused",
    "deferred_due": "a checkpoint reached with a deferred pause pending",
    "parked": "the plan stopped at a message boundary: movers stopped, devices paused",
    "no_checkpoint": "a pause or suspension found nothing to resume from (`clear_checkpoint`)",
    "suspend": "a suspender trips (`RE.request_suspend`)",
    "suspend_held": "a suspender trips while another suspension holds the plan",
    "suspend_unresumable": "a suspender trips after `clear_checkpoint`",
    "suspension_began": "the plan rewound and waits for the suspender to clear",
    "resume": "`RE.resume()`, every permission callback allowing",
    "resume_refused": "`RE.resume()` while a named pause request's callback says no",
    "stop": "`RE.stop()`",
    "abort": "`RE.abort(reason)`",
    "halt": "`RE.halt()`, or a plan raising KeyboardInterrupt",
    "panic": "`RE.panic()`",
    "all_is_well": "`RE.all_is_well()`",
    "ended": "the plan ended and its cleanup is done; runs closed",
}

#: Events the message loop raises itself; the others come from control calls.
INTERNAL = frozenset(
    {"deferred_due", "parked", "no_checkpoint", "suspension_began", "ended", "suspend_held"}
)

#: A stronger interruption replaces a weaker one still waiting for the next message boundary.
PRIORITY = {"suspend": 0, "pause": 1, "stop": 2, "unresumable": 3, "abort": 3, "halt": 4}


class Rule(NamedTuple):
    """What an event does in a state.

    ``effect`` names what the controller then does (see ``runengine.control``); ``message`` is
    printed when the rule is taken; ``beneath`` is, for a panic, the state the plan is left in
    underneath it.
    """

    next: str
    effect: str
    message: str = ""
    beneath: str | None = None


_PAUSING = "Pausing..."
_DEFERRED = "Deferred pause acknowledged. Continuing to checkpoint."
_STOPPING = "Stopping: running cleanup and marking exit_status as 'success'..."
_ABORTING = "Aborting: running cleanup and marking exit_status as 'abort'..."
_HALTING = "Halting: skipping cleanup and marking exit_status as 'abort'..."
#: What a suspension prints, at its start (bluesky words it two ways; we use this one only).
SUSPENDING_MSG = "Suspending... To get to the prompt, hit Ctrl-C twice to pause."
_SUSPENDING = SUSPENDING_MSG
_NO_CHECKPOINT = "No checkpoint to resume from (clear_checkpoint): aborting instead..."
_PANIC = "Panic: the plan is aborted; call RE.all_is_well() to go on."
_PANIC_PAUSED = "Panic: the paused plan stays paused; call RE.all_is_well() to go on."


def _ending(state: str) -> dict[tuple[str, str], Rule]:
    """stop < abort < halt: a stronger ending may overtake a weaker one already under way."""
    order = ["stopping", "aborting", "halting"]
    rules = {}
    for event, target, message in (
        ("stop", "stopping", _STOPPING),
        ("abort", "aborting", _ABORTING),
        ("halt", "halting", _HALTING),
    ):
        if state not in order or order.index(target) > order.index(state):
            rules[(state, event)] = Rule(target, "interrupt", message)
    return rules


TABLE: dict[tuple[str, str], Rule] = {
    # idle
    ("idle", "start"): Rule("running", "claim"),
    ("idle", "panic"): Rule("panicked", "panic", _PANIC, beneath="idle"),
    ("idle", "all_is_well"): Rule("idle", "nothing"),
    # running
    ("running", "pause_deferred"): Rule("running", "defer", _DEFERRED),
    ("running", "pause_now"): Rule("pausing", "interrupt", _PAUSING),
    ("running", "deferred_due"): Rule("pausing", "interrupt", _PAUSING),
    ("running", "suspend"): Rule("suspending", "suspend", _SUSPENDING),
    ("running", "suspend_held"): Rule("running", "hold_suspension"),
    ("running", "suspend_unresumable"): Rule("aborting", "unresumable", _NO_CHECKPOINT),
    **_ending("running"),
    ("running", "panic"): Rule("panicked", "panic", _PANIC, beneath="aborting"),
    ("running", "all_is_well"): Rule("running", "nothing"),
    ("running", "ended"): Rule("idle", "finish"),
    # suspending: asked to suspend, not yet at a message boundary
    ("suspending", "pause_deferred"): Rule("suspending", "defer", _DEFERRED),
    ("suspending", "pause_now"): Rule("pausing", "interrupt", _PAUSING),
    ("suspending", "suspend"): Rule("suspending", "hold_suspension"),
    ("suspending", "suspend_unresumable"): Rule("aborting", "unresumable", _NO_CHECKPOINT),
    ("suspending", "suspension_began"): Rule("running", "nothing"),
    ("suspending", "no_checkpoint"): Rule("aborting", "nothing", _NO_CHECKPOINT),
    **_ending("suspending"),
    ("suspending", "panic"): Rule("panicked", "panic", _PANIC, beneath="aborting"),
    ("suspending", "all_is_well"): Rule("suspending", "nothing"),
    ("suspending", "ended"): Rule("idle", "finish"),
    # pausing: asked to pause, not yet at a message boundary
    # a second unnamed pause is refused, as in bluesky; a named one holds the resume
    ("pausing", "pause_hold"): Rule("pausing", "note"),
    ("pausing", "suspend"): Rule("pausing", "hold_suspension"),
    ("pausing", "suspend_held"): Rule("pausing", "hold_suspension"),
    ("pausing", "suspend_unresumable"): Rule("aborting", "unresumable", _NO_CHECKPOINT),
    ("pausing", "parked"): Rule("paused", "parked"),
    ("pausing", "no_checkpoint"): Rule("aborting", "nothing", _NO_CHECKPOINT),
    **_ending("pausing"),
    ("pausing", "panic"): Rule("panicked", "panic", _PANIC, beneath="aborting"),
    ("pausing", "all_is_well"): Rule("pausing", "nothing"),
    ("pausing", "ended"): Rule("idle", "finish"),
    # paused: the plan is parked and waits for a decision
    ("paused", "pause_hold"): Rule("paused", "note"),
    ("paused", "suspend"): Rule("paused", "hold_suspension"),
    ("paused", "suspend_held"): Rule("paused", "hold_suspension"),
    ("paused", "resume"): Rule("running", "decide"),
    ("paused", "resume_refused"): Rule("paused", "refuse"),
    **{key: rule._replace(effect="decide") for key, rule in _ending("paused").items()},
    ("paused", "panic"): Rule("panicked", "panic", _PANIC_PAUSED, beneath="paused"),
    ("paused", "all_is_well"): Rule("paused", "nothing"),
    # winding down
    **_ending("stopping"),
    **_ending("aborting"),
    **{(s, "panic"): Rule("panicked", "panic", _PANIC, beneath="aborting") for s in ("stopping",)},
    **{(s, "panic"): Rule("panicked", "panic", _PANIC, beneath=s) for s in ("aborting", "halting")},
    **{(s, "ended"): Rule("idle", "finish") for s in ("stopping", "aborting", "halting")},
    **{(s, "all_is_well"): Rule(s, "nothing") for s in ("stopping", "aborting", "halting")},
    # panicked: only these two; the plan beneath moves through the rows above
    ("panicked", "panic"): Rule("panicked", "nothing"),
    ("panicked", "all_is_well"): Rule("<beneath>", "recover"),
}

# The state beneath a panic that all_is_well may return to.
_RECOVERABLE = ("idle", "paused", "aborting", "halting")


def _refusal(state: str, event: str) -> str:
    if state == "panicked":
        return PANIC_MSG
    if event in ("stop", "abort", "halt"):
        if state == "idle":
            return "RunEngine is already idle."
        return f"Cannot {event}: the RunEngine is already {state}."
    if event.startswith("resume"):
        return f"Cannot resume: the RunEngine is {state}; only a paused plan resumes."
    if event.startswith("pause"):
        return f"Cannot pause: the RunEngine is {state}."
    if event == "start":
        return f"The RunEngine is in a {state} state"
    return f"Cannot {event.replace('_', ' ')}: the RunEngine is {state}."


def decide(state: str, event: str) -> Rule:
    """The rule for ``event`` in ``state``; TransitionError, naming the state, if there is none."""
    rule = TABLE.get((state, event))
    if rule is None:
        raise TransitionError(_refusal(state, event))
    return rule


def _transitions() -> dict[str, frozenset[str]]:
    targets: dict[str, set[str]] = {name: set() for name in STATES}
    for (old, _), rule in TABLE.items():
        if rule.next == "<beneath>":
            targets[old].update(_RECOVERABLE)
        elif rule.next != old:
            targets[old].add(rule.next)
    return {name: frozenset(found) for name, found in targets.items()}


#: from-state -> the states it may move to, derived from :data:`TABLE`.
TRANSITIONS: dict[str, frozenset[str]] = _transitions()


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
