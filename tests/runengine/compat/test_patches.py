"""runengine.compat: cheaper bluesky and typing inside our calls; the originals elsewhere."""

from __future__ import annotations

import contextvars
import gc
import sys
import threading
import typing
import uuid
import warnings

import pytest
from bluesky import RunEngine as BlueskyRunEngine
from bluesky import plan_stubs as bps
from bluesky import utils as bluesky_utils
from bluesky.protocols import Movable, Readable, Triggerable
from bluesky.utils import Msg
from ophyd import Signal
from ophyd.sim import SynAxis

from runengine import RunEngine, compat


def test_every_patch_still_finds_the_shape_it_was_written_for():
    """Fails loudly when bluesky or Python moves a patched attribute: revisit the patch."""
    for patch in compat.PATCHES:
        if patch.owner is typing and sys.version_info >= (3, 12):
            assert not patch.applies()  # 3.12 caches protocol members itself
            continue
        assert patch.applies(), f"{patch.name}: {patch.why}"
        assert hasattr(patch.owner, patch.attribute), patch.name


def test_constructing_our_engine_installs_them_once():
    RunEngine({}, context_managers=[])
    first = compat.installed()
    RunEngine({}, context_managers=[])
    assert compat.installed() == first
    expected = 4 if sys.version_info < (3, 12) else 3
    assert len(first) == expected


def _uid_sources(RE) -> list[str]:
    """Which new_uid each of a plan's short_uid calls reached: 'os' (uuid4) or 'ours'."""
    seen = []
    real_uuid4 = uuid.uuid4

    def counting_uuid4():
        seen.append("os")
        return real_uuid4()

    def plan():
        uuid.uuid4 = counting_uuid4
        try:
            yield Msg("null")
            for _ in range(3):
                bluesky_utils.short_uid("x")
                seen.append("call")
        finally:
            uuid.uuid4 = real_uuid4

    RE(plan())
    return seen


def test_bluesky_engine_beside_ours_keeps_every_original():
    """A bluesky RunEngine in the same process, even on our loop, sees bluesky as installed."""
    ours = RunEngine({}, context_managers=[])
    theirs_alone = BlueskyRunEngine({}, context_managers=[])
    theirs_on_our_loop = BlueskyRunEngine({}, loop=ours.loop, context_managers=[])
    assert _uid_sources(ours) == ["call"] * 3
    assert _uid_sources(theirs_alone) == ["os", "call"] * 3
    assert _uid_sources(theirs_on_our_loop) == ["os", "call"] * 3


def test_a_stub_never_iterated_warns_with_where_it_was_made_inside_and_outside_our_calls():
    RE = RunEngine({}, context_managers=[])

    def plan():
        bps.null()  # made inside our call, never iterated
        yield Msg("null")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RE(plan())
        bps.null()  # made outside: bluesky's own Plan.__init__ formats the stack
        gc.collect()
    texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len([t for t in texts if "plan `null` was never iterated" in t]) == 2
    assert all("test_patches.py" in t for t in texts if "never iterated" in t)


def test_protocol_checks_answer_the_same_inside_and_outside_our_calls():
    objects = [Signal(name="s"), SynAxis(name="m"), object(), 3]

    def answers():
        return [isinstance(o, p) for o in objects for p in (Triggerable, Readable, Movable)]

    outside = answers()
    inside = []

    def plan():
        inside.extend(answers())
        yield Msg("null")

    RunEngine({}, context_managers=[])(plan())
    assert inside == outside
    assert outside[:3] == [True, True, True] and outside[6:] == [False] * 6


def test_uninstall_puts_back_the_originals_and_install_again():
    RunEngine({}, context_managers=[])
    patched = bluesky_utils.new_uid
    compat.uninstall()
    try:
        assert compat.installed() == []
        assert bluesky_utils.new_uid is not patched
        assert bluesky_utils.new_uid.__module__ == "bluesky.utils"
    finally:
        compat.install()
    assert len(compat.installed()) >= 3


def test_opting_in_a_thread_carries_into_the_tasks_it_starts():
    """The benchmarks' bluesky+: enter_engine_call on a thread turns the patches on for it."""
    results = []

    def worker():
        compat.enter_engine_call()
        results.append(compat.in_engine_call())
        compat.leave_engine_call()
        results.append(compat.in_engine_call())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert results == [True, False]
    assert contextvars.copy_context().run(compat.in_engine_call) is False


@pytest.mark.parametrize("flag", ["1"])
def test_the_environment_flag_keeps_the_originals(monkeypatch, flag):
    compat.uninstall()
    monkeypatch.setenv("RUNENGINE_NO_SPEEDUPS", flag)
    try:
        compat.install()
        assert compat.installed() == []
    finally:
        monkeypatch.delenv("RUNENGINE_NO_SPEEDUPS")
        compat.install()
