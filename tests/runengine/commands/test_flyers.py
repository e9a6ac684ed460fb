"""collect, declare_stream(collect=True) and external assets, side by side with bluesky.

Each plan runs on bluesky's RunEngine and on ours with fresh devices; the document streams must
agree once uids and wall-clock times are replaced by placeholders (uids by order of first
appearance, so cross-references are still compared). Every document ours emits is validated
against event-model's schemas.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from bluesky import RunEngine as BlueskyRunEngine
from bluesky.utils import IllegalMessageSequence, Msg, RunEngineInterrupted
from event_model import (
    ComposeStreamResource,
    DocumentNames,
    EventModelValidationError,
    EventModelValueError,
    schema_validators,
)
from ophyd.sim import MockFlyer, NullStatus, SynAxis, SynGauss, SynSignalWithRegistry, TrivialFlyer

from runengine import RunEngine

# ---- engines and document comparison ---------------------------------------------------------
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DROPPED = ("time", "versions", "plan_args")  # plan_args holds device reprs with timestamps
_WALL_CLOCK = 1e9  # timestamps above this are time.time() readings, not a fake's fixed values


@pytest.fixture
def ours() -> RunEngine:
    return RunEngine({}, context_managers=[])


@pytest.fixture
def theirs() -> Iterator[BlueskyRunEngine]:
    RE = BlueskyRunEngine({}, context_managers=[])
    yield RE
    RE.loop.call_soon_threadsafe(RE.loop.stop)
    RE._th.join()


def record(RE: Any, plan: Any) -> tuple[list[tuple[str, dict]], Any]:
    """Run ``plan``; the documents emitted and the outcome (RE's return or the exception)."""
    docs: list[tuple[str, dict]] = []
    try:
        outcome = RE(plan, lambda name, doc: docs.append((name, doc)))
    except Exception as err:
        outcome = err
    return docs, outcome


def validate(docs: list[tuple[str, dict]]) -> None:
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)


def normalize(docs: list[tuple[str, dict]]) -> list[tuple[str, Any]]:
    """Documents with uids as ``<uidN>`` (in a canonical order) and wall-clock times removed."""
    placeholders: dict[str, str] = {}

    def uid(match: re.Match) -> str:
        return placeholders.setdefault(match.group(), f"<uid{len(placeholders)}>")

    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            if key == "timestamps":
                return {k: clean_stamp(v) for k, v in value.items()}
            return {k: clean(v, k) for k, v in value.items() if k not in _DROPPED}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return _UID.sub(uid, value)
        if isinstance(value, np.ndarray):
            return value.tolist()
        return value

    def clean_stamp(value: Any) -> Any:
        if isinstance(value, list):
            return [clean_stamp(v) for v in value]
        return "<now>" if isinstance(value, float) and value > _WALL_CLOCK else value

    for _, doc in docs:  # number uids by the document that defines them, then by key order
        for key in ("uid", "datum_id"):
            for value in np.ravel(doc.get(key, [])):
                _UID.sub(uid, value)
    out = []
    for name, doc in docs:
        doc = clean(dict(sorted(doc.items())))
        if name == "resource":
            doc["resource_path"] = "<path>"  # a short random stem chosen when staged
        out.append((name, doc))
    return out


def assert_same_documents(
    theirs: BlueskyRunEngine, ours: RunEngine, make_plan: Callable[[], Any]
) -> list[tuple[str, dict]]:
    """Run ``make_plan()`` on both engines; both must emit the same documents. Returns ours."""
    expected, their_outcome = record(theirs, make_plan())
    got, our_outcome = record(ours, make_plan())
    assert not isinstance(their_outcome, Exception), their_outcome
    assert not isinstance(our_outcome, Exception), our_outcome
    validate(got)
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert normalize(got) == normalize(expected)
    assert ours.state == "idle"
    return got


def span(start: int, stop: int) -> dict:
    return {"start": start, "stop": stop}


# ---- fakes -----------------------------------------------------------------------------------
def data_key(source: str = "sim", **kw: Any) -> dict:
    return {"source": source, "dtype": "number", "shape": [], **kw}


class Named:
    parent = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.chunk = 0


