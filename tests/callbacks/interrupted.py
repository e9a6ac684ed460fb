"""A run paused once and resumed, shown to one display callback writing to text."""

from __future__ import annotations

import io
from typing import Any

import pytest
from bluesky.utils import RunEngineInterrupted


def paused_and_resumed(RE: Any, plan: Any, make_callback: Any) -> tuple[Any, str]:
    """Run ``plan`` (which pauses once) with ``make_callback(file=...)`` subscribed and the
    interruptions recorded, resume it; returns ``(the RunEngineResult, what was written)``."""
    out = io.StringIO()
    RE.record_interruptions = True
    token = RE.subscribe(make_callback(file=out))
    try:
        with pytest.raises(RunEngineInterrupted):
            RE(plan)
        result = RE.resume()
    finally:
        RE.unsubscribe(token)
        RE.record_interruptions = False
    return result, out.getvalue()
