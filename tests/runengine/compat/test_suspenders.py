"""compat.harden: bluesky's suspenders hardened while installed in our engine, only then."""

from __future__ import annotations

import threading
import time

from bluesky import RunEngine as BlueskyRunEngine
from bluesky.suspenders import SuspendBoolHigh
from ophyd import Signal

from runengine import compat
from tests.conftest import fresh_engine, leave_idle

PATCHED = ("_SuspenderBase__make_event", "get_futures")


def test_bluesky_still_has_the_shape_harden_was_written_for():
    """Fails loudly when bluesky changes SuspenderBase: revisit runengine.compat._suspenders."""
    assert compat.HARDENABLE


def test_a_suspender_is_hardened_while_installed_and_bluesky_s_again_after():
    signal = Signal(name="beam_dump", value=0)
    suspender = SuspendBoolHigh(signal, sleep=0)
    RE = fresh_engine()
    try:
        RE.install_suspender(suspender)
        assert all(name in vars(suspender) for name in PATCHED)
        RE.remove_suspender(suspender)
        assert not [name for name in PATCHED if name in vars(suspender)]
    finally:
        leave_idle(RE)
    # Then in bluesky's engine it is bluesky's own: a trip with the loop busy for longer
    # than 0.1 s is dropped there, as without runengine.
    bluesky_RE = BlueskyRunEngine({}, context_managers=[])
    bluesky_RE.install_suspender(suspender)
    try:
        assert type(suspender).get_futures is not None
        assert "get_futures" not in vars(suspender)
        busy = threading.Event()

        def keep_busy():
            busy.set()
            time.sleep(0.5)

        bluesky_RE.loop.call_soon_threadsafe(keep_busy)
        assert busy.wait(10)
        signal.put(1)
        assert suspender.tripped
        assert suspender._ev is None  # bluesky's __make_event gave up: the trip was dropped
    finally:
        signal.put(0)
        bluesky_RE.remove_suspender(suspender)


def test_harden_leaves_our_own_suspenders_and_other_objects_alone():
    from runengine.locks import HardwareLock
    from runengine.suspenders import SuspendWhileLocked

    ours = SuspendWhileLocked(HardwareLock("mono"), sleep=0)  # hardened = True: its own way
    assert not compat.harden(ours) and "get_futures" not in vars(ours)
    assert not compat.harden(object())