class TwoStreamFlyer(Named):
    """Old style: a doubly nested describe_collect with two streams, configuration, assets."""

    def kickoff(self) -> NullStatus:
        return NullStatus()

    def complete(self) -> NullStatus:
        return NullStatus()

    def describe_collect(self) -> dict:
        n = self.name
        return {
            "fast": {f"{n}_a": data_key(), f"{n}_b": data_key()},
            "slow": {f"{n}_img": data_key("file", external="FILESTORE:", shape=[2, 2])},
        }

    def describe_configuration(self) -> dict:
        return {f"{self.name}_gain": data_key()}

    def read_configuration(self) -> dict:
        return {f"{self.name}_gain": {"value": 2, "timestamp": 1.0}}

    def collect_asset_docs(self) -> Iterator:
        if self.chunk == 0:
            yield "resource", {"spec": "NPY", "root": "/r", "resource_path": "p", "uid": "RES",
                               "resource_kwargs": {}, "path_semantics": "posix"}  # fmt: skip
        yield "datum", {"datum_id": f"RES/{self.chunk}", "resource": "RES", "datum_kwargs": {}}

    def collect(self) -> Iterator[dict]:
        n, base = self.name, 10 * self.chunk
        for i in range(base, base + 3):
            yield {"data": {f"{n}_a": i, f"{n}_b": -i}, "timestamps": {f"{n}_a": i, f"{n}_b": i}}
        yield {
            "data": {f"{n}_img": f"RES/{self.chunk}"},
            "timestamps": {f"{n}_img": 5},
            "filled": {f"{n}_img": False},
        }
        self.chunk += 1


class PointsCollectable(Named):
    """New style (flat describe_collect), EventCollectable."""

    def describe_collect(self) -> dict:
        return {f"{self.name}_x": data_key(), f"{self.name}_y": data_key()}

    def collect(self) -> Iterator[dict]:
        n, base = self.name, 10 * self.chunk
        self.chunk += 1
        for i in range(base, base + 4):
            yield {"data": {f"{n}_x": i, f"{n}_y": i * i}, "timestamps": {f"{n}_x": i, f"{n}_y": i}}


class PagesCollectable(PointsCollectable):
    """New style, EventPageCollectable (async, as ophyd-async devices are)."""

    async def collect_pages(self) -> Any:
        n = self.name
        for start in (0, 3):
            xs = list(range(start, start + 3))
            yield {
                "data": {f"{n}_x": xs, f"{n}_y": [x * x for x in xs]},
                "timestamps": {f"{n}_x": xs, f"{n}_y": xs},
                "time": xs,
            }


class StreamWriter(Named):
    """WritesStreamAssets: frames in a file, described by stream_resource/stream_datum."""

    def __init__(self, name: str, frames_per_flush: int = 3) -> None:
        super().__init__(name)
        self.per_flush = frames_per_flush
        self.written = 0
        self.emitted = 0
        self.datums: list = []

    def describe(self) -> dict:
        return {
            f"{self.name}_image": data_key("file", dtype="array", shape=[2, 2], external="STREAM:"),
            f"{self.name}_sum": data_key("file", external="STREAM:"),
        }

    describe_collect = describe

    def read(self) -> dict:
        self.written += 1
        return {}

    def kickoff(self) -> NullStatus:
        self.written += self.per_flush  # frames taken while flying, before the next collect
        return NullStatus()

    def complete(self) -> NullStatus:
        return NullStatus()

    def get_index(self) -> int:
        return self.written

    async def collect_asset_docs(self, index: int | None = None) -> Any:
        if not self.datums:
            for key in self.describe():
                bundle = ComposeStreamResource()(
                    mimetype="application/x-hdf5",
                    uri=f"file://localhost/{self.name}.h5",
                    data_key=key,
                    parameters={"dataset": key},
                    uid=f"{key}-resource",
                )
                self.datums.append(bundle.compose_stream_datum)
                yield "stream_resource", bundle.stream_resource_doc
        stop = self.written if index is None else index
        for compose in self.datums:
            yield "stream_datum", compose(indices={"start": self.emitted, "stop": stop})
        self.emitted = stop


