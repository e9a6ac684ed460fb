"""runengine.speedups: bluesky and typing made cheaper without changing what they answer."""

from __future__ import annotations

import gc
import sys
import typing
import warnings

import pytest
from bluesky import plan_stubs as bps
from bluesky.protocols import Movable, Readable, Triggerable
from ophyd import Signal
from ophyd.sim import SynAxis

from runengine import speedups


@pytest.fixture
def toggled():
    was = speedups.installed()
    yield
    (speedups.install if was else speedups.uninstall)()


def answers():
    objects = [Signal(name="s"), SynAxis(name="m"), object(), 3]
    return [isinstance(o, p) for o in objects for p in (Triggerable, Readable, Movable)]


def test_protocol_checks_answer_the_same_with_and_without(toggled):
    speedups.uninstall()
    plain = answers()
    speedups.install()
    assert answers() == plain
    assert plain[:3] == [True, True, True] and plain[6:] == [False] * 6


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 caches protocol members itself")
def test_install_and_uninstall_swap_the_typing_helper(toggled):
    speedups.install()
    assert typing._is_callable_members_only is not speedups._MEMBERS_CHECK
    speedups.uninstall()
    assert typing._is_callable_members_only is speedups._MEMBERS_CHECK


def test_a_plan_never_iterated_still_warns_with_where_it_was_made(toggled):
    speedups.install()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bps.null()  # made, never iterated
        gc.collect()
    texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("plan `null` was never iterated" in t and "test_speedups.py" in t for t in texts)


def test_short_uids_are_version_4_uuids_from_ours_and_back(toggled):
    import uuid

    from bluesky import utils as bluesky_utils

    from runengine import documents

    speedups.install()
    assert bluesky_utils.new_uid is documents.new_uid
    assert len({bluesky_utils.new_uid() for _ in range(1000)}) == 1000
    label = bluesky_utils.short_uid("trigger")
    assert label.startswith("trigger-") and len(label) == len("trigger-") + 6
    assert uuid.UUID(bluesky_utils.new_uid()).version == 4
    speedups.uninstall()
    assert bluesky_utils.new_uid is speedups._ORIGINAL_NEW_UID
