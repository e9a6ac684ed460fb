"""Actions: one unit of work in an action graph, with its requirements and its outcome.

An action's body is a *factory*: a callable returning an awaitable (run again on every graph
run, so a graph can be re-run or resumed), or a sub-plan: a callable returning a generator of
``Msg`` that the RunEngine executes alongside the other actions. Generator functions are
recognised as sub-plans; :class:`SubPlan` (or ``Action.plan``) says so explicitly, e.g. for a
callable returning a list of messages. A coroutine object (the seed notebook's
``Action(mycoro(1))``) is accepted too, but it can run only once; a graph run that ends
without running it (skipped, never started, cancelled before it started) closes it, so that
no "coroutine ... was never awaited" warning follows.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bluesky.utils import ensure_generator

from .result import DONE, FAILED, FINISHED, IDLE, TIMEOUT

if TYPE_CHECKING:
    from .graph import ActionGraph

__all__ = ["Action", "SubPlan", "flatten"]

AWAIT, PLAN, VALUE = "await", "plan", "value"


def flatten(items: Iterable) -> list:
    """Actions out of nested lists, tuples and Sequences; None is ignored."""
    out: list = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, Action):
            out.append(item)
        elif isinstance(item, Iterable) and not isinstance(item, str | bytes):
            out.extend(flatten(item))
        else:
            raise TypeError(f"requires() takes actions (or lists of them), not {item!r}")
    return out


def _generator_like(obj: Any) -> bool:
    return all(callable(getattr(obj, name, None)) for name in ("send", "throw", "close"))


def _body_name(body: Any) -> str:
    if inspect.iscoroutine(body):
        return body.__qualname__ if hasattr(body, "__qualname__") else repr(body)
    if inspect.isgenerator(body):
        return body.__name__
    func = getattr(body, "func", body)  # functools.partial
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


class Action:
    """``Action(body, *args, label=, critical=True, forever=False, timeout=None, requires=(),
    shutdown=None, locks=())``.

    ``body(*args)`` makes the awaitable (or sub-plan generator) to run. ``critical``: a failure
    fails the whole graph. ``forever``: never meant to end; cancelled when every finite action
    is over. ``timeout``: seconds before the action fails with ActionTimeout. ``shutdown``: a
    callable (sync or returning an awaitable); actions naming the same one share it, and it
    runs once per graph run, after the last of them (see ``runengine.graph.shutdowns``).
    ``locks``: hardware locks held for the action's duration (see ``runengine.graph.locking``).
    """

    kind = "auto"

    def __init__(
        self,
        body: Any,
        *args: Any,
        label: str | None = None,
        critical: bool = True,
        forever: bool = False,
        timeout: float | None = None,
        requires: Any = (),
        shutdown: Callable | None = None,
        locks: Iterable = (),
    ) -> None:
        self.body = body
        self.args = args
        self.label = label
        self.critical = critical
        self.forever = forever
        self.timeout = timeout
        self.shutdown = shutdown
        self.locks = tuple(locks)
        self.required: dict[Action, None] = {}
        self.id: int | None = None
        self.state = IDLE
        self._value: Any = None
        self._exc: BaseException | None = None
        self._graph: ActionGraph | None = None
        self._plan_state: Any = None  # a sub-plan cut short by a pause, kept to resume in place
        self._once = inspect.isawaitable(body) or inspect.isgenerator(body)
        self._used = False
        self._closed = False  # a one-shot body closed unrun
        if body is not None and not self._once and not callable(body):
            raise TypeError(
                f"An action's body must be a callable returning an awaitable or a plan, "
                f"not {body!r}"
            )
        if self._once and args:
            raise TypeError("arguments are given to a callable body, not to a coroutine object")
        if inspect.isgeneratorfunction(body) or inspect.isgenerator(body):
            self.kind = PLAN
        self.requires(requires)

    @classmethod
    def plan(cls, plan: Callable, *args: Any, **kwargs: Any) -> SubPlan:
        """An action whose body ``plan(*args)`` is a sub-plan (messages for the RunEngine)."""
        return SubPlan(plan, *args, **kwargs)

    # ---- requirements ----------------------------------------------------------------------
    def requires(self, *actions: Any, remove: bool = False) -> None:
        """Run only after ``actions`` (nested lists and None accepted; self is ignored)."""
        for action in flatten(actions):
            if action is self:
                continue
            if remove:
                self.required.pop(action, None)
            else:
                self.required[action] = None

    # ---- outcome ---------------------------------------------------------------------------
    def is_done(self) -> bool:
        """True once the action ran to an end (done, failed, timed out or cancelled)."""
        return self.state in FINISHED and self.state != "skipped"

    def result(self) -> Any:
        """The body's result; ValueError unless the action is done."""
        if self.state != DONE:
            raise ValueError(f"{self.text_label!r} has no result: it is {self.state}")
        return self._value

    def raised_exception(self) -> BaseException | None:
        """The exception the action ended with, if any."""
        return self._exc

    @property
    def text_label(self) -> str:
        """The label, or the body's name."""
        if self.label is not None:
            return str(self.label)
        return _body_name(self.body) if self.body is not None else "NO_LABEL"

    # ---- running ---------------------------------------------------------------------------
    def _invoke(self) -> tuple[str, Any]:
        """Call the body: ``(AWAIT, awaitable)``, ``(PLAN, generator)`` or ``(VALUE, value)``."""
        if self._once:
            if self._used:
                how = "was closed unrun by an earlier graph run" if self._closed else "ran"
                raise RuntimeError(
                    f"{self.text_label!r} was given a coroutine (or generator) object, which "
                    f"runs only once (it {how}); give the function and its arguments to run "
                    "it again"
                )
            self._used = True
            made = self.body
        else:
            made = self.body(*self.args)
        if inspect.isawaitable(made) and self.kind != PLAN:
            return AWAIT, made
        if inspect.isgenerator(made) or _generator_like(made):
            return PLAN, made  # a generator, or a bluesky Plan (``@plan`` stubs return those)
        if self.kind == PLAN:
            return PLAN, ensure_generator(made)
        return VALUE, made

    def _discard(self) -> None:
        """This graph run ends without running the body: close a one-shot coroutine (or
        generator) object, and a sub-plan kept for a resume that will not come."""
        self._drop_plan_state()
        if self._once and not self._used:
            self._used = self._closed = True
            close = getattr(self.body, "close", None)  # coroutines, generators (not futures)
            if callable(close):
                close()

    def _reset(self) -> None:
        self.state = IDLE
        self._value = None
        self._exc = None
        self._drop_plan_state()

    def _drop_plan_state(self) -> None:
        state, self._plan_state = self._plan_state, None
        if state is not None:
            state.close()

    def __repr__(self) -> str:
        # The seed notebook's listing: <Action `last' finished -> 1500.0 - [requires [first]]>
        name = type(self).__name__
        label = self.label if self.label is not None else "NO_LABEL"
        if self.state == DONE:
            text = f"finished -> {self._value!r}"
        elif self.state in (FAILED, TIMEOUT):
            text = f"{self.state} -> {self._exc!r}"
        else:
            text = self.state
        parts = [f"<{name} `{label}' {text}"]
        graph = self._graph
        members = graph._members if graph is not None else None
        required = [a for a in self.required if members is None or a in members]
        if required:
            parts.append(f"[requires [{', '.join(a._short() for a in required)}]]")
        if graph is not None:
            allows = [a for a in graph.actions if self in a.required]
            if allows:
                parts.append(f"[allows [{', '.join(a._short() for a in allows)}]]")
        return " - ".join(parts) + ">"

    def _short(self) -> str:
        return str(self.label) if self.label is not None else "NO_LABEL"


class SubPlan(Action):
    """An action whose body makes a sub-plan: ``plan(*args)`` gives messages (a generator, or
    any iterable of ``Msg``) that the RunEngine runs concurrently with the other actions."""

    kind = PLAN

    def __init__(self, plan: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(plan, *args, **kwargs)
        self.kind = PLAN
