"""A test extension: one command per replay policy, and hooks that record what they hear."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from runengine.call import CallContext, CallHooks
from runengine.commands import command
from runengine.extensions import Extension

COUNTS: Counter = Counter()  # how often each handler ran
HEARD: list[tuple[str, int]] = []  # (what, call number) from the hooks
CALLS: list[CallContext] = []  # every call started on an engine with the extension
FAIL_ON_CALL = []  # put anything here and on_call raises

KIT = Extension(
    "call-kit",
    __name__,
    ("kit_once", "kit_resend", "kit_skip", "kit_once_async", "kit_once_fail", "kit_resend_fail",
     "kit_fail_as_pause_comes", "kit_resend_fail_as_pause_comes"),
    on_call="started",
)  # fmt: skip


def reset() -> None:
    COUNTS.clear()
    HEARD.clear()
    CALLS.clear()
    FAIL_ON_CALL.clear()


def _ran(name: str, msg: Any) -> tuple[str, int, Any]:
    COUNTS[name] += 1
    return (name, COUNTS[name], msg.args[0] if msg.args else None)


@command("kit_once", replay="once")
def kit_once(call: CallContext, msg: Any) -> Any:
    return _ran("once", msg)


@command("kit_resend")
def kit_resend(call: CallContext, msg: Any) -> Any:
    return _ran("resend", msg)


@command("kit_skip", replay="skip")
def kit_skip(call: CallContext, msg: Any) -> Any:
    return _ran("skip", msg)


@command("kit_once_async", replay="once")
async def kit_once_async(call: CallContext, msg: Any) -> Any:
    await asyncio.sleep(0.001)  # it really waits: the answer comes through a Suspended
    return _ran("once_async", msg)


@command("kit_once_fail", replay="once")
def kit_once_fail(call: CallContext, msg: Any) -> Any:
    raise ValueError(_ran("once_fail", msg))


@command("kit_resend_fail")
def kit_resend_fail(call: CallContext, msg: Any) -> Any:
    raise ValueError(_ran("resend_fail", msg))


def _fail_as_pause_comes(call: CallContext, msg: Any, name: str) -> Any:
    """Ask for an immediate pause, then fail: the pause forgives the error, as the message
    that raised it is replayed on resume (a device failing as a suspender trips)."""
    ran = _ran(name, msg)
    if ran[1] == 1:
        call.request_pause(False, None, None, "call_kit")
    raise ValueError(ran)


@command("kit_fail_as_pause_comes", replay="once")
def kit_fail_as_pause_comes(call: CallContext, msg: Any) -> Any:
    return _fail_as_pause_comes(call, msg, "fail_as_pause_comes")


@command("kit_resend_fail_as_pause_comes")
def kit_resend_fail_as_pause_comes(call: CallContext, msg: Any) -> Any:
    return _fail_as_pause_comes(call, msg, "resend_fail_as_pause_comes")


class Heard(CallHooks):
    def __init__(self, number: int) -> None:
        self.number = number

    def paused(self, call: CallContext) -> None:
        HEARD.append(("paused", self.number))

    def resumed(self, call: CallContext) -> None:
        HEARD.append(("resumed", self.number))

    def ended(self, call: CallContext) -> None:
        HEARD.append((f"ended {call.exit_status}", self.number))


def started(call: CallContext) -> None:
    if FAIL_ON_CALL:
        raise RuntimeError("call_kit refuses the call")
    CALLS.append(call)
    call.attach(Heard(len(CALLS)))
