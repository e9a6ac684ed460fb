"""Test helpers for acting on a running engine from another thread."""

from __future__ import annotations

import threading
import time


def later(delay, func, *args, engine=None):
    """Call ``func(*args)`` from a thread ``delay`` s after ``engine`` starts running (``func``'s
    own engine, if it is a method of one; else ``delay`` s from now). A timer started before
    ``RE(plan)`` raced the plan's start under load and could find the engine still idle."""
    engine = engine if engine is not None else getattr(func, "__self__", None)

    def fire():
        if hasattr(engine, "state") and hasattr(engine, "request_pause"):
            deadline = time.monotonic() + 30
            while engine.state == "idle" and time.monotonic() < deadline:
                time.sleep(0.001)
        time.sleep(delay)
        func(*args)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


def poll(predicate, timeout: float = 5.0) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` s (looked at every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()
