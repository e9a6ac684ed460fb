"""Checking a script request before anything runs: argv, environment, lock."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .results import LockUnavailable, ScriptNotExecutable, ScriptNotFound

__all__ = ["acquire", "call", "check_args", "environment", "script_argv"]


def check_args(args: Any) -> tuple[str, ...]:
    """The arguments as strings; TypeError naming the first that is not a str, number or path."""
    if isinstance(args, str | bytes) or not isinstance(args, Iterable):
        raise TypeError(f"args must be a list or tuple of arguments, not {args!r}")
    checked = []
    for i, arg in enumerate(args):
        if isinstance(arg, bool) or not isinstance(arg, str | int | float | os.PathLike):
            raise TypeError(
                f"args[{i}] = {arg!r} ({type(arg).__name__}): script arguments must be "
                f"strings, numbers or paths"
            )
        checked.append(os.fspath(arg) if isinstance(arg, os.PathLike) else str(arg))
    return tuple(checked)


def script_argv(
    script: str | os.PathLike,
    args: Sequence[Any] = (),
    cwd: str | os.PathLike | None = None,
    interpreter: Sequence[str] | str | None = None,
) -> list[str]:
    """The argv that runs ``script``: ``python -u script.py`` for Python files, else the file.

    Raises ScriptNotFound, ScriptNotExecutable, or TypeError for bad arguments.
    """
    if not isinstance(script, str | os.PathLike) or not os.fspath(script):
        raise TypeError(f"script must be a path, not {script!r}")
    path = os.fspath(script)
    found = os.path.join(os.fspath(cwd), path) if cwd is not None else path
    if not os.path.exists(found):
        raise ScriptNotFound(f"Script {path!r} not found (looked for {os.path.abspath(found)})")
    if not os.path.isfile(found):
        raise ScriptNotFound(f"Script {path!r} is not a file ({os.path.abspath(found)})")
    argv_args = list(check_args(args))
    if interpreter is not None:
        prefix = [interpreter] if isinstance(interpreter, str) else list(interpreter)
        return [*prefix, path, *argv_args]
    if path.endswith(".py"):
        return [sys.executable, "-u", path, *argv_args]
    if not os.access(found, os.X_OK):
        raise ScriptNotExecutable(
            f"Script {path!r} is not executable: chmod +x it, or pass interpreter=..."
        )
    exe = path if os.sep in path else os.path.join(".", path)  # never searched on PATH
    return [exe, *argv_args]


def environment(env: Mapping[str, str | None] | None) -> dict[str, str]:
    """This process's environment with ``env`` applied (a None value unsets)."""
    merged = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        elif not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"env entries must be str: str (or None to unset), not {key!r}: {value!r}"
            )
        else:
            merged[key] = value
    return merged


async def call(func: Callable, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)``, awaited if it returns an awaitable (sync or async locks)."""
    result = func(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


async def acquire(lock: Any, job: str, timeout: float) -> None:
    """``lock.acquire(0, job)`` until it succeeds or ``timeout`` passes (LockUnavailable)."""
    deadline = time.monotonic() + timeout
    while not await call(lock.acquire, 0, job):
        if time.monotonic() >= deadline:
            holder = getattr(lock, "job", None)
            raise LockUnavailable(
                f"Cannot run {job!r}: the lock is held by {holder!r}"
                + (f" (waited {timeout} s)" if timeout else ""),
                holder,
            )
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
