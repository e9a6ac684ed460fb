"""The seed's timed and named pausing agents."""

import pytest
from bluesky.utils import Msg

from runengine import RunEngineInterrupted
from runengine.agents import NamedPausingAgent, TimedPausingAgent
from runengine.plans.pausing import do_nothing

pytestmark = pytest.mark.usefixtures("no_thread_leak")


def test_the_timed_agent_pauses_a_running_plan_after_its_delay(RE):
    with TimedPausingAgent(RE) as agent:
        agent.issue_request(hard=False, delay=0.2)  # the seed's spelling
        with pytest.raises(RunEngineInterrupted):
            RE(do_nothing(timeout=1.0, step=0.02))
        assert RE.state == "paused"
        assert agent.requests == 1
        assert isinstance(RE.resume(), tuple)  # nothing holds the resume: the plan ends
    assert RE.state == "idle"
    assert agent.errors == []


def test_the_named_agent_holds_the_resume_until_it_grants_permission(RE, capsys):
    with NamedPausingAgent(RE, "Timed Pausing Agent") as agent:
        agent.issue_request(defer=True, delay=0.2)
        with pytest.raises(RunEngineInterrupted):
            RE(do_nothing(timeout=1.0, step=0.02))
        assert RE.state == "paused"
        assert RE.resume() == ["Timed Pausing Agent"]  # not allowed!
        assert RE.state == "paused"
        assert "Timed Pausing Agent" in capsys.readouterr().out
        agent.permission = True
        RE.resume()
    assert RE.state == "idle"


def test_a_deferred_request_waits_for_the_next_checkpoint(RE):
    seen = []
    RE.msg_hook = lambda msg: seen.append(msg.command)
    with TimedPausingAgent(RE) as agent:
        agent.issue_request(defer=True, delay=0.05)
        with pytest.raises(RunEngineInterrupted):
            RE([Msg("checkpoint"), Msg("sleep", None, 0.3), Msg("null"), Msg("checkpoint")])
        assert seen == ["checkpoint", "sleep", "null", "checkpoint"]  # the sleep ran out
        RE.stop()


def test_stop_cancels_a_request_still_waiting(RE):
    agent = TimedPausingAgent(RE).start()
    thread = agent.issue_request(delay=30)
    agent.stop(timeout=2)
    assert not thread.is_alive()
    assert agent.requests == 0 and agent.errors == []


def test_a_request_that_cannot_be_delivered_is_reported(RE):
    reported = []
    with TimedPausingAgent(RE, on_error=lambda agent, exc: reported.append(exc)) as agent:
        agent.issue_request(delay=0).join(5)  # the engine is idle: nothing to pause
    assert len(agent.errors) == 1 and "idle" in str(agent.errors[0])
    assert reported == agent.errors


def test_requests_wait_on_the_engine_loop_not_on_threads(RE):
    import threading

    before = set(threading.enumerate())
    agent = TimedPausingAgent(RE).start()
    requests = [agent.issue_request(delay=30) for _ in range(5)]
    assert set(threading.enumerate()) - before == set()
    assert all(request.is_alive() for request in requests)
    requests[0].cancel()
    requests[0].join(1)
    assert not requests[0].is_alive()
    agent.stop(timeout=2)
    assert not any(request.is_alive() for request in requests)
    assert agent.requests == 0 and agent.errors == []


def test_requests_from_several_threads_while_stopping_are_delivered_or_cancelled(RE):
    """No request is left waiting and none is delivered after stop() returns."""
    import threading

    agent = TimedPausingAgent(RE).start()
    made = []
    delivered_after_stop = []

    def ask(n):
        for _ in range(20):
            made.append(agent.issue_request(delay=0.001 * n))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    agent.stop(timeout=2)
    delivered = agent.requests + len(agent.errors)  # idle engine: each delivery is an error
    for request in made:
        request.join(2)
    assert not any(request.is_alive() for request in made)
    delivered_after_stop.append(agent.requests + len(agent.errors) - delivered)
    assert delivered_after_stop == [0]
    assert agent.requests == 0  # nothing was running: every delivery failed and was reported
    assert all("idle" in str(err) for err in agent.errors)
