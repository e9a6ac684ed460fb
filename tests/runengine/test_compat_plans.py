"""bluesky's plan library on bluesky's RunEngine and on ours: the same documents.

Each plan runs on fresh, identical ``ophyd.sim`` devices on both engines. Documents (names,
order, keys, data, seq_nums, descriptors, start metadata, stop documents), the messages seen
by ``msg_hook``, the return value of ``RE(...)`` and the final motor positions must match;
every document of ours must also be valid (see ``compat.py``).
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import uuid
from collections.abc import MutableMapping

import jsonschema
import pytest
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.utils import Msg, RunEngineInterrupted
from cycler import cycler
from ophyd.status import Status

from .side_by_side import (
    Normalizer,
    assert_same_documents,
    assert_same_outcome,
    make_devices,
    normalize,
    positions,
    run_plan,
    validate_documents,
)


def at(motor, position):
    """Put a sim motor at ``position`` before the plan starts (for the relative plans)."""
    motor.set(position).wait(1)
    return motor


def _ramp(hw):
    """ramp_plan with a ramp that ends after the third inner plan: deterministic."""
    ramp = Status()
    taken = []

    def go():
        yield from bps.null()
        return ramp

    def inner():
        taken.append(None)
        yield from bps.mv(hw.sig, len(taken))
        yield from bps.trigger_and_read([hw.det])
        if len(taken) == 3:
            ramp.set_finished()

    return bp.ramp_plan(go(), hw.sig, inner, take_pre_data=True, md={"purpose": "ramp"})


def _custom_per_step(detectors, step, pos_cache):
    yield from bps.one_nd_step(detectors, step, pos_cache)
    yield from bps.checkpoint()


def _custom_per_shot(detectors):
    yield from bps.trigger_and_read(list(detectors), name="shots")
    yield from bps.null()


# name -> make_plan(hw)
PLANS = {
    "count": lambda hw: bp.count([hw.det]),
    "count_num_delay": lambda hw: bp.count([hw.det, hw.noisy_det], num=3, delay=0.001),
    "count_delay_list": lambda hw: bp.count([hw.det], num=3, delay=[0.001, 0]),
    "count_md": lambda hw: bp.count([hw.det], md={"sample": "dirt", "scan_id": 99}),
    "count_per_shot": lambda hw: bp.count([hw.det], num=2, per_shot=_custom_per_shot),
    "count_no_detectors": lambda hw: bp.count([], num=2),
    "count_det_with_conf": lambda hw: bp.count([hw.det_with_conf, hw.det_with_count_time]),
    "count_image": lambda hw: bp.count([hw.direct_img], num=2),
    "scan": lambda hw: bp.scan([hw.det, hw.noisy_det], hw.motor, -1, 1, 5),
    "scan_two_motors": lambda hw: bp.scan(
        [hw.det1, hw.det2], hw.motor1, -1, 1, hw.motor2, 0, 2, num=3
    ),
    "scan_per_step": lambda hw: bp.scan(
        [hw.det], hw.motor, 0, 1, 3, per_step=_custom_per_step, md={"x": [1, 2]}
    ),
    "rel_scan": lambda hw: bp.rel_scan([hw.det], at(hw.motor, 0.5), -1, 1, 3),
    "relative_scan": lambda hw: bp.relative_scan([hw.det], at(hw.motor, -0.5), -1, 1, 3),
    "list_scan": lambda hw: bp.list_scan([hw.det], hw.motor, [1, 3, -2]),
    "list_scan_two_motors": lambda hw: bp.list_scan(
        [hw.det4], hw.motor1, [1, 2], hw.motor2, [0, -1]
    ),
    "rel_list_scan": lambda hw: bp.rel_list_scan([hw.det], at(hw.motor, 1), [0.1, -0.2]),
    "relative_list_scan": lambda hw: bp.relative_list_scan([hw.det], at(hw.motor, 1), [0.1]),
    "list_grid_scan": lambda hw: bp.list_grid_scan(
        [hw.det4], hw.motor1, [1, 2], hw.motor2, [0, -1, 3]
    ),
    "list_grid_scan_snake": lambda hw: bp.list_grid_scan(
        [hw.det4], hw.motor1, [1, 2], hw.motor2, [0, -1, 3], snake_axes=True
    ),
    "rel_list_grid_scan": lambda hw: bp.rel_list_grid_scan(
        [hw.det4], at(hw.motor1, 0.2), [1, 2], at(hw.motor2, -0.1), [0, -1]
    ),
    "grid_scan": lambda hw: bp.grid_scan([hw.det4], hw.motor1, -1, 1, 3, hw.motor2, -2, 2, 2),
    "grid_scan_snake": lambda hw: bp.grid_scan(
        [hw.det4], hw.motor1, -1, 1, 3, hw.motor2, -2, 2, 2, snake_axes=True
    ),
    "grid_scan_3d": lambda hw: bp.grid_scan(
        [hw.det], hw.motor, 0, 1, 2, hw.motor1, 0, 1, 2, hw.motor2, 0, 1, 2, snake_axes=[hw.motor2]
    ),
    "rel_grid_scan": lambda hw: bp.rel_grid_scan(
        [hw.det4], at(hw.motor1, 1), -1, 1, 2, at(hw.motor2, 2), -1, 1, 2
    ),
    "outer_product_scan": lambda hw: bp.outer_product_scan(
        [hw.det4], hw.motor1, -1, 1, 2, hw.motor2, -1, 1, 2
    ),
    "relative_outer_product_scan": lambda hw: bp.relative_outer_product_scan(
        [hw.det4], at(hw.motor1, 1), -1, 1, 2, hw.motor2, -1, 1, 2
    ),
    "inner_product_scan": lambda hw: bp.inner_product_scan(
        [hw.det4], 3, hw.motor1, -1, 1, hw.motor2, 0, 2
    ),
    "relative_inner_product_scan": lambda hw: bp.relative_inner_product_scan(
        [hw.det4], 3, at(hw.motor1, 1), -1, 1, hw.motor2, 0, 2
    ),
    "scan_nd": lambda hw: bp.scan_nd(
        [hw.det4], cycler(hw.motor1, [1, 2]) * cycler(hw.motor2, [3, 4, 5])
    ),
    "scan_nd_inner": lambda hw: bp.scan_nd(
        [hw.det], cycler(hw.motor, [1, 2]) + cycler(hw.motor1, [3, 4])
    ),
    "log_scan": lambda hw: bp.log_scan([hw.det], hw.motor, 1, 3, 4),
    "rel_log_scan": lambda hw: bp.rel_log_scan([hw.det], at(hw.motor, 1), 0, 1, 3),
    "relative_log_scan": lambda hw: bp.relative_log_scan([hw.det], at(hw.motor, 2), 0, 1, 2),
    "x2x_scan": lambda hw: bp.x2x_scan([hw.det4], hw.motor1, hw.motor2, -1, 1, 3),
    "spiral": lambda hw: bp.spiral([hw.det4], hw.motor1, hw.motor2, 0, 0, 1, 1, 0.5, 3),
    "spiral_tilted": lambda hw: bp.spiral(
        [hw.det4], hw.motor1, hw.motor2, 0, 0, 1, 1, 0.5, 3, dr_y=0.3, tilt=0.1
    ),
    "rel_spiral": lambda hw: bp.rel_spiral(
        [hw.det4], at(hw.motor1, 1), at(hw.motor2, 1), 1, 1, 0.5, 3
    ),
    "relative_spiral": lambda hw: bp.relative_spiral([hw.det4], hw.motor1, hw.motor2, 1, 1, 0.5, 3),
    "spiral_fermat": lambda hw: bp.spiral_fermat(
        [hw.det4], hw.motor1, hw.motor2, 0, 0, 1, 1, 0.3, 1.5
    ),
    "rel_spiral_fermat": lambda hw: bp.rel_spiral_fermat(
        [hw.det4], at(hw.motor1, -1), hw.motor2, 1, 1, 0.3, 1.5
    ),
    "relative_spiral_fermat": lambda hw: bp.relative_spiral_fermat(
        [hw.det4], hw.motor1, at(hw.motor2, 1), 1, 1, 0.3, 1.5
    ),
    "spiral_square": lambda hw: bp.spiral_square([hw.det4], hw.motor1, hw.motor2, 0, 0, 2, 2, 3, 3),
    "rel_spiral_square": lambda hw: bp.rel_spiral_square(
        [hw.det4], at(hw.motor1, 1), hw.motor2, 2, 2, 3, 3
    ),
    "adaptive_scan": lambda hw: bp.adaptive_scan(
        [hw.det], "det", hw.motor, -2, 2, 0.1, 1, 0.1, True
    ),
    "adaptive_scan_no_backstep": lambda hw: bp.adaptive_scan(
        [hw.det], "det", hw.motor, -2, 2, 0.1, 1, 0.2, False, threshold=0.5
    ),
    "rel_adaptive_scan": lambda hw: bp.rel_adaptive_scan(
        [hw.det], "det", at(hw.motor, 0.5), -1, 1, 0.1, 1, 0.1, True
    ),
    "relative_adaptive_scan": lambda hw: bp.relative_adaptive_scan(
        [hw.det], "det", hw.motor, -1, 1, 0.2, 1, 0.1, False
    ),
    "tune_centroid": lambda hw: bp.tune_centroid([hw.det], "det", hw.motor, -2, 2, 0.1, 5),
    "tune_centroid_snake": lambda hw: bp.tune_centroid(
        [hw.det], "det", hw.motor, -2, 3, 0.2, 4, step_factor=2, snake=True
    ),
    "ramp_plan": _ramp,
    "scan_pseudo_positioner": lambda hw: bp.scan(
        [hw.det], hw.pseudo3x3.pseudo1, 0, 1, hw.pseudo3x3.pseudo2, 1, 2, num=3
    ),
}

# Names in bluesky.plans that are not plans we can run here, and why.
SKIPPED = {
    "derive_default_hints": "a helper that computes start-document hints, not a plan",
    "fly": "flyers: covered with the collect commands (runengine/commands/flyers.py), to be "
    "added to this comparison by the agent implementing them",
    "tweak": "interactive: compared separately with stdin fed a script (test_tweak)",
}


# Plans with a delay: how many sleeps, and how long, depends on the clock.
CLOCKED = {"count_num_delay", "count_delay_list"}


@pytest.mark.parametrize("name", PLANS)
def test_plan_gives_the_same_documents(compare, name):
    _, ours = compare(PLANS[name], check={"unclocked": name in CLOCKED})
    assert ours.error is None
    assert ours.names()[0] == "start" and ours.names()[-1] == "stop"


def test_every_plan_in_bluesky_plans_is_compared_or_skipped_with_a_reason():
    public = {
        name
        for name, obj in vars(bp).items()
        if inspect.isfunction(obj) and obj.__module__ == bp.__name__ and not name.startswith("_")
    }
    covered = {key for key in PLANS if key in public}
    assert public - covered - set(SKIPPED) == set()


def test_tweak_with_a_scripted_prompt(compare, monkeypatch, capsys):
    """tweak reads steps from the prompt: two steps, then a bad number ends it."""

    def make(hw):
        monkeypatch.setattr("sys.stdin", io.StringIO("0.5\n\n-0.25\nq\n"))
        return bp.tweak(hw.det, "det", hw.motor, 0.1)

    _, ours = compare(make)
    assert len(ours.of("event")) == 4
    out = capsys.readouterr().out
    half = len(out) // 2
    assert out[:half] == out[half:]  # the prompts and messages printed are the same
    assert "motor, 0.5, 0.882, (0.5)" in out


def test_count_forever_until_the_plan_gives_up(compare):
    """count(num=None) runs until stopped: here its per_shot raises after three shots."""

    class Enough(Exception):
        pass

    def make(hw):
        shots = []

        def per_shot(detectors):
            if len(shots) == 3:
                raise Enough("three is enough")
            shots.append(None)
            yield from bps.trigger_and_read(detectors)

        return bp.count([hw.det], num=None, per_shot=per_shot)

    _, ours = compare(make)
    assert isinstance(ours.error, Enough)
    assert [e["seq_num"] for e in ours.of("event")] == [1, 2, 3]
    assert ours.of("start")[0]["num_points"] is None


def test_plan_return_values_match(compare):
    """A plan's return value is the result's plan_result (and a run's uid for run plans)."""

    def make(hw):
        def plan():
            uid = yield from bp.count([hw.det])
            located = yield from bps.rd(hw.motor)
            return {"uid": uid, "position": located}

        return plan()

    _, ours = compare(make)
    assert len(ours.result) == 1


def test_call_md_overrides_plan_md_and_fills_the_start(compare):
    _, ours = compare(
        lambda hw: bp.scan([hw.det], hw.motor, 0, 1, 2, md={"who": "plan", "sample": "a"}),
        who="call",
        project="compat",
    )
    start = ours.of("start")[0]
    assert start["who"] == "call" and start["project"] == "compat" and start["sample"] == "a"
    assert start["plan_name"] == "scan" and start["plan_type"] == "generator"


def test_plan_given_as_a_list_of_messages(compare):
    def make(hw):
        return [
            *bps.open_run(md={"kind": "list"}),
            *bpp.single_gen(bps.Msg("create", name="primary")),
            *bps.read(hw.det),
            *bps.save(),
            *bps.close_run(),
        ]

    _, ours = compare(make)
    assert ours.of("start")[0]["plan_type"] == "list"


def test_plan_that_raises_closes_its_run_with_the_same_failure(compare):
    def make(hw):
        def plan():
            yield from bps.open_run()
            yield from bps.trigger_and_read([hw.det])
            raise ValueError("bad things")

        return plan()

    _, ours = compare(make)
    assert isinstance(ours.error, ValueError)
    stop = ours.of("stop")[0]
    assert stop["exit_status"] == "fail" and stop["reason"] == "bad things"


def test_scan_id_increments_and_md_persists(engine_pair):
    results = []
    for RE in engine_pair:
        RE.md["operator"] = "ada"
        runs = [run_plan(RE, lambda hw: bp.count([hw.det])) for _ in range(3)]
        starts = [run.of("start")[0] for run in runs]
        results.append(
            ([s["scan_id"] for s in starts], [s["operator"] for s in starts], RE.md["scan_id"])
        )
    assert results[0] == results[1] == ([1, 2, 3], ["ada"] * 3, 3)


def test_plan_md_scan_id_is_overridden_by_the_engine(compare):
    """bluesky writes RE.md['scan_id'] but the plan's md wins in the start document."""
    _, ours = compare(lambda hw: bp.count([hw.det], md={"scan_id": 42}))
    assert ours.of("start")[0]["scan_id"] == 42


def test_count_with_external_assets(compare):
    """A detector that writes files: resource and datum documents, before their event."""
    # (plan_args left out: the image signal's repr shows its timestamp)
    _, ours = compare(
        lambda hw: bp.count([hw.img, hw.det], num=2, md={"plan_args": {}}), assets=True
    )
    assert ours.names() == [
        "start",
        "descriptor",
        "resource",
        "datum",
        "event",
        "datum",
        "event",
        "stop",
    ]


# ---- interruptions: pause in a plan, then resume / stop / abort / halt -----------------------
def run_interrupted(RE, make_plan, actions):
    """Run ``make_plan(hw)``; after each RunEngineInterrupted take the next action.

    Returns the outcome and what each action returned or raised.
    """
    hw = make_devices()
    out = run_plan(RE, make_plan, hw=hw)
    answers = []
    RE.msg_hook = lambda msg: out.msgs.append(msg._replace(kwargs=dict(msg.kwargs)))
    try:
        for action in actions:
            assert isinstance(out.error, RunEngineInterrupted), out.error
            assert RE.state == "paused"
            out.error = None
            try:
                answers.append(getattr(RE, action)())
            except BaseException as err:
                out.error = err
    finally:
        RE.msg_hook = None
    assert RE.state == "idle"
    out.positions = positions(hw)
    return out, answers


def _pausing_scan(hw, where="after_checkpoint"):
    """A scan whose second step pauses, at a checkpoint or with an event bundle open."""
    steps = []

    def per_step(detectors, step, pos_cache):
        steps.append(step)
        if len(steps) == 2 and where == "after_checkpoint":
            yield from bps.checkpoint()
            yield Msg("pause")
        if len(steps) == 2 and where == "in_bundle":
            yield from bps.move_per_step(step, pos_cache)
            yield from bps.create("primary")
            yield from bps.read(hw.det)
            yield Msg("pause")
            yield from bps.read(hw.motor)
            yield from bps.save()
            return
        yield from bps.one_nd_step(detectors, step, pos_cache)

    def cleanup():  # a plain generator: a halt skips it without a never-iterated warning
        yield from bps.mv(hw.motor1, 9)

    scan = bp.scan([hw.det], hw.motor, -1, 1, 3, per_step=per_step)
    return bpp.finalize_wrapper(scan, cleanup())


def _not_resumable(hw):
    def plan():
        yield from bps.open_run()
        yield from bps.trigger_and_read([hw.det])
        yield from bps.clear_checkpoint()
        yield from bps.checkpoint()  # no use: clear_checkpoint holds for the whole call
        yield Msg("pause")  # becomes an abort
        yield from bps.trigger_and_read([hw.det])
        yield from bps.close_run()

    return plan()


def _unrewindable(hw):
    def plan():
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield Msg("rewindable", None, False)
        yield from bps.trigger_and_read([hw.det])
        yield Msg("pause")
        yield from bps.trigger_and_read([hw.det])
        yield from bps.close_run()

    return plan()


def _unrewindable_in_bundle(hw):
    def plan():
        yield from bps.open_run()
        yield from bps.trigger_and_read([hw.det])
        yield Msg("rewindable", None, False)
        yield from bps.create("primary")
        yield from bps.read(hw.det)
        yield Msg("pause")  # nothing to replay: the bundle stays open through the pause
        yield from bps.save()
        yield from bps.close_run()

    return plan()


def _deferred_pause(hw):
    def plan():
        yield from bps.open_run()
        yield from bps.trigger_and_read([hw.det])
        yield from bps.deferred_pause()
        yield from bps.mv(hw.motor, 1)
        yield from bps.trigger_and_read([hw.det])
        yield from bps.checkpoint()  # the pause happens here (bluesky waits 0.5 s first)
        yield from bps.trigger_and_read([hw.det])
        yield from bps.close_run()

    return plan()


INTERRUPTED = {
    "resume": (_pausing_scan, ["resume"]),
    "resume_in_bundle": (lambda hw: _pausing_scan(hw, "in_bundle"), ["resume"]),
    "stop": (_pausing_scan, ["stop"]),
    "abort": (_pausing_scan, ["abort"]),
    "halt": (_pausing_scan, ["halt"]),
    "not_resumable": (_not_resumable, []),
    "unrewindable_resume": (_unrewindable, ["resume"]),
    "unrewindable_in_bundle": (_unrewindable_in_bundle, ["resume"]),
    "deferred_pause": (_deferred_pause, ["resume"]),
}


@pytest.mark.parametrize("name", INTERRUPTED)
def test_interrupted_plan_gives_the_same_documents(engine_pair, name):
    make_plan, actions = INTERRUPTED[name]
    (theirs, their_answers), (ours, our_answers) = (
        run_interrupted(RE, make_plan, actions) for RE in engine_pair
    )
    assert_same_outcome(theirs, ours)
    n_theirs, n_ours = Normalizer(), Normalizer()
    normalize(theirs.docs, n_theirs)
    normalize(ours.docs, n_ours)
    assert n_ours.value(our_answers) == n_theirs.value(their_answers)


class JsonFileDict(MutableMapping):
    """A mapping kept in a JSON file, written on every change (like a persistent RE.md)."""

    def __init__(self, path):
        self.path = path
        self._data = json.loads(path.read_text()) if path.exists() else {}

    def _save(self):
        self.path.write_text(json.dumps(self._data))

    def __getitem__(self, key):
        return self._data[key]

    def __setitem__(self, key, value):
        self._data[key] = value
        self._save()

    def __delitem__(self, key):
        del self._data[key]
        self._save()

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


def test_metadata_in_a_persistent_mapping_survives_the_engine(tmp_path):
    """RE.md may be any mutable mapping, kept by reference: scan_id is stored at each run."""
    from bluesky import RunEngine as BlueskyRunEngine

    from runengine import RunEngine

    stored = []
    for i, engine in enumerate((BlueskyRunEngine, RunEngine)):
        md = JsonFileDict(tmp_path / f"md{i}.json")
        md["beamline"] = "demo"
        RE = engine(md, context_managers=[])
        assert RE.md is md
        RE(bp.count([make_devices().det]))
        RE(bp.count([make_devices().det]), operator="call md is not kept")
        again = JsonFileDict(tmp_path / f"md{i}.json")
        stored.append({k: v for k, v in again.items() if k != "versions"})
    assert stored[0] == stored[1] == {"beamline": "demo", "scan_id": 2}


# ---- the comparison itself is not vacuous -------------------------------------------------------
def _replaced(obj, old, new):
    """``obj`` with the string ``old`` replaced by ``new`` everywhere, types kept."""
    if isinstance(obj, str):
        return new if obj == old else obj
    if isinstance(obj, dict):
        return {k: _replaced(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_replaced(v, old, new) for v in obj)
    return obj


def _mutated(docs, index, change):
    docs = copy.deepcopy(docs)
    change(docs[index][1])
    return docs


def test_the_comparison_sees_what_matters_and_ignores_the_rest(engine_pair):
    out = run_plan(engine_pair[1], lambda hw: bp.scan([hw.det], hw.motor, 0, 1, 2))
    docs = out.docs
    names = out.names()
    desc, event, stop = names.index("descriptor"), names.index("event"), names.index("stop")
    assert_same_documents(docs, copy.deepcopy(docs))

    def retime(doc):
        doc["time"] += 1
        doc["timestamps"] = {k: v + 1 for k, v in doc["timestamps"].items()}

    assert_same_documents(docs, _mutated(docs, event, retime))  # times are not compared
    renamed = _replaced(docs, docs[0][1]["uid"], str(uuid.uuid4()))
    assert_same_documents(docs, renamed)  # uids are compared as placeholders
    differences = {
        "a value": (event, lambda d: d["data"].update(det=0.5)),
        "a seq_num": (event, lambda d: d.update(seq_num=7)),
        "a reference": (event, lambda d: d.update(descriptor=docs[0][1]["uid"])),
        "a timestamps key": (event, lambda d: d["timestamps"].pop("det")),
        "a key": (stop, lambda d: d.pop("reason")),
        "an exit status": (stop, lambda d: d.update(exit_status="fail")),
        "a hint": (desc, lambda d: d["hints"]["det"].update(fields=[])),
        "a configuration value": (
            desc,
            lambda d: d["configuration"]["det"]["data"].update(det_sigma=3),
        ),
        "the order of data keys": (
            desc,
            lambda d: d.update(data_keys=dict(reversed(list(d["data_keys"].items())))),
        ),
    }
    for what, (index, change) in differences.items():
        with pytest.raises(AssertionError):
            assert_same_documents(docs, _mutated(docs, index, change))
            pytest.fail(f"{what} changed, unnoticed")
    with pytest.raises(AssertionError):
        assert_same_documents(docs, docs[:-1])


def test_validation_rejects_inconsistent_documents(engine_pair):
    docs = run_plan(engine_pair[1], lambda hw: bp.count([hw.det], 2)).docs
    validate_documents(docs)
    names = [n for n, _ in docs]
    broken = {
        "an extra data key": (names.index("event"), lambda d: d["data"].update(extra=1)),
        "a wrong count": (names.index("stop"), lambda d: d.update(num_events={"primary": 3})),
        "a schema violation": (names.index("event"), lambda d: d.update(seq_num="one")),
        "an unknown descriptor": (names.index("event"), lambda d: d.update(descriptor="x")),
    }
    for what, (index, change) in broken.items():
        with pytest.raises((AssertionError, KeyError, jsonschema.ValidationError)):
            validate_documents(_mutated(docs, index, change))
            pytest.fail(f"{what}, unnoticed")
