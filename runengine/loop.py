"""The engine's event loop thread, shared with bluesky's helpers."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import weakref

from bluesky import run_engine as _bluesky_re

__all__ = ["BlockingDuringTask", "ensure_loop_thread", "retire_with", "settle"]

logger = logging.getLogger(__name__)

_threads: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_retiring: weakref.WeakSet = weakref.WeakSet()  # loops to close once run_forever returns


def ensure_loop_thread(loop: asyncio.AbstractEventLoop) -> threading.Thread:
    """Run ``loop`` forever on a daemon thread named ``bluesky-run-engine``; return the thread.

    Idempotent. bluesky's own registry of loop threads is consulted and updated too, so a
    bluesky RunEngine and ours can share a loop.
    """
    # bluesky keeps its loop threads on a function attribute; an older or newer one may not.
    bluesky_threads = getattr(_bluesky_re._ensure_event_loop_running, "loop_to_thread", {})
    th = _threads.get(loop) or bluesky_threads.get(loop)
    if th is None:
        if loop.is_running():
            raise RuntimeError(f"The event loop {loop!r} is running on a thread we did not start.")
        started = threading.Event()
        loop.call_soon_threadsafe(started.set)
        th = threading.Thread(target=_serve, args=(loop,), daemon=True, name="bluesky-run-engine")
        th.start()
        started.wait(5)
    _threads[loop] = th
    bluesky_threads[loop] = th
    return th


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_forever()
    if loop in _retiring:
        _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the stopped ``loop``, close it, forget its thread."""
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    except Exception:  # a retired loop is garbage either way
        logger.debug("closing a retired event loop failed", exc_info=True)
    _threads.pop(loop, None)
    getattr(_bluesky_re._ensure_event_loop_running, "loop_to_thread", {}).pop(loop, None)


def _retire(loop: asyncio.AbstractEventLoop) -> None:
    if loop.is_closed() or _bluesky_re.get_bluesky_event_loop() is loop:
        return  # still bluesky's current loop: ophyd and bluesky helpers may call into it
    _retiring.add(loop)
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:  # closed meanwhile
        pass


def retire_with(owner: object, loop: asyncio.AbstractEventLoop) -> None:
    """When ``owner`` is garbage collected, stop ``loop``'s thread and close the loop (its
    selector and self-pipe: three file descriptors and a thread per RunEngine otherwise),
    unless it is still bluesky's current event loop. For loops the owner made itself."""
    weakref.finalize(owner, _retire, loop)


class BlockingDuringTask:
    """Wait for the engine in short timed slices, so signal handlers run promptly.

    With matplotlib on a Qt backend already imported, bluesky's DefaultDuringTask runs the Qt
    loop instead, so live plots stay responsive.
    """

    def __init__(self) -> None:
        self._qt = None
        if "matplotlib" in sys.modules:
            import matplotlib

            if "qt" in matplotlib.get_backend().lower():
                from bluesky.utils import DefaultDuringTask

                self._qt = DefaultDuringTask()

    def block(self, blocking_event: threading.Event) -> None:
        if self._qt is not None:
            self._qt.block(blocking_event)
            return
        while not blocking_event.wait(0.02):  # short slices: a Ctrl+C is heard at once
            pass


def settle(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until ``loop`` has run what was queued on it before now:
    a callback under way has ended. Returns at once on the loop's own thread or if it is not
    running."""
    try:
        if not loop.is_running() or asyncio.get_running_loop() is loop:
            return
    except RuntimeError:
        pass  # no loop runs on this thread: wait for it below
    settled = threading.Event()
    try:
        loop.call_soon_threadsafe(settled.set)
    except RuntimeError:  # closed meanwhile: it runs nothing any more
        return
    settled.wait(timeout)
