"""The seed's planned-pause session, exactly as the guide runs it."""

import pytest
from ophyd.sim import det1, motor1

from runengine import RunEngine, RunEngineInterrupted
from runengine.plans import cautious_stepscan, do_nothing


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


def test_cautious_stepscan_pauses_after_every_step_and_stops_cleanly(RE, capsys):
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    with pytest.raises(RunEngineInterrupted):
        RE(cautious_stepscan(det1, motor1))
    assert RE.state == "paused"
    for _ in range(2):
        with pytest.raises(RunEngineInterrupted):
            RE.resume()
        assert RE.state == "paused"
    RE.stop()
    assert RE.state == "idle"
    events = [doc for name, doc in docs if name == "event"]
    assert [e["data"]["motor1"] for e in events] == [-5, -4, -3]
    assert [e["seq_num"] for e in events] == [1, 2, 3]
    assert docs[-1][1]["exit_status"] == "success"
    assert capsys.readouterr().out.count(". Pausing.\n") == 3


def test_cautious_stepscan_resumed_to_the_end(RE):
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    with pytest.raises(RunEngineInterrupted):
        RE(cautious_stepscan(det1, motor1, start=0, stop=3))
    for _ in range(2):
        with pytest.raises(RunEngineInterrupted):
            RE.resume()
    RE.resume()  # the last pause was taken at the checkpoint before close_run
    assert RE.state == "idle"
    events = [doc for name, doc in docs if name == "event"]
    assert [e["seq_num"] for e in events] == [1, 2, 3]


def test_do_nothing_finishes_by_itself(RE):
    uids = RE(do_nothing(0.3, step=0.05))
    assert len(uids) == 1
