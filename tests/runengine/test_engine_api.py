"""The public surface a bluesky user relies on."""

import asyncio
import threading

import bluesky
import pytest
from bluesky import plans as bp
from bluesky import run_engine as bluesky_re
from bluesky.utils import Msg
from ophyd.sim import det

from runengine import RunEngine, RunEngineResult


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


def test_metadata_is_kept_by_reference_with_versions():
    md = {"owner": "demo"}
    RE = RunEngine(md, context_managers=[])
    assert RE.md is md
    assert md["versions"]["bluesky"] == bluesky.__version__
    assert {"event_model", "ophyd"} <= set(md["versions"])


def test_loop_thread_and_bluesky_helpers_find_our_loop(RE):
    assert RE._th.name == "bluesky-run-engine"
    assert RE.loop is RE._loop
    assert bluesky_re.get_bluesky_event_loop() is RE._loop
    seen = {}

    def plan():
        seen["thread"] = threading.current_thread().name
        seen["in_loop"] = bluesky_re.in_bluesky_event_loop()
        yield Msg("null")

    RE(plan())
    assert seen == {"thread": "bluesky-run-engine", "in_loop": True}

    async def answer():
        return 42

    assert bluesky_re.call_in_bluesky_event_loop(answer()) == 42


def test_an_existing_loop_can_be_given():
    loop = asyncio.new_event_loop()
    RE = RunEngine({}, loop=loop, context_managers=[])
    assert RE._loop is loop
    RE2 = RunEngine({}, loop=loop, context_managers=[])
    assert RE2._th is RE._th


def test_scan_id_increments_and_call_md_overrides_plan_md(RE):
    docs = []
    RE(bp.count([det], md={"who": "plan"}), lambda n, d: docs.append((n, d)), who="call")
    RE(bp.count([det]), lambda n, d: docs.append((n, d)))
    starts = [d for n, d in docs if n == "start"]
    assert [s["scan_id"] for s in starts] == [1, 2]
    assert starts[0]["who"] == "call"
    assert starts[0]["plan_name"] == "count" and starts[0]["plan_type"] == "generator"
    assert RE.md["scan_id"] == 2


def test_scan_id_source_may_be_async():
    async def source(md):
        return 100

    RE = RunEngine({}, scan_id_source=source, context_managers=[])
    docs = []
    RE(bp.count([det]), lambda n, d: docs.append(d))
    assert docs[0]["scan_id"] == 100


def test_temporary_subs_last_until_the_next_call(RE):
    first, second = [], []
    RE(bp.count([det]), lambda n, d: first.append(n))
    RE(bp.count([det]), {"stop": lambda n, d: second.append(n)})
    assert first == ["start", "descriptor", "event", "stop"]
    assert second == ["stop"]


def test_subscribe_and_unsubscribe(RE):
    got = []
    token = RE.subscribe(lambda n, d: got.append(n), "start")
    RE(bp.count([det]))
    RE.unsubscribe(token)
    RE(bp.count([det]))
    assert got == ["start"]
    RE.unsubscribe(12345)  # unknown tokens are ignored
    with pytest.raises(KeyError):
        RE.subscribe(print, "not-a-document")


def test_call_returns_result():
    RE = RunEngine({}, call_returns_result=True, context_managers=[])

    def plan():
        yield from bp.count([det])
        return "the answer"

    result = RE(plan())
    assert isinstance(result, RunEngineResult)
    assert result.plan_result == "the answer"
    assert result.exit_status == "success"
    assert not result.interrupted and result.exception is None
    assert len(result.run_start_uids) == 1


def test_register_command_plain_and_async(RE):
    calls = []

    def plain(msg):
        """Plain handler."""
        calls.append(("plain", msg.args))
        return "p"

    async def coro(msg):
        """Async handler."""
        await asyncio.sleep(0)
        calls.append(("coro", msg.args))
        return "c"

    RE.register_command("plain", plain)
    RE.register_command("coro", coro)
    assert {"plain", "coro"} <= set(RE.commands)
    results = []

    def plan():
        results.append((yield Msg("plain", None, 1)))
        results.append((yield Msg("coro", None, 2)))

    RE(plan())
    assert results == ["p", "c"]
    assert calls == [("plain", (1,)), ("coro", (2,))]
    RE.unregister_command("plain")
    assert "plain" not in RE.commands


def test_print_command_registry_lists_every_command_with_a_docstring(RE):
    text = RE.print_command_registry()
    lines = text.splitlines()
    assert lines[0] == "List of available commands"
    assert len(lines) == len(RE.commands) + 1
    for line in lines[1:]:
        name, _, doc = line.partition(" : ")
        assert name in RE.commands
        assert doc, f"command {name} has no docstring"