# ---- plans compared with bluesky -------------------------------------------------------------
def test_fly_with_ophyd_sim_flyers(theirs, ours):
    def make_plan():
        motor = SynAxis(name="fly_motor")
        det = SynGauss("fly_det", motor, "fly_motor", center=0, Imax=1, sigma=1)
        return bp.fly([MockFlyer("mock", det, motor, -1, 1, 5), TrivialFlyer()])

    docs = assert_same_documents(theirs, ours, make_plan)
    pages = [doc for name, doc in docs if name == "event_page"]
    assert [page["seq_num"] for page in pages] == [[1, 2, 3, 4, 5], list(range(1, 101))]


def kickoff_complete_collect(flyer: Any, payloads: list) -> Iterator[Msg]:
    yield Msg("open_run")
    yield Msg("kickoff", flyer, group="k")
    yield Msg("wait", None, group="k")
    payloads.append((yield Msg("collect", flyer)))
    yield Msg("complete", flyer, group="c")
    yield Msg("wait", None, group="c")
    payloads.append((yield Msg("collect", flyer, return_payload=False)))
    payloads.append((yield Msg("collect", flyer)))
    yield Msg("close_run")


def test_kickoff_complete_collect_with_two_old_style_streams_and_assets(theirs, ours):
    payloads: list = []
    docs = assert_same_documents(
        theirs, ours, lambda: kickoff_complete_collect(TwoStreamFlyer("flyer"), payloads)
    )
    their_payloads, our_payloads = payloads[:3], payloads[3:]
    assert our_payloads == their_payloads
    assert len(our_payloads[0]) == 4 and our_payloads[1] is None
    names = [name for name, _ in docs]
    assert names.count("descriptor") == 2  # one per stream, made by the first collect only
    resource = next(doc for name, doc in docs if name == "resource")
    assert resource["run_start"] == docs[0][1]["uid"]
    fast = next(doc for name, doc in docs if name == "descriptor" and doc["name"] == "fast")
    assert fast["configuration"]["flyer"]["data"] == {"flyer_gain": 2}
    pages = [doc for name, doc in docs if name == "event_page"]
    assert [page["seq_num"] for page in pages] == [[1, 2, 3], [1], [4, 5, 6], [2], [7, 8, 9], [3]]
    assert pages[1]["filled"] == {"flyer_img": [False]}


def declared_collect(flyer: Any, name_in_collect: bool, payloads: list) -> Iterator[Msg]:
    yield from bps.open_run()
    yield from bps.declare_stream(flyer, name="main", collect=True)
    for _ in range(2):
        payloads.append((yield from bps.collect(flyer, name="main" if name_in_collect else None)))
    yield from bps.close_run()


@pytest.mark.parametrize("name_in_collect", [True, False])
@pytest.mark.parametrize("cls", [PointsCollectable, PagesCollectable])
def test_declared_stream_with_a_flat_describe_collect(theirs, ours, cls, name_in_collect):
    payloads: list = []
    docs = assert_same_documents(
        theirs, ours, lambda: declared_collect(cls("det"), name_in_collect, payloads)
    )
    assert payloads[2:] == payloads[:2]
    (descriptor,) = [doc for name, doc in docs if name == "descriptor"]
    assert descriptor["name"] == "main" and list(descriptor["data_keys"]) == ["det_x", "det_y"]
    pages = [doc for name, doc in docs if name == "event_page"]
    seq_nums = [n for page in pages for n in page["seq_num"]]
    assert seq_nums == list(range(1, len(seq_nums) + 1))
    assert docs[-1][1]["num_events"] == {"main": len(seq_nums)}


def test_resource_and_datum_written_during_read(theirs, ours, tmp_path):
    def make_plan():
        img = SynSignalWithRegistry(lambda: np.ones((2, 3)), name="img", save_path=str(tmp_path))
        return bp.count([img], 3)

    docs = assert_same_documents(theirs, ours, make_plan)
    names = [name for name, _ in docs]
    events = ["datum", "event"] * 3
    assert names == ["start", "descriptor", "resource", *events, "stop"]
    resource = docs[2][1]
    assert resource["run_start"] == docs[0][1]["uid"]
    assert all(doc["filled"] == {"img": False} for name, doc in docs if name == "event")


