"""Bad input: a precise error naming the culprit, the engine idle, runs closed, data kept."""

import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.utils import Msg
from ophyd import Signal
from ophyd.sim import SynAxis, det

from runengine import InvalidCommand, RunEngine


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


@pytest.fixture
def docs(RE):
    collected = []
    RE.subscribe(lambda name, doc: collected.append((name, doc)))
    return collected


def names(docs):
    return [name for name, _ in docs]


def test_non_iterable_plan_is_refused_before_anything_runs(RE):
    with pytest.raises(TypeError):
        RE(42)
    assert RE.state == "idle"
    assert RE(bp.count([det])) != ()


def test_plan_yielding_something_else_than_a_msg(RE, docs):
    def plan():
        yield Msg("open_run")
        yield ("set", "motor", 1)

    with pytest.raises(TypeError, match=r"must yield bluesky\.utils\.Msg.*'set'"):
        RE(plan())
    assert RE.state == "idle"
    assert names(docs) == ["start", "stop"]
    assert docs[-1][1]["exit_status"] == "fail"


def test_unknown_command_is_thrown_into_the_plan(RE, docs):
    caught = []

    def plan():
        yield Msg("open_run")
        try:
            yield Msg("levitate", None)
        except InvalidCommand as err:
            caught.append(err)
            raise

    with pytest.raises(InvalidCommand, match="levitate"):
        RE(plan())
    assert caught and isinstance(caught[0], KeyError)
    assert RE.state == "idle"
    stop = docs[-1][1]
    assert stop["exit_status"] == "fail" and "levitate" in stop["reason"]


