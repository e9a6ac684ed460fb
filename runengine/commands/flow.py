"""Commands that steer the plan: waiting, checkpoints, pauses, subscriptions, suspenders."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from bluesky.run_engine import WaitForTimeoutError
from bluesky.utils import IllegalMessageSequence, Msg, ensure_generator

from ..console import show_prompt
from ..eager import start
from ..stepper import REPLAYED
from ..suspension import tripped_futures
from .spec import command

if TYPE_CHECKING:
    from ..call import CallContext


@command("null")
def null(call: CallContext, msg: Msg) -> None:
    """Do nothing."""


@command("RE_class")
def re_class(call: CallContext, msg: Msg) -> type:
    """Return the engine's class."""
    return type(call.engine)


@command("wait")
def wait(call: CallContext, msg: Msg) -> Any:
    """Wait for every status in ``group``; True when all are done."""
    kwargs = msg.kwargs
    if msg.args:
        (group,) = msg.args
    elif "group" in kwargs:
        group = kwargs["group"]
    else:
        raise KeyError("Msg('wait') needs a group: Msg('wait', None, group=...)")
    statuses = call.statuses
    hook = statuses.waiting_hook = call.engine.waiting_hook
    if hook is None and not kwargs.get("watch") and statuses.finished_well(group):
        return True  # the common case of a Signal's trigger: no coroutine to run
    return start(
        statuses.wait(
            group,
            timeout=kwargs.get("timeout"),
            error_on_timeout=kwargs.get("error_on_timeout", True),
            watch=kwargs.get("watch", ()),
        )
    )


@command("wait_for")
async def wait_for(call: CallContext, msg: Msg) -> list:
    """Wait for awaitables made by the given factories; returns their futures."""
    (factories,) = msg.args
    futures = [asyncio.ensure_future(factory()) for factory in factories]
    if not futures:
        return futures
    try:
        _, pending = await asyncio.wait(futures, **msg.kwargs)
    except asyncio.CancelledError:
        for fut in futures:
            fut.cancel()
        raise
    if pending:
        raise WaitForTimeoutError("Plan failed to complete in the specified time")
    return futures


@command("sleep")
async def sleep(call: CallContext, msg: Msg) -> None:
    """Sleep ``args[0]`` seconds (cut short by a pause, and replayed on resume)."""
    await asyncio.sleep(*msg.args)


@command("checkpoint")
def checkpoint(call: CallContext, msg: Msg) -> None:
    """Mark a safe place to resume from; a deferred pause happens here."""
    for bundle in call.runs.values():
        if bundle.bundle_name is not None:
            raise IllegalMessageSequence(
                "Cannot 'checkpoint' after 'create' and before 'save'. Aborting!"
            )
    call.at_checkpoint()


@command("clear_checkpoint", subplan="checkpoints of the main plan are not a sub-plan's to clear")
def clear_checkpoint(call: CallContext, msg: Msg) -> None:
    """No resuming from here on: a pause becomes an abort for the rest of the call."""
    call.cache.clear()
    for bundle in call.runs.values():
        bundle.clear_checkpoint()


@command("rewindable", subplan="rewinding is set by the main plan")
def rewindable(call: CallContext, msg: Msg) -> bool:
    """Set whether messages are cached for replay (if given); returns the flag.

    The flag is the engine's (``RE.rewindable``): as in bluesky it outlasts the call.
    """
    flag = msg.args[0] if msg.args else None
    if flag is not None and bool(flag) != call.cache.rewindable:
        call.set_rewindable(bool(flag))
        call.checkpoint()
    return call.cache.rewindable


@command("pause", replay="skip", subplan="pausing is for the main plan")
def pause(call: CallContext, msg: Msg) -> None:
    """Pause now, or at the next checkpoint with ``defer=True``; may carry a name and callback."""
    unknown = set(msg.kwargs) - {"defer", "name", "callback"}
    if unknown:
        raise TypeError(f"Msg('pause') got unexpected keyword arguments {sorted(unknown)}")
    name = msg.kwargs.get("name")
    call.request_pause(
        msg.kwargs.get("defer", False), name, msg.kwargs.get("callback"), name or "plan"
    )


