"""A RunEngine that is dropped ends its loop thread and closes its loop (issue: fds past 1023).

Each RunEngine makes an event loop (an epoll fd and a self-pipe) and a thread that runs it
forever. A long process that makes many (a test session, a notebook re-running a cell) ran
out of select()-able fds. Ours are given back when the engine is collected; bluesky's are not
(side by side below), and bluesky's current loop is never closed under it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import weakref

from bluesky import RunEngine as BlueskyRunEngine
from bluesky import plans as bp
from bluesky import run_engine as bluesky_re
from ophyd.sim import det

from runengine import RunEngine
from tests.timing import poll

ENGINES = 12


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def loop_threads() -> int:
    return sum(t.name == "bluesky-run-engine" for t in threading.enumerate())


def make_and_drop(cls, n: int) -> list[asyncio.AbstractEventLoop]:
    loops, refs = [], []
    for _ in range(n):
        RE = cls({}, context_managers=[])
        RE(bp.count([det], 2))
        loops.append(RE.loop)
        refs.append(weakref.ref(RE))
        del RE
    gc.collect()
    assert all(ref() is None for ref in refs)  # nothing keeps a finished engine alive
    return loops


def test_dropped_engines_close_their_loops_and_end_their_threads_bluesky_s_do_not():
    gc.collect()
    fds0, threads0 = fds(), loop_threads()
    ours = make_and_drop(RunEngine, ENGINES)
    current = bluesky_re.get_bluesky_event_loop()
    assert current is ours[-1]
    assert poll(lambda: all(loop.is_closed() for loop in ours[:-1]), timeout=10)
    assert not current.is_closed() and current.is_running()  # bluesky's current loop stays
    assert poll(lambda: loop_threads() <= threads0 + 1, timeout=10)
    assert fds() <= fds0 + 3  # the one loop left: epoll and its self-pipe

    theirs = make_and_drop(BlueskyRunEngine, ENGINES)
    time.sleep(0.2)
    assert not any(loop.is_closed() for loop in theirs)  # bluesky keeps every one
    assert loop_threads() >= threads0 + ENGINES
    for loop in theirs:  # tidy up what bluesky left
        loop.call_soon_threadsafe(loop.stop)


def test_a_loop_given_to_the_engine_is_left_to_its_owner():
    loop = asyncio.new_event_loop()
    RE = RunEngine({}, loop=loop, context_managers=[])
    RE(bp.count([det], 1))
    del RE
    gc.collect()
    RunEngine({}, context_managers=[])  # another engine's loop becomes bluesky's current one
    gc.collect()
    time.sleep(0.2)
    assert loop.is_running() and not loop.is_closed()
    loop.call_soon_threadsafe(loop.stop)


def test_an_engine_made_after_others_were_dropped_runs():
    make_and_drop(RunEngine, 3)
    RE = RunEngine({}, context_managers=[], call_returns_result=True)
    assert RE(bp.count([det], 3)).exit_status == "success"
