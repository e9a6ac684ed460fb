"""runengine: a fast, interruption-correct run engine for bluesky plans.

``from runengine import RunEngine`` is a drop-in for ``from bluesky import RunEngine``.
"""

from bluesky.run_engine import RunEngineResult, WaitForTimeoutError
from bluesky.utils import (
    FailedPause,
    FailedStatus,
    IllegalMessageSequence,
    InvalidCommand,
    Msg,
    NoReplayAllowed,
    PlanHalt,
    RequestAbort,
    RequestStop,
    RunEngineInterrupted,
)

from .control import EngineBusy
from .engine import PANIC_MSG, RunEngine, default_scan_id_source
from .errors import RunEngineError
from .states import STATES, TABLE, TRANSITIONS, EngineState, TransitionError

__version__ = "0.1.0"

__all__ = [
    "PANIC_MSG",
    "STATES",
    "TABLE",
    "TRANSITIONS",
    "EngineBusy",
    "EngineState",
    "FailedPause",
    "FailedStatus",
    "IllegalMessageSequence",
    "InvalidCommand",
    "Msg",
    "NoReplayAllowed",
    "PlanHalt",
    "RequestAbort",
    "RequestStop",
    "RunEngine",
    "RunEngineError",
    "RunEngineInterrupted",
    "RunEngineResult",
    "TransitionError",
    "WaitForTimeoutError",
    "default_scan_id_source",
]