@command("input", subplan="only the main plan may prompt")
async def input_(call: CallContext, msg: Msg) -> str:
    """Prompt the user and return a line typed on stdin (the loop keeps running)."""
    prompt = msg.kwargs.get("prompt", "")
    show_prompt(prompt)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.rstrip("\n")


@command("subscribe", replay="skip", subplan="subscribe in the main plan")
def subscribe(call: CallContext, msg: Msg) -> int:
    """Subscribe a callback until the next call: ``Msg('subscribe', None, func, name)``."""
    func, *rest = msg.args
    name = rest[0] if rest else msg.kwargs.get("name", "all")
    token = call.subscribe(func, name)
    call.checkpoint()
    return token


@command("unsubscribe", replay="skip", subplan="subscribe in the main plan")
def unsubscribe(call: CallContext, msg: Msg) -> None:
    """Remove a subscription made with Msg('subscribe')."""
    token = msg.args[0] if msg.args else msg.kwargs["token"]
    call.unsubscribe(token)
    call.checkpoint()


@command("install_suspender", replay="skip", subplan="suspenders belong to the main plan")
def install_suspender(call: CallContext, msg: Msg) -> None:
    """Install a suspender for the rest of the session."""
    call.engine.install_suspender(msg.args[0])


@command("remove_suspender", replay="skip", subplan="suspenders belong to the main plan")
def remove_suspender(call: CallContext, msg: Msg) -> None:
    """Remove a suspender."""
    call.engine.remove_suspender(msg.args[0])


def _plan_of(plan: Any) -> Any:
    return ensure_generator(plan() if callable(plan) else plan)


def _raise_failed(futures: Any) -> None:
    """A suspender's release that raised (it gave up waiting) fails the plan with its error;
    ``wait_for`` itself, as bluesky's, only waits."""
    for fut in futures if isinstance(futures, list) else ():
        if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
            error = fut.exception()
            if error is not None:
                raise error


@command("_start_suspender", replay="skip", subplan="suspenders belong to the main plan")
def start_suspender(call: CallContext, msg: Msg) -> None:
    """Internal: hold the hardware, wait for the suspender to clear, then replay."""
    pre_plan, post_plan, justification, fut = msg.args
    for bundle in call.runs.values():
        bundle.record_interruption(justification or "suspended", "suspender", justification or "")
    call.hold_devices()
    replayed = call.rewind()
    was_rewindable = call.cache.rewindable
    call.in_suspension = True

    def suspension() -> Any:
        yield Msg("rewindable", None, False)
        try:
            if pre_plan is not None:
                yield from _plan_of(pre_plan)
            _raise_failed((yield Msg("wait_for", None, [fut])))
            # Another suspender may have tripped meanwhile, unheard: hold until all are clear.
            while others := tripped_futures(call.engine.suspenders):
                _raise_failed((yield Msg("wait_for", None, others)))
            yield Msg("_resume_from_suspender")
            if post_plan is not None:
                yield from _plan_of(post_plan)
        except BaseException:
            # The plan ends here: put the flag back directly (it outlasts the call).
            call.set_rewindable(was_rewindable)
            raise
        finally:
            call.in_suspension = False
        # Suspensions requested meanwhile start now, each with its own pre and post plans.
        held, call.held_suspensions[:] = list(call.held_suspensions), []
        for fut_, pre, post, why in held:
            yield Msg("_start_suspender", None, pre, post, why, fut_)
        yield Msg("rewindable", None, was_rewindable)
        last = None
        for replayed_msg in replayed:
            last = yield replayed_msg
        return last

    call.stack.push(suspension(), REPLAYED)


@command("_resume_from_suspender", subplan="suspenders belong to the main plan")
def resume_from_suspender(call: CallContext, msg: Msg) -> None:
    """Internal: restore monitors and resume Pausable devices after a suspension."""
    call.release_devices()