def test_stream_assets_written_during_read(theirs, ours):
    docs = assert_same_documents(theirs, ours, lambda: bp.count([StreamWriter("cam")], 3))
    datums = [doc for name, doc in docs if name == "stream_datum"]
    (descriptor,) = [doc for name, doc in docs if name == "descriptor"]
    assert [d["seq_nums"] for d in datums[::2]] == [{"start": n, "stop": n + 1} for n in (1, 2, 3)]
    assert {d["descriptor"] for d in datums} == {descriptor["uid"]}
    resources = [doc for name, doc in docs if name == "stream_resource"]
    assert {r["run_start"] for r in resources} == {docs[0][1]["uid"]}


def collect_streams(*objs: Any) -> Iterator[Msg]:
    yield from bps.open_run()
    yield from bps.declare_stream(*objs, name="frames", collect=True)
    for _ in range(2):
        yield from bps.kickoff_all(*objs, wait=True)
        yield from bps.collect(*objs, name="frames")
    yield from bps.close_run()


def test_stream_assets_of_several_writers_up_to_the_least_index(theirs, ours):
    docs = assert_same_documents(
        theirs, ours, lambda: collect_streams(StreamWriter("cam1", 3), StreamWriter("cam2", 5))
    )
    datums = [doc for name, doc in docs if name == "stream_datum"]
    assert [d["indices"] for d in datums[::4]] == [{"start": 0, "stop": 3}, {"start": 3, "stop": 6}]
    assert [d["seq_nums"] for d in datums[::4]] == [
        {"start": 1, "stop": 4},
        {"start": 4, "stop": 7},
    ]
    assert docs[-1][1]["num_events"] == {"frames": 6}


def test_one_stream_writer_collected_alone(theirs, ours):
    docs = assert_same_documents(theirs, ours, lambda: collect_streams(StreamWriter("cam")))
    datums = [doc for name, doc in docs if name == "stream_datum"]
    assert [d["seq_nums"] for d in datums[::2]] == [
        {"start": 1, "stop": 4},
        {"start": 4, "stop": 7},
    ]


@pytest.mark.parametrize("run", [None, "other"])
def test_flyers_left_uncollected_are_collected_when_the_run_is_left_open(theirs, ours, run):
    def make_plan():
        flyer = TwoStreamFlyer("flyer")
        return [Msg("open_run", run=run), Msg("kickoff", flyer, run=run)]

    docs = assert_same_documents(theirs, ours, make_plan)
    assert [name for name, _ in docs].count("event_page") == 2


def test_collect_into_a_run_key(ours):
    flyer = TwoStreamFlyer("flyer")
    docs, _ = record(
        ours,
        [
            Msg("open_run", run="a"),
            Msg("kickoff", flyer, run="a"),
            Msg("collect", flyer, run="a"),
            Msg("close_run", run="a"),
        ],
    )
    validate(docs)
    assert [name for name, _ in docs].count("event_page") == 2


def test_pause_and_resume_between_collects(theirs, ours):
    def plan():
        flyer = PagesCollectable("det")
        yield from bps.open_run()
        yield from bps.declare_stream(flyer, name="main", collect=True)
        yield from bps.checkpoint()
        yield from bps.collect(flyer)
        yield from bps.pause()
        yield from bps.collect(flyer)
        yield from bps.close_run()

    runs = []
    for RE in (theirs, ours):
        docs: list = []
        with pytest.raises(RunEngineInterrupted):
            RE(plan(), lambda name, doc, docs=docs: docs.append((name, doc)))
        RE.resume()
        runs.append(docs)
    validate(runs[1])
    assert normalize(runs[1]) == normalize(runs[0])


# ---- errors ----------------------------------------------------------------------------------
def collect_plan(*objs: Any, declare: str | None = None, **kwargs: Any) -> Iterator[Msg]:
    yield from bps.open_run()
    if declare:
        yield from bps.declare_stream(*objs, name=declare, collect=True)
    for obj in objs:
        if isinstance(obj, StreamWriter):
            yield from bps.kickoff(obj, wait=True)
    yield from bps.collect(*objs, **kwargs)
    yield from bps.close_run()


