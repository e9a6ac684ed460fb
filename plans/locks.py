"""Plan stubs for hardware locks (``runengine.locks.HardwareLock``).

``acquire_lock`` raises LockTimeout naming the holder; ``try_acquire_lock`` returns None instead,
for OCS-style branching. ``lock_wrapper``/``lock_decorator`` hold a lock around a plan and
release it on any exit, only if their token still holds it (a lost token is never released, so
nobody else's lock is). The engine releases whatever a plan still holds when ``RE(plan)`` ends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any

from bluesky.preprocessors import finalize_wrapper
from bluesky.utils import Msg

from runengine.locks import HardwareLock, LockTimeout, LockToken

__all__ = [
    "acquire_lock",
    "lock_decorator",
    "lock_wrapper",
    "release_lock",
    "try_acquire_lock",
    "yield_lock",
]


def acquire_lock(
    lock: HardwareLock, job: str | None = None, timeout: float | None = None
) -> Generator[Msg, Any, LockToken]:
    """Wait for ``lock`` (``timeout``: None = the lock's default, 0 = try once, inf/-1 = ever).

    Returns the token; raises LockTimeout naming the holder.
    """
    return (yield Msg("acquire_lock", lock, job=job, timeout=timeout))


def try_acquire_lock(
    lock: HardwareLock, job: str | None = None, timeout: float | None = None
) -> Generator[Msg, Any, LockToken | None]:
    """Like :func:`acquire_lock`, but returns None if the lock could not be had in time."""
    try:
        return (yield from acquire_lock(lock, job, timeout))
    except LockTimeout:
        return None


def yield_lock(token: LockToken, timeout: float | None = None) -> Generator[Msg, Any, LockToken]:
    """Let everyone already waiting have the lock, then take it back within ``timeout``.

    Costs nothing when nobody waits. Raises LockLost (the token is then invalid) on failure.
    """
    return (yield Msg("yield_lock", token, timeout=timeout))


def release_lock(token: LockToken) -> Generator[Msg, Any, None]:
    """Release a token this plan holds (LockError if it does not hold it)."""
    return (yield Msg("release_lock", token))


def _release_if_held(token: LockToken) -> Generator[Msg, Any, None]:
    if token.valid:
        yield from release_lock(token)


def lock_wrapper(
    plan: Any, lock: HardwareLock, job: str | None = None, timeout: float | None = None
) -> Generator[Msg, Any, Any]:
    """Run ``plan`` holding ``lock``; release it however the plan ends.

    ``plan`` may be a callable taking the token (to ``yield_lock`` it) and returning a plan.
    """
    token = yield from acquire_lock(lock, job, timeout)
    inner = plan(token) if callable(plan) else plan
    return (yield from finalize_wrapper(inner, functools.partial(_release_if_held, token)))


def lock_decorator(
    lock: HardwareLock, job: str | None = None, timeout: float | None = None
) -> Callable[[Callable], Callable]:
    """Decorate a plan function so that each of its runs holds ``lock`` (see lock_wrapper)."""

    def decorator(plan_function: Callable) -> Callable:
        @functools.wraps(plan_function)
        def wrapped(*args: Any, **kwargs: Any) -> Generator[Msg, Any, Any]:
            plan = plan_function(*args, **kwargs)
            return (yield from lock_wrapper(plan, lock, job or plan_function.__name__, timeout))

        return wrapped

    return decorator
