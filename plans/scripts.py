"""``run_script``: an external script as a plan step that can be aborted and is never re-run."""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from bluesky.utils import Msg

__all__ = ["run_script"]


def run_script(
    script: str | os.PathLike,
    args: Sequence[Any] = (),
    *,
    log: Any = True,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float | None = None,
    lock: Any = None,
    job: str | None = None,
    on_pause: str = "finish",
    check: bool = True,
    checkpoint: bool = True,
    **options: Any,
) -> Generator[Msg, Any, Any]:
    """Run ``script`` (``python -u`` for ``.py`` files, else executed) and return its result.

    ``log``: True (the ``runengine.scripts`` logger), a path (appended to), a Logger or False.
    ``env`` entries override the inherited environment (None unsets). ``lock``: an object with
    ``acquire(timeout, job)``/``release()`` held while the script runs (``job`` defaults to the
    script's name; busy: LockUnavailable, a LockTimeout). ``timeout``: abort after that many seconds
    (ScriptTimeout). ``on_pause``: 'finish' lets the script end before the engine pauses;
    'interrupt' aborts it, and on resume the step raises ScriptInterrupted (``check=False``:
    returns the result with ``interrupted=True``); the script is never run again.
    ``check``: raise ScriptFailed/ScriptAborted/ScriptTimeout on failure, else return the
    :class:`~runengine.scripts.ScriptResult`. More ``options``: ``abort_sequence``,
    ``drain``, ``publisher``, ``interpreter``, ``lock_timeout``, ``status_events``.

    With ``checkpoint`` (default) the step sits between two checkpoints: a pause right after
    it resumes from there. Pass ``checkpoint=False`` inside a create/save bundle.
    """
    kwargs = dict(options)
    kwargs.update(log=log, env=env, cwd=cwd, timeout=timeout, lock=lock, job=job)
    if checkpoint:
        yield Msg("checkpoint")
    result = yield Msg("run_script", None, script, args, on_pause=on_pause, check=check, **kwargs)
    if checkpoint:
        yield Msg("checkpoint")
    return result