class Duplicated(TwoStreamFlyer):
    def describe_collect(self) -> dict:
        return {"one": {"k": data_key()}, "two": {"k": data_key()}}


class BadIndices(StreamWriter):
    async def collect_asset_docs(self, index: int | None = None) -> Any:
        async for name, doc in super().collect_asset_docs(index):
            if name == "stream_datum" and doc["stream_resource"].endswith("_sum-resource"):
                doc = {**doc, "indices": {"start": 0, "stop": 1}}
            yield name, doc


class WrongKeys(PointsCollectable):
    def describe_collect(self) -> dict:
        return {**super().describe_collect(), "other": data_key()}


class UndescribedAsset(StreamWriter):
    def describe_collect(self) -> dict:
        return {f"{self.name}_image": data_key()}


ERRORS = {
    "stream=True": lambda: collect_plan(TwoStreamFlyer("f"), stream=True),
    "name without declare": lambda: collect_plan(PointsCollectable("d"), name="main"),
    "flat without declare": lambda: collect_plan(PointsCollectable("d")),
    "several, not stream writers": lambda: collect_plan(
        PointsCollectable("a"), PointsCollectable("b")
    ),
    "several, undeclared": lambda: collect_plan(StreamWriter("a"), StreamWriter("b")),
    "same key in two streams": lambda: collect_plan(Duplicated("f")),
    "not collectable": lambda: collect_plan(SynAxis(name="m")),
    "indices of different widths": lambda: collect_plan(BadIndices("c"), declare="s"),
    "stream_resource for a key not STREAM:": lambda: collect_plan(
        UndescribedAsset("c"), declare="s"
    ),
    "events with keys the stream lacks": lambda: collect_plan(WrongKeys("d"), declare="s"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_those_of_bluesky(theirs, ours, case):
    their_docs, their_err = record(theirs, ERRORS[case]())
    our_docs, our_err = record(ours, ERRORS[case]())
    assert isinstance(their_err, Exception)
    assert isinstance(our_err, type(their_err)), (our_err, their_err)
    validate(our_docs)
    assert ours.state == "idle"
    assert our_docs[-1][0] == "stop" and our_docs[-1][1]["exit_status"] == "fail"
    assert [name for name, _ in our_docs] == [name for name, _ in their_docs]


def test_mismatched_indices_raise_event_model_value_error(ours):
    _, err = record(ours, collect_plan(BadIndices("c"), declare="s"))
    assert isinstance(err, EventModelValueError)


def test_collect_without_an_open_run_is_thrown_into_the_plan(ours):
    flyer = TwoStreamFlyer("f")
    caught = []

    def plan():
        try:
            yield Msg("collect", flyer)
        except IllegalMessageSequence as err:
            caught.append(err)
        yield Msg("null")

    ours(plan())
    assert len(caught) == 1 and ours.state == "idle"
    with pytest.raises(IllegalMessageSequence):
        ours([Msg("collect", flyer)])
    assert ours.state == "idle"
    assert ours([Msg("null")]) == ()  # the engine still works


# ---- where we deliberately differ from bluesky -----------------------------------------------
def test_events_with_keys_no_stream_declares_are_a_validation_error(ours):
    class ExtraKey(PointsCollectable):
        def describe_collect(self) -> dict:
            return {f"{self.name}_x": data_key()}

    _, err = record(ours, collect_plan(ExtraKey("d"), declare="s"))
    assert isinstance(err, EventModelValidationError)  # bluesky: KeyError('d_y')
    assert "d_y" in str(err) and ours.state == "idle"


def test_declare_stream_accepts_a_nested_description_of_that_one_stream(ours):
    class Nested(PointsCollectable):
        def describe_collect(self) -> dict:
            return {"s": super().describe_collect()}

    docs, _ = record(ours, collect_plan(Nested("d"), declare="s"))
    validate(docs)  # bluesky puts {'s': {...}} in data_keys and fails schema validation
    (descriptor,) = [doc for name, doc in docs if name == "descriptor"]
    assert list(descriptor["data_keys"]) == ["d_x", "d_y"]
    (page,) = [doc for name, doc in docs if name == "event_page"]
    assert page["data"] == {"d_x": [0, 1, 2, 3], "d_y": [0, 1, 4, 9]}