def test_every_bluesky_command_is_registered(RE):
    expected = {
        "open_run", "close_run", "declare_stream", "create", "read", "save", "drop", "set",
        "trigger", "wait", "wait_for", "sleep", "checkpoint", "clear_checkpoint", "rewindable",
        "pause", "input", "kickoff", "complete", "collect", "prepare", "configure", "stage",
        "unstage", "subscribe", "unsubscribe", "monitor", "unmonitor", "locate", "stop", "null",
        "install_suspender", "remove_suspender", "RE_class", "_start_suspender",
        "_resume_from_suspender",
    }  # fmt: skip
    assert expected <= set(RE.commands)


def test_hooks_see_every_message_and_transition(RE):
    msgs, states = [], []
    RE.msg_hook = msgs.append
    RE.state_hook = lambda new, old: states.append((new, old))
    RE(bp.count([det]))
    assert msgs[0].command == "stage" and msgs[-1].command == "unstage"
    assert states == [("running", "idle"), ("idle", "running")]


def test_off_main_thread_with_default_context_managers():
    RE = RunEngine({})
    result = []
    th = threading.Thread(target=lambda: result.append(RE(bp.count([det]))))
    th.start()
    th.join(10)
    assert len(result) == 1 and len(result[0]) == 1


# ---- bluesky's private names that its clients and tests use -------------------------------
def _engines():
    return [
        pytest.param(lambda: bluesky.RunEngine({}, context_managers=[]), id="bluesky"),
        pytest.param(lambda: RunEngine({}, context_managers=[]), id="runengine"),
    ]


def _event_on(loop):
    async def make():
        return asyncio.Event()

    return asyncio.run_coroutine_threadsafe(make(), loop).result(5)


@pytest.mark.parametrize("make", _engines())
def test_cancelling_RE_task_aborts_the_plan_and_the_call_returns(make):
    """bluesky's sideband cancel: RE._task.cancel() on the loop throws CancelledError into the
    plan; its cleanup runs, the run closes 'abort' and RE() returns without raising."""
    RE = make()
    docs, cleaned = [], []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    never = _event_on(RE.loop)

    def plan():
        yield Msg("open_run")
        try:
            yield Msg("wait_for", None, [never.wait])
        finally:
            cleaned.append(True)
            yield Msg("null")  # the cleanup's messages are still processed
        yield Msg("close_run")

    threading.Timer(0.3, lambda: RE.loop.call_soon_threadsafe(RE._task.cancel)).start()
    RE(plan())
    assert RE.state == "idle" and RE._task.cancelled() and cleaned == [True]
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "abort"
    RE([Msg("open_run"), Msg("close_run")])  # the engine is fine afterwards
    assert docs[-1][1]["exit_status"] == "success"


@pytest.mark.parametrize("make", _engines())
def test_run_bundlers_lists_the_open_runs_until_reset(make):
    RE = make()
    with pytest.raises(bluesky.utils.RunEngineInterrupted):
        RE([Msg("open_run"), Msg("checkpoint"), Msg("pause")])
    assert len(RE._run_bundlers) == 1
    RE.reset()
    assert len(RE._run_bundlers) == 0 and RE.state == "idle"


@pytest.mark.parametrize("make", _engines())
def test_a_plan_raising_generatorexit_fails_with_a_valueerror(make):
    """GeneratorExit must not reach the caller (it would end the caller's own generator): a
    ValueError caused by it. (bluesky's test_invalid_generator covers a plan yielding as it is
    closed, in a suspension's pre_plan.)"""
    RE = make()
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))

    def sub_plan():
        yield Msg("null")
        raise GeneratorExit("this one")

    def plan():
        yield Msg("open_run")
        yield from sub_plan()

    with pytest.raises(ValueError) as info:
        RE(plan())
    assert isinstance(info.value.__cause__, GeneratorExit)
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "fail"
    assert RE.state == "idle"


@pytest.mark.parametrize("make", _engines())
def test_status_done_is_read_as_often_as_bluesky_reads_it(make):
    """A status class of the user's sees only the reads of ``done`` that bluesky makes."""
    from ophyd.status import StatusBase

    class Counting(StatusBase):
        reads = 0

        @property
        def done(self):
            Counting.reads += 1
            return Counting.reads >= 4

    class Device:
        name = "dev"

        def trigger(self):
            return Counting()

    RE = make()
    polls = []

    def plan():
        yield Msg("trigger", Device(), group="g")
        done = False
        while not done:
            done = yield Msg("wait", None, group="g", timeout=0.01, error_on_timeout=False)
            polls.append(done)
            assert len(polls) < 20

    RE(plan())
    assert polls == [False, False, True]  # add_callback read once, then one read per wait
    assert not RE._seen_wait_and_move_on_keys