class ReadFails(Signal):
    def __init__(self, *args, fail_after=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = 0
        self.fail_after = fail_after

    def read_configuration(self):
        return {}

    def describe_configuration(self):
        return {}

    def read(self):
        self.reads += 1
        if self.reads > self.fail_after:
            raise OSError(f"{self.name}: detector unplugged")
        return super().read()


def test_device_whose_read_raises_ends_the_run_as_failed_and_keeps_the_events(RE, docs):
    sig = ReadFails(name="flaky", value=1.0, fail_after=2)
    with pytest.raises(OSError, match="flaky: detector unplugged"):
        RE(bp.count([sig], 5))
    assert RE.state == "idle"
    assert names(docs) == ["start", "descriptor", "event", "event", "stop"]
    stop = docs[-1][1]
    assert stop["exit_status"] == "fail"
    assert "detector unplugged" in stop["reason"]
    assert stop["num_events"] == {"primary": 2}


def test_device_set_that_raises(RE, docs):
    class Jammed(SynAxis):
        def set(self, value):
            raise RuntimeError("motor jammed")

    motor = Jammed(name="jammed")
    with pytest.raises(RuntimeError, match="motor jammed"):
        RE(bp.scan([det], motor, 0, 1, 3))
    assert RE.state == "idle"
    assert docs[-1][1]["exit_status"] == "fail"


def test_object_without_the_needed_method(RE):
    with pytest.raises(TypeError, match=r"Msg\('set'\) needs an object with set\(\)"):
        RE(bps.abs_set(object(), 1))
    assert RE.state == "idle"


def test_callback_that_raises_fails_the_plan_with_its_exception(RE):
    seen = []

    def bad_callback(name, doc):
        seen.append(name)
        if name == "event":
            raise ZeroDivisionError("callback broke")

    with pytest.raises(ZeroDivisionError, match="callback broke"):
        RE(bp.count([det], 3), bad_callback)
    assert RE.state == "idle"
    assert seen == ["start", "descriptor", "event", "stop"]


def test_a_callback_that_raises_on_start_still_gets_the_run_closed(RE, docs):
    """The run is open once its start is emitted, whoever fails on it: a stop follows."""

    def bad_callback(name, doc):
        raise RuntimeError("cannot store this start")

    RE.subscribe(bad_callback, "start")
    with pytest.raises(RuntimeError, match="cannot store this start"):
        RE(bp.count([det], 3))
    assert RE.state == "idle"
    (start,) = [doc for name, doc in docs if name == "start"]
    (stop,) = [doc for name, doc in docs if name == "stop"]
    assert stop["run_start"] == start["uid"]
    assert stop["exit_status"] == "fail" and "cannot store this start" in stop["reason"]


def test_ignored_callback_exceptions_only_warn(RE):
    def bad_callback(name, doc):
        if name == "event":
            raise ZeroDivisionError("callback broke")

    RE.ignore_callback_exceptions = True
    with pytest.warns(UserWarning, match="ZeroDivisionError"):
        uids = RE(bp.count([det], 2), bad_callback)
    assert len(uids) == 1


def test_calling_the_engine_while_it_runs(RE):
    errors = []

    def plan():
        yield Msg("null")
        try:
            RE(bp.count([det]))
        except RuntimeError as err:
            errors.append(str(err))

    RE(plan())
    assert errors == ["The RunEngine is in a running state"]
    assert RE.state == "idle"


def test_invalid_metadata_is_refused_and_names_the_key(RE, docs):
    with pytest.raises(ValueError, match="'sample' must be a string or a dictionary"):
        RE(bp.count([det]), sample=[1, 2])
    assert RE.state == "idle"
    assert docs == []
    assert RE(bp.count([det]), sample="dirt")


def test_non_string_metadata_keys(RE):
    RE.md[1] = "one"
    with pytest.raises(ValueError, match=r"keys must be strings.*\[1\]"):
        RE(bp.count([det]))
    assert RE.state == "idle"
    del RE.md[1]
    assert RE(bp.count([det]))


def test_bad_subs_argument(RE):
    with pytest.raises(KeyError):
        RE(bp.count([det]), {"not_a_document": print})
    assert RE.state == "idle"


def test_checkpoint_inside_an_event_bundle(RE, docs):
    def plan():
        yield Msg("open_run")
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("checkpoint")

    with pytest.raises(Exception, match="Cannot 'checkpoint' after 'create'"):
        RE(plan())
    assert RE.state == "idle"
    assert docs[-1][1]["exit_status"] == "fail"


def test_failed_status_reaches_the_plan_even_without_a_wait(RE, docs):
    from ophyd import StatusBase

    class FailingMove(SynAxis):
        def set(self, value):
            st = StatusBase()
            st.set_exception(RuntimeError("limit switch"))
            return st

    motor = FailingMove(name="limited")

    def plan():
        yield Msg("open_run")
        yield Msg("set", motor, 5, group="never-waited")
        yield Msg("null")
        yield Msg("null")

    from bluesky.utils import FailedStatus

    with pytest.raises(FailedStatus) as info:
        RE(plan())
    assert isinstance(info.value.__cause__, RuntimeError)
    assert RE.state == "idle"
    assert docs[-1][1]["exit_status"] == "fail"


def test_declare_stream_without_a_name(RE):
    def plan():
        yield Msg("open_run")
        yield Msg("declare_stream", None, det)

    with pytest.raises(AssertionError, match="stream name that is not None is required"):
        RE(plan())
    assert RE.state == "idle"


def test_statuses_that_only_call_back(RE):
    """A status need not have `done` or `success` until its callback fires (bluesky's rule)."""

    class CallbackOnlyStatus:
        def __init__(self):
            self._callbacks = []
            self.finished = False

        def add_callback(self, cb):
            self._callbacks.append(cb)

        def finish(self):
            self.success = True
            self.done = True
            for cb in self._callbacks:
                cb(self)

    status = CallbackOnlyStatus()

    class Lazy:
        name = "lazy"

        def trigger(self):
            return status

    import threading

    threading.Timer(0.1, status.finish).start()
    RE([Msg("trigger", Lazy(), group="g"), Msg("wait", None, group="g")])
    assert RE.state == "idle" and status.done


@pytest.mark.parametrize("declared", [True, False])
def test_two_devices_with_the_same_data_keys_are_refused(RE, docs, declared):
    """One event cannot hold two readings of one key: both engines raise ValueError naming
    the objects, and the run closes with 'fail' (ours used to keep the last one silently)."""
    from bluesky import RunEngine as BlueskyRunEngine
    from ophyd.sim import SynGauss, motor

    twin = SynGauss("det", motor, "motor", center=0, Imax=1)  # det's name, det's keys
    plan = [Msg("open_run")]
    if declared:
        plan.append(Msg("declare_stream", None, det, twin, name="primary"))
    plan += [Msg("create", name="primary"), Msg("read", det), Msg("read", twin), Msg("save")]
    plan.append(Msg("close_run"))
    theirs = BlueskyRunEngine({}, context_managers=[])
    stops = []
    theirs.subscribe(lambda name, doc: stops.append(doc["exit_status"]), "stop")
    with pytest.raises(ValueError):
        theirs(list(plan))
    with pytest.raises(ValueError, match="collide"):
        RE(list(plan))
    assert [d["exit_status"] for n, d in docs if n == "stop"] == stops == ["fail"]
    assert not [d for n, d in docs if n == "event"]
    assert RE.state == "idle"
