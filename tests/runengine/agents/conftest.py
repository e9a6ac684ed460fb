"""Fixtures of the pausing-agent tests: an engine of their own, a thread-count baseline."""

import threading
import time

import pytest

from tests.conftest import threads_left


@pytest.fixture
def no_thread_leak(RE):
    """Fail the test if it leaves more threads running than it found (the engine made first)."""
    before = set(threading.enumerate())
    yield
    assert threads_left(before) == [], "threads left behind"


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.005)
