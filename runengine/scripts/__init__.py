"""External scripts as abortable steps, with a pysmurf-compatible status channel.

- :class:`ScriptRunner`: run a script as a subprocess under a supervisor process of its own
  (``runner.run(...)`` in a thread, ``await runner.run_async(...)`` on a loop) and abort it with
  SIGINT, then SIGTERM, then SIGKILL to the script and every process it started, whatever
  session or process group they moved to (``runner.abort()``).
- :class:`StatusChannel`: the loopback UDP socket whose address the script finds in
  ``SMURFPUB_*``; :class:`Publisher` / :func:`publish`: what scripts use to send to it.
- :class:`ScriptResult` and the errors: :class:`ScriptFailed`, :class:`ScriptAborted`, ...

In plans, use ``runengine.plans.scripts.run_script`` (the ``run_script`` message).
"""

from .channel import StatusChannel
from .launch import script_argv
from .publisher import DEFAULT_UDP_PORT, UDP_MAX_BYTES, Publisher, publish
from .results import (
    DEFAULT_ABORT_SEQUENCE,
    LockUnavailable,
    NoScriptRunning,
    ScriptAborted,
    ScriptError,
    ScriptFailed,
    ScriptInterrupted,
    ScriptNotExecutable,
    ScriptNotFound,
    ScriptResult,
    ScriptTimeout,
)
from .runner import ScriptRun, ScriptRunner, logger

__all__ = [
    "DEFAULT_ABORT_SEQUENCE",
    "DEFAULT_UDP_PORT",
    "UDP_MAX_BYTES",
    "LockUnavailable",
    "NoScriptRunning",
    "Publisher",
    "ScriptAborted",
    "ScriptError",
    "ScriptFailed",
    "ScriptInterrupted",
    "ScriptNotExecutable",
    "ScriptNotFound",
    "ScriptResult",
    "ScriptRun",
    "ScriptRunner",
    "ScriptTimeout",
    "StatusChannel",
    "logger",
    "publish",
    "script_argv",
]
