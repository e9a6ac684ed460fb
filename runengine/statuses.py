"""Status objects grouped for ``wait``: completion from any thread, failures into the plan."""

from __future__ import annotations

import asyncio
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


class StatusGroups:
    """The statuses a plan started, by group, and the first failure nobody has seen yet.

    A failure is owed to the plan at the next message even if it never waits on the group
    (bluesky's behaviour). ``pardon()`` forgets failures of statuses started before it: a pause
    stops moving devices, and the statuses that fail because of it must not fail the plan.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.groups: dict[Hashable, list] = {}
        self.failure: FailedStatus | None = None
        self._failed_status: Any = None
        self._generation = 0
        self._wake: asyncio.Future | None = None
        self.waiting_hook: Callable[[Any], None] | None = None
        self._moving_on: set = set()

    def add(self, status: Any, group: Hashable) -> None:
        """Track ``status`` in ``group`` (None is a group too, as in bluesky)."""
        members = self.groups.setdefault(group, [])
        members.append(status)
        if len(members) > _PRUNE_AT:
            # A group nobody waits on must not grow for ever: forget what finished well.
            members[:] = [s for s in members if not (s.done and s.success)]
        if status.done:
            self._settled(self._generation, status)
        else:
            generation = self._generation
            status.add_callback(lambda st: self._settled(generation, st))

    def _settled(self, generation: int, status: Any) -> None:
        # Runs on whichever thread finished the status.
        if not status.success and generation == self._generation and self.failure is None:
            self._failed_status = status
            self.failure = failed_status(status)
        wake = self._wake
        if wake is not None:
            self._loop.call_soon_threadsafe(_resolve, wake)

    def take_failure(self) -> FailedStatus | None:
        """The pending failure, once."""
        failure, self.failure, self._failed_status = self.failure, None, None
        return failure

    def pardon(self) -> None:
        """Ignore failures of every status started so far, and drop the groups."""
        self._generation += 1
        self.failure = None
        self._failed_status = None
        self.groups.clear()

    def _raise_if_failed(self, statuses: list) -> None:
        for status in statuses:
            if status.done and not status.success:
                if status is self._failed_status:
                    raise self.take_failure()
                raise failed_status(status)

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
        statuses = self.groups.pop(group, None)
        if not statuses:
            return True
        hook = self.waiting_hook
        if hook is not None and (error_on_timeout or group not in self._moving_on):
            if not error_on_timeout:
                self._moving_on.add(group)
            hook(statuses)
        watched = [s for w in watch for s in self.groups.get(w, ())]
        deadline = None if timeout is None else self._loop.time() + timeout
        try:
            while True:
                self._raise_if_failed(statuses)
                self._raise_if_failed(watched)
                if all(s.done for s in statuses):
                    break
                remaining = None if deadline is None else deadline - self._loop.time()
                if remaining is not None and remaining <= 0:
                    raise WaitForTimeoutError("Plan failed to complete in the specified time")
                wake = self._wake = self._loop.create_future()
                if all(s.done for s in statuses):  # finished while the future was made
                    continue
                try:
                    await asyncio.wait((wake,), timeout=remaining)
                finally:
                    self._wake = None
        except WaitForTimeoutError:
            self.groups[group] = statuses
            if error_on_timeout:
                self._hook_done(hook)
                raise
            return False
        except asyncio.CancelledError:
            self.groups[group] = statuses  # a resumed plan waits again on the same statuses
            raise
        self._moving_on.discard(group)
        self._hook_done(hook)
        return True

    @staticmethod
    def _hook_done(hook: Callable | None) -> None:
        if hook is not None:
            hook(None)


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
