"""What a script run gives back: its result, and the errors it raises."""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass, field
from typing import Any

from ..errors import RunEngineError
from ..locks import LockTimeout

__all__ = [
    "DEFAULT_ABORT_SEQUENCE",
    "LockUnavailable",
    "NoScriptRunning",
    "ScriptAborted",
    "ScriptError",
    "ScriptFailed",
    "ScriptInterrupted",
    "ScriptNotExecutable",
    "ScriptNotFound",
    "ScriptResult",
    "ScriptTimeout",
]

#: (signal, seconds to wait for every process of the run to go) steps of an abort.
DEFAULT_ABORT_SEQUENCE: tuple[tuple[int, float], ...] = (
    (_signal.SIGINT, 5.0),
    (_signal.SIGTERM, 5.0),
    (_signal.SIGKILL, 5.0),
)


@dataclass
class ScriptResult:
    """The outcome of one script run.

    ``returncode`` is the exit code (negative: killed by that signal, as in ``subprocess``);
    ``signal`` the signal that ended it, if any. ``aborted`` says the runner aborted it (an
    explicit abort, an engine interruption, a timeout); ``interrupted`` that a pause with
    ``on_pause='interrupt'`` did. ``session_data`` merges the script's ``session_data``
    datagrams; ``messages`` holds ``(time, text)`` of its ``session_log``/``log`` datagrams.
    ``leftovers_killed`` counts the processes still running when the script exited (ended by
    the runner); ``survivors`` lists the pids that outlived even the abort sequence (empty
    unless a process is stuck in the kernel).
    """

    script: str
    args: tuple[str, ...]
    returncode: int | None = None
    signal: int | None = None
    duration: float = 0.0
    session_data: dict = field(default_factory=dict)
    messages: list[tuple[float, str]] = field(default_factory=list)
    stdout_tail: list[str] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)
    script_id: str = ""
    run_id: str | None = None
    pid: int | None = None
    aborted: bool = False
    abort_reason: str = ""
    timed_out: bool = False
    interrupted: bool = False
    leftovers_killed: int = 0
    survivors: list[int] = field(default_factory=list)
    datagrams: int = 0
    warnings: list[str] = field(default_factory=list)
    malformed: int = 0
    oversized: int = 0
    foreign: int = 0
    seq_gaps: int = 0

    @property
    def success(self) -> bool:
        """Exit code 0, and neither aborted nor interrupted."""
        return self.returncode == 0 and not (self.aborted or self.interrupted)

    def error(self) -> ScriptError | None:
        """The exception ``check=True`` raises for this result (None on success)."""
        if self.success:
            return None
        if self.interrupted:
            return ScriptInterrupted(self)
        if self.timed_out:
            return ScriptTimeout(self)
        if self.aborted or (self.returncode is not None and self.returncode < 0):
            return ScriptAborted(self)
        return ScriptFailed(self)

    def check(self) -> ScriptResult:
        """Return self on success, else raise :meth:`error`."""
        err = self.error()
        if err is not None:
            raise err
        return self


class ScriptError(RunEngineError, RuntimeError):
    """Base of every error of a script run (a RunEngineError and a RuntimeError)."""


class _ResultError(ScriptError):
    def __init__(self, result: ScriptResult) -> None:
        self.result = result
        super().__init__(self._describe(result))

    @property
    def returncode(self) -> int | None:
        return self.result.returncode

    @property
    def stderr_tail(self) -> list[str]:
        return self.result.stderr_tail

    def _describe(self, result: ScriptResult) -> str:
        raise NotImplementedError

    @staticmethod
    def _tail(result: ScriptResult, lines: int = 20) -> str:
        tail = result.stderr_tail[-lines:]
        return ("\n--- stderr (last lines) ---\n" + "\n".join(tail)) if tail else ""


class ScriptFailed(_ResultError):
    """The script exited with a non-zero code; carries it and the tail of its stderr."""

    def _describe(self, result: ScriptResult) -> str:
        return f"Script {result.script} exited with code {result.returncode}" + self._tail(result)


class ScriptAborted(_ResultError):
    """The script was aborted (or died of a signal)."""

    @property
    def signal(self) -> int | None:
        return self.result.signal

    def _describe(self, result: ScriptResult) -> str:
        how = (
            f"by {_signal_name(result.signal)}" if result.signal else f"(code {result.returncode})"
        )
        why = f": {result.abort_reason}" if result.abort_reason else ""
        verb = "was aborted" if result.aborted else "died"
        return f"Script {result.script} {verb} {how}{why}" + self._tail(result)


class ScriptTimeout(ScriptAborted):
    """The script ran past its timeout and was aborted."""


class ScriptInterrupted(ScriptAborted):
    """A pause with ``on_pause='interrupt'`` aborted the script; it is not run again."""


class ScriptNotFound(ScriptError, FileNotFoundError):
    """The script does not exist (or is not a file)."""


class ScriptNotExecutable(ScriptError, PermissionError):
    """The script is neither a Python file nor executable."""


class NoScriptRunning(ScriptError):
    """``abort(strict=True)`` found no script to abort."""


class LockUnavailable(ScriptError, LockTimeout):
    """The hardware lock is held by someone else; names the holder (a LockTimeout too)."""

    def __init__(self, message: str, holder: Any = None) -> None:
        LockTimeout.__init__(self, message, holder)


def _signal_name(sig: int | None) -> str:
    try:
        return _signal.Signals(sig).name
    except (ValueError, TypeError):
        return f"signal {sig}"
