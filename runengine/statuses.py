"""Status objects grouped for ``wait``: completion from any thread, failures into the plan."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Hashable
from typing import Any

from bluesky.run_engine import WaitForTimeoutError
from bluesky.utils import FailedStatus

__all__ = ["StatusGroups", "failed_status"]

_PRUNE_AT = 256


def failed_status(status: Any) -> FailedStatus:
    """``FailedStatus(status)`` whose cause is the status's own exception."""
    err = FailedStatus(status)
    try:
        cause = status.exception(timeout=0)
    except TypeError:
        cause = status.exception()
    except Exception as exc:
        cause = exc
    err.__cause__ = cause
    return err


class _Settle:
    """The callback a status calls when it finishes.

    Its ``__signature__`` is given, so ophyd's check of the callback's signature (done on every
    ``add_callback``, once per status) reads it instead of inspecting a function each time.
    """

    __slots__ = ("groups", "tracked")
    __signature__ = inspect.Signature(
        [inspect.Parameter("status", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    )

    def __init__(self, groups: StatusGroups, tracked: _Tracked) -> None:
        self.groups = groups
        self.tracked = tracked

    def __call__(self, status: Any) -> None:
        self.groups._settled(self.tracked)


class _Tracked:
    """What the engine knows of one status, learnt from its callback alone (as bluesky does:
    a status need not have ``done`` or ``success`` until it calls back)."""

    __slots__ = ("done", "failed", "generation", "status")

    def __init__(self, status: Any, generation: int) -> None:
        self.status = status
        self.generation = generation
        self.failed = False
        self.done = False


# Status classes whose ``done`` we may read before add_callback: ophyd's own, where reading
# it is free. A status class of the user's may count the reads (bluesky's tests do), so it
# sees exactly the reads bluesky makes.
_PEEKABLE: dict[type, bool] = {}
_OPHYD_MODULES = ("ophyd.", "ophyd_async.")


def _done_is_ophyds(kind: type) -> bool:
    owner = next((k for k in kind.__mro__ if "done" in vars(k)), None)
    return owner is not None and owner.__module__.startswith(_OPHYD_MODULES)


class StatusGroups:
    """The statuses a plan started, by group, and the first failure nobody has seen yet.

    A failure is owed to the plan at the next message even if it never waits on the group
    (bluesky's behaviour). ``pardon()`` forgets failures of statuses started before it: a pause
    stops moving devices, and the statuses that fail because of it must not fail the plan.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.groups: dict[Hashable, list[_Tracked]] = {}
        self.failure: FailedStatus | None = None
        self._failed: _Tracked | None = None
        self._generation = 0
        self._wake: asyncio.Future | None = None
        self.waiting_hook: Callable[[Any], None] | None = None
        self.moving_on: set = set()

    def add(self, status: Any, group: Hashable) -> None:
        """Track ``status`` in ``group`` (None is a group too, as in bluesky)."""
        tracked = _Tracked(status, self._generation)
        members = self.groups.setdefault(group, [])
        members.append(tracked)
        if len(members) > _PRUNE_AT:
            # A group nobody waits on must not grow for ever: forget what finished well.
            members[:] = [t for t in members if not t.done or t.failed]
        kind = type(status)
        peek = _PEEKABLE.get(kind)
        if peek is None:
            peek = _PEEKABLE[kind] = _done_is_ophyds(kind)
        if peek and status.done is True and type(status.success) is bool:
            # Finished already (a Signal's trigger): what add_callback would call at once,
            # without ophyd's callback-signature check and locks (a third of an event's cost).
            self._settled(tracked)
            return
        status.add_callback(_Settle(self, tracked))

    def _settled(self, tracked: _Tracked) -> None:
        # Runs on whichever thread finished the status (at once if it already had).
        tracked.failed = not tracked.status.success
        tracked.done = True
        if tracked.failed and tracked.generation == self._generation and self.failure is None:
            self._failed = tracked
            self.failure = failed_status(tracked.status)
        wake = self._wake
        if wake is not None:
            self._loop.call_soon_threadsafe(_resolve, wake)

    def take_failure(self) -> FailedStatus | None:
        """The pending failure, once."""
        failure, self.failure, self._failed = self.failure, None, None
        return failure

    def pardon(self) -> None:
        """Ignore failures of every status started so far, and drop the groups."""
        self._generation += 1
        self.failure = None
        self._failed = None
        self.groups.clear()

    def finished_well(self, group: Hashable) -> bool:
        """True, and ``group`` forgotten, if every status in it is done and none failed."""
        members = self.groups.get(group)
        if members is None:
            return True
        for tracked in members:
            if not tracked.done or tracked.failed:
                return False
        del self.groups[group]
        self.moving_on.discard(group)
        return True

    def _raise_if_failed(self, members: list[_Tracked]) -> None:
        for tracked in members:
            if tracked.failed:
                failure = self.take_failure() if tracked is self._failed else None
                raise failure if failure is not None else failed_status(tracked.status)

    async def wait(
        self,
        group: Hashable,
        timeout: float | None = None,
        error_on_timeout: bool = True,
        watch: tuple = (),
    ) -> bool:
        """Wait until every status in ``group`` is done; True when they all are.

        A failure raises FailedStatus, in the group or in a ``watch`` group. A timeout raises
        WaitForTimeoutError (or returns False with ``error_on_timeout=False``) and puts the group
        back, so the wait can be repeated.
        """
        members = self.groups.pop(group, None)
        if not members:
            return True
        hook = self.waiting_hook
        if hook is not None and (error_on_timeout or group not in self.moving_on):
            if not error_on_timeout:
                self.moving_on.add(group)
            hook({t.status for t in members})  # a set, as bluesky gives it
        watched = [t for w in watch for t in self.groups.get(w, ())]
        deadline = None if timeout is None else self._loop.time() + timeout
        try:
            while True:
                self._raise_if_failed(members)
                self._raise_if_failed(watched)
                if all(t.done for t in members):
                    break
                remaining = None if deadline is None else deadline - self._loop.time()
                if remaining is not None and remaining <= 0:
                    raise WaitForTimeoutError("Plan failed to complete in the specified time")
                # One future shared by every waiter (concurrent sub-plans of an action graph
                # wait at once): any status settling wakes them all, each checks its own.
                wake = self._wake
                if wake is None or wake.done():
                    wake = self._wake = self._loop.create_future()
                if all(t.done for t in members):  # finished while the future was made
                    continue
                await asyncio.wait((wake,), timeout=remaining)
        except WaitForTimeoutError:
            self.groups[group] = members
            if error_on_timeout:
                self._hook_done(hook)
                raise
            # bluesky asks the statuses themselves here; plans may count on that.
            return all(t.status.done for t in members)
        except asyncio.CancelledError:
            self.groups[group] = members  # a resumed plan waits again on the same statuses
            raise
        self.moving_on.discard(group)
        self._hook_done(hook)
        return True if error_on_timeout else all(t.status.done for t in members)

    @staticmethod
    def _hook_done(hook: Callable | None) -> None:
        if hook is not None:
            hook(None)


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
