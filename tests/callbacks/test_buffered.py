"""Buffered: a slow or failing subscriber behind a bounded queue never stalls the engine."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
from bluesky.plans import count
from ophyd.sim import det

from runengine import RunEngine
from runengine.callbacks import Buffered


@pytest.fixture(scope="module")
def RE():
    return RunEngine({}, context_managers=[], call_returns_result=True)


def events(docs):
    return [doc["seq_num"] for name, doc in docs if name == "event"]


def names(docs):
    return [name for name, _ in docs if name != "event"]


def no_worker_threads(buffered):
    deadline = time.monotonic() + 5
    while buffered.worker_alive and time.monotonic() < deadline:
        time.sleep(0.01)
    return not buffered.worker_alive


@pytest.mark.parametrize("policy", ["drop", "latest"])
def test_slow_subscriber_does_not_stall_a_fast_count(RE, policy, caplog):
    store, slow_docs = [], []

    def slow(name, doc):
        slow_docs.append((name, doc))
        if name == "event":
            time.sleep(0.05)

    buffered = Buffered(slow, maxsize=10, policy=policy)
    tokens = [RE.subscribe(lambda n, d: store.append((n, d))), RE.subscribe(buffered)]
    try:
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="runengine.callbacks.buffered"):
            result = RE(count([det], num=500))
        elapsed = time.monotonic() - t0
        assert buffered.flush(timeout=10)
    finally:
        for token in tokens:
            RE.unsubscribe(token)
        buffered.close()
    assert result.exit_status == "success"
    assert elapsed < 500 * 0.05 / 2  # 25 s if the engine waited for the slow subscriber
    assert events(store) == list(range(1, 501))  # registered directly: lossless
    assert names(slow_docs) == ["start", "descriptor", "stop"]
    seen = events(slow_docs)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # in order, no duplicate
    assert 0 < buffered.dropped < 500
    assert len(seen) + buffered.dropped == 500
    assert buffered.dropped_last_run == buffered.dropped
    if policy == "latest":
        assert seen[-1] == 500  # the subscriber ends up current
    else:
        assert seen[:10] == list(range(1, 11))  # the first ones fit in the queue
    assert f"dropped {buffered.dropped} events" in caplog.text
    assert no_worker_threads(buffered)


def test_all_documents_in_order_when_it_keeps_up(RE):
    direct, behind = [], []
    buffered = Buffered(lambda n, d: behind.append((n, d)), maxsize=1000)
    tokens = [RE.subscribe(lambda n, d: direct.append((n, d))), RE.subscribe(buffered)]
    try:
        RE(count([det], num=50))
        RE(count([det], num=5))
        assert buffered.flush(5)
    finally:
        for token in tokens:
            RE.unsubscribe(token)
    assert [(n, d["uid"]) for n, d in behind] == [(n, d["uid"]) for n, d in direct]
    assert buffered.dropped == 0 and buffered.errors == 0
    assert buffered.delivered == len(direct) == 2 * 3 + 55
    assert no_worker_threads(buffered)  # ended by itself once no run was open
    assert buffered.close()


def test_exceptions_are_logged_with_the_callback_name_and_counted(RE, caplog):
    def broken_display(name, doc):
        if name == "event":
            raise ZeroDivisionError("boom")

    buffered = Buffered(broken_display)
    token = RE.subscribe(buffered)
    try:
        with caplog.at_level(logging.ERROR, logger="runengine.callbacks.buffered"):
            result = RE(count([det], num=7))
            assert buffered.flush(5)
    finally:
        RE.unsubscribe(token)
        buffered.close()
    assert result.exit_status == "success"
    assert buffered.errors == 7
    assert buffered.delivered == 7 + 3
    assert "broken_display" in caplog.text and "ZeroDivisionError" in caplog.text


def _run_docs(n_pages=0, n_events=0):
    start = {"uid": "run1", "time": 0.0}
    descriptor = {"uid": "d1", "run_start": "run1", "name": "primary", "data_keys": {}}
    docs = [("start", start), ("descriptor", descriptor)]
    docs += [("event", {"descriptor": "d1", "seq_num": i + 1}) for i in range(n_events)]
    docs += [("event_page", {"descriptor": "d1", "seq_num": [1, 2, 3]})] * n_pages
    return [*docs, ("stop", {"uid": "s1", "run_start": "run1", "exit_status": "success"})]


def blocked_subscriber():
    """A callback that blocks on its first event until released."""
    entered, release, got = threading.Event(), threading.Event(), []

    def cb(name, doc):
        got.append(name)
        if name in ("event", "event_page") and not entered.is_set():
            entered.set()
            release.wait(10)

    return cb, entered, release, got


def test_event_pages_count_their_events_and_stop_is_never_dropped():
    cb, entered, release, got = blocked_subscriber()
    buffered = Buffered(cb, maxsize=2)
    docs = _run_docs(n_pages=6)
    for name, doc in docs[:3]:
        buffered(name, doc)
    assert entered.wait(5)
    for name, doc in docs[3:]:  # 5 pages while the first is in the callback, then the stop
        buffered(name, doc)
    assert buffered.dropped == 3 * 3  # two pages fit in the queue
    release.set()
    assert buffered.close(5)
    assert got == ["start", "descriptor", "event_page", "event_page", "event_page", "stop"]
    assert buffered.dropped_last_run == 9


def test_latest_policy_drops_the_oldest_waiting_event():
    seen = []
    cb, entered, release, _ = blocked_subscriber()
    buffered = Buffered(lambda n, d: (cb(n, d), seen.append(d.get("seq_num"))), 3, "latest")
    docs = _run_docs(n_events=10)
    for name, doc in docs[:3]:
        buffered(name, doc)
    assert entered.wait(5)
    for name, doc in docs[3:]:
        buffered(name, doc)
    release.set()
    assert buffered.close(5)
    assert [s for s in seen if s is not None] == [1, 8, 9, 10]
    assert buffered.dropped == 6


def test_close_with_a_stuck_callback_returns_false_and_refuses_documents():
    cb, entered, release, got = blocked_subscriber()
    buffered = Buffered(cb)
    for name, doc in _run_docs(n_events=3)[:3]:
        buffered(name, doc)
    assert entered.wait(5)
    t0 = time.monotonic()
    assert buffered.close(timeout=0.2) is False
    assert time.monotonic() - t0 < 5
    buffered("event", {"descriptor": "d1", "seq_num": 2})
    assert buffered.pending == 0  # closed: nothing queued
    release.set()
    assert no_worker_threads(buffered)
    assert got == ["start", "descriptor", "event"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="policy"):
        Buffered(print, policy="sometimes")
    with pytest.raises(ValueError, match="maxsize"):
        Buffered(print, maxsize=0)
    with pytest.raises(TypeError, match="callable"):
        Buffered("print")
    assert "print" in repr(Buffered(print))


def test_a_slow_table_behind_buffered_notes_the_rows_it_skipped(RE):
    import io

    from runengine.callbacks import RichTable

    class SlowTable(RichTable):
        def event(self, doc):
            time.sleep(0.02)
            super().event(doc)

    out = io.StringIO()
    table = SlowTable(file=out)
    buffered = Buffered(table, maxsize=5)
    result = RE(count([det], num=300), buffered)
    assert buffered.close(10)
    assert result.exit_status == "success"
    text = out.getvalue()
    assert buffered.dropped > 0 and table.rows + buffered.dropped == 300
    skipped = sum(int(n) for n in re.findall(r"-- (\d+) events? not shown --", text))
    assert skipped == buffered.dropped - (300 - table._last_seq)  # trailing drops: no note
    assert "success: " in text


def test_the_worker_restarts_for_each_run_without_losing_a_document():
    got = []
    buffered = Buffered(lambda n, d: got.append(n))
    for _ in range(200):  # the worker may be ending just as the next run starts
        for name, doc in _run_docs(n_events=1):
            buffered(name, doc)
    assert buffered.flush(5)
    assert got == ["start", "descriptor", "event", "stop"] * 200
    assert no_worker_threads(buffered) and buffered.close()
