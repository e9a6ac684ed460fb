"""Fixtures of the pausing-agent tests: an engine of their own, a thread-count baseline."""

import threading
import time

import pytest


@pytest.fixture
def no_thread_leak(RE):
    """Fail the test if it leaves more threads running than it found (the engine made first)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while (extra := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not extra, f"threads left behind: {sorted(t.name for t in extra)}"


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.005)
