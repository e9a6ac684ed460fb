"""Run one plan on bluesky's RunEngine and on ours, and compare what each produced.

A plan is given as a factory ``make_plan(hw)`` so that each engine gets fresh, identical
``ophyd.sim`` devices (:func:`make_devices`): positions, configuration and the noise of
``noisy_det`` (a seeded RandomState) start the same for both.

Documents are compared after :class:`Normalizer`: uids become placeholders numbered in order
of appearance (cross references such as ``event['descriptor']`` or ``stop['run_start']``
are still compared), document ``time`` fields are dropped and ``timestamps`` values blanked.
Every document our engine emits is also validated against event-model's JSON schemas and
checked for internal consistency (:func:`validate_documents`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
from bluesky.utils import RunEngineInterrupted
from event_model import DocumentNames, schema_validators
from ophyd import Signal
from ophyd.sim import (
    DetWithConf,
    DetWithCountTime,
    DirectImage,
    SPseudo3x3,
    Syn2DGauss,
    SynAxis,
    SynGauss,
    SynSignalWithRegistry,
)

__all__ = [
    "Normalizer",
    "Outcome",
    "assert_same_outcome",
    "make_devices",
    "message_signatures",
    "normalize",
    "run_plan",
    "validate_documents",
]

UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # in the repr of a function given in plan_args
SHORT_UID = re.compile(r"(?<![0-9a-z])[0-9a-f]{6}$")  # bluesky.utils.short_uid, e.g. 'set-1a2b3c'


# ---- devices ------------------------------------------------------------------------------
class LocatableAxis(SynAxis):
    """A sim motor that reports its location (the Locatable protocol)."""

    def locate(self) -> dict:
        return {"setpoint": self.setpoint.get(), "readback": self.readback.get()}


class AsyncLocatableAxis(SynAxis):
    """A sim motor whose ``locate`` is a coroutine, like an ophyd-async device's."""

    async def locate(self) -> dict:
        return {"setpoint": self.setpoint.get(), "readback": self.readback.get()}


def make_devices(save_path: Any = None) -> SimpleNamespace:
    """Fresh ``ophyd.sim`` devices, named as in ``ophyd.sim.hw()``, all deterministic."""
    motor = SynAxis(name="motor", labels={"motors"})
    motor1 = SynAxis(name="motor1", labels={"motors"})
    motor2 = SynAxis(name="motor2", labels={"motors"})
    motor3 = SynAxis(name="motor3", labels={"motors"})
    hw = SimpleNamespace(
        motor=motor,
        motor1=motor1,
        motor2=motor2,
        motor3=motor3,
        det=SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1),
        identical_det=SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1),
        det1=SynGauss("det1", motor1, "motor1", center=0, Imax=5, sigma=0.5),
        det2=SynGauss("det2", motor2, "motor2", center=1, Imax=2, sigma=2),
        det3=SynGauss("det3", motor3, "motor3", center=-1, Imax=2, sigma=1),
        det4=Syn2DGauss("det4", motor1, "motor1", motor2, "motor2", center=(0, 0), Imax=1),
        noisy_det=SynGauss(
            "noisy_det",
            motor,
            "motor",
            center=0,
            Imax=1,
            noise="uniform",
            sigma=1,
            noise_multiplier=0.1,
            random_state=np.random.RandomState(0),
        ),
        sig=Signal(name="sig", value=0),
        bool_sig=Signal(value=False, name="bool_sig"),
        det_with_conf=DetWithConf(name="det"),
        det_with_count_time=DetWithCountTime(name="det"),
        pseudo3x3=SPseudo3x3(name="pseudo3x3"),
        direct_img=DirectImage(func=lambda: np.ones((3, 4)), name="direct"),
        loc_motor=LocatableAxis(name="loc_motor"),
        async_motor=AsyncLocatableAxis(name="async_motor"),
        pushed=PushedReadings("pushed"),
        pushed_same_time=PushedReadings("pushed_same_time", stamp=0.0),
    )
    hw.direct_img.img.name = "img"
    if save_path is not None:
        hw.img = SynSignalWithRegistry(
            func=lambda: np.ones((3, 4)), name="img", save_path=str(save_path)
        )
    return hw


def positions(hw: SimpleNamespace) -> dict[str, Any]:
    """Where every motor of ``hw`` ended up."""
    return {
        name: obj.position
        for name, obj in vars(hw).items()
        if isinstance(obj, SynAxis) or name.startswith("pseudo")
    }


class PushedReadings:
    """A readable that hands its subscribers readings (ophyd-async style); ``read`` is async."""

    def __init__(self, name: str, stamp: float | None = None) -> None:
        self.name = name
        self.stamp = stamp  # None: a timestamp per value
        self.parent = None
        self.value = 0
        self._callbacks: list = []

    def _reading(self) -> dict:
        stamp = float(self.value) if self.stamp is None else self.stamp
        return {self.name: {"value": self.value, "timestamp": stamp}}

    def describe(self) -> dict:
        return {self.name: {"source": "pushed", "dtype": "integer", "shape": []}}

    async def read(self) -> dict:
        return self._reading()

    def subscribe(self, function: Any) -> None:
        self._callbacks.append(function)
        function(self._reading())

    def clear_sub(self, function: Any) -> None:
        self._callbacks.remove(function)

    def push(self, value: int) -> None:
        self.value = value
        for function in list(self._callbacks):
            function(self._reading())


# ---- running -------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one engine did with one plan."""

    docs: list[tuple[str, dict]] = field(default_factory=list)  # as emitted (deep copies)
    live: list[tuple[str, dict]] = field(default_factory=list)  # the objects themselves
    msgs: list = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None
    positions: dict = field(default_factory=dict)
    hw: Any = None

    def names(self) -> list[str]:
        return [name for name, _ in self.docs]

    def of(self, name: str) -> list[dict]:
        return [doc for n, doc in self.docs if n == name]


def run_plan(RE: Any, make_plan: Any, *, hw: Any = None, **md: Any) -> Outcome:
    """``RE(make_plan(hw), subs, **md)`` recording documents, messages and the outcome."""
    hw = make_devices() if hw is None else hw
    out = Outcome(hw=hw)

    def record(name: str, doc: dict) -> None:
        out.live.append((name, doc))
        out.docs.append((name, copy.deepcopy(doc)))

    def hook(msg: Any) -> None:
        # a copy: bluesky's stage/unstage pop 'group' from msg.kwargs after the hook saw it
        out.msgs.append(msg._replace(kwargs=dict(msg.kwargs)))

    RE.msg_hook = hook
    try:
        out.result = RE(make_plan(hw), record, **md)
    except BaseException as err:  # the plan's own exception, or RunEngineInterrupted
        out.error = err
    finally:
        RE.msg_hook = None
    out.positions = positions(hw)
    return out


# ---- normalizing ---------------------------------------------------------------------------
class Normalizer:
    """Replace uids by ``<uid N>`` in order of first appearance; drop times and timestamps."""

    def __init__(self) -> None:
        self.uids: dict[str, str] = {}

    def _uid(self, match: re.Match) -> str:
        return self.uids.setdefault(match.group(0), f"<uid {len(self.uids)}>")

    def value(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return ADDRESS.sub(" at 0x...", UID.sub(self._uid, obj))
        if isinstance(obj, dict):
            return {self.value(k): self._item(k, v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.value(v) for v in obj)
        if isinstance(obj, np.ndarray):
            return ("ndarray", obj.dtype.kind, obj.tolist())
        if isinstance(obj, np.generic):
            return obj.item()
        return obj

    def _item(self, key: Any, value: Any) -> Any:
        if key == "timestamps" and isinstance(value, dict):
            return dict.fromkeys(value)
        if key == "timestamp":  # in a reading: {'value': ..., 'timestamp': ...}
            return None
        if key == "resource_path":  # ophyd.sim names its files with short uids
            return SHORT_UID.sub("<short uid>", value)
        return self.value(value)

    def doc(self, name: str, doc: dict) -> tuple[str, dict]:
        if "uid" in doc:  # number the document's own uid before anything it refers to
            self.value(doc["uid"])
        return name, self.value({k: v for k, v in doc.items() if k != "time"})


def normalize(docs: list[tuple[str, dict]], normalizer: Normalizer | None = None) -> list:
    norm = normalizer or Normalizer()
    return [norm.doc(name, doc) for name, doc in docs]


def key_orders(obj: Any, path: str = "", top: bool = True) -> dict[str, list]:
    """The key order of every nested dict (not the document's own, nor ``versions``)."""
    orders: dict[str, list] = {}
    if isinstance(obj, dict):
        if not top:
            orders[path] = [UID.sub("<uid>", str(k)) for k in obj]
        for k, v in obj.items():
            if k != "versions":
                orders.update(key_orders(v, f"{path}/{k}", top=False))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            orders.update(key_orders(v, f"{path}[{i}]", top=False))
    return orders


def message_signatures(msgs: list) -> list[tuple]:
    """Messages as comparable tuples: devices by class and name, group ids numbered."""
    groups: dict[str, str] = {}

    def token(x: Any) -> Any:
        if x is None or isinstance(x, bool | int | float):
            return x
        if isinstance(x, str):
            x = ADDRESS.sub(" at 0x...", x)
            x = UID.sub(lambda m: groups.setdefault(m.group(0), f"<g{len(groups)}>"), x)
            return SHORT_UID.sub(lambda m: groups.setdefault(m.group(0), f"<g{len(groups)}>"), x)
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, list | tuple):
            return type(x)(token(v) for v in x)
        if isinstance(x, dict):
            return {token(k): token(v) for k, v in x.items()}
        name = getattr(x, "name", None)
        if isinstance(name, str):
            return f"<{type(x).__name__} {name}>"
        return f"<{type(x).__name__}>"

    def signature(m: Any) -> tuple:
        args, kwargs = token(m.args), token(m.kwargs)
        if m.command == "unsubscribe":  # tokens count the engine's subscriptions so far
            args, kwargs = ("<token>",) * len(args), dict.fromkeys(kwargs, "<token>")
        return (m.command, token(m.obj), args, kwargs, m.run)

    return [signature(m) for m in msgs]


# ---- validating ----------------------------------------------------------------------------
def validate_documents(docs: list[tuple[str, dict]]) -> None:
    """Every document against event-model's schema, and the references between them."""
    starts: set[str] = set()
    descriptors: dict[str, dict] = {}
    counts: dict[tuple[str, str], int] = {}
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)
        if name == "start":
            starts.add(doc["uid"])
        elif name == "descriptor":
            assert doc["run_start"] in starts, doc
            descriptors[doc["uid"]] = doc
        elif name in ("event", "event_page"):
            desc = descriptors[doc["descriptor"]]
            assert set(doc["data"]) == set(desc["data_keys"]), (doc, desc)
            assert set(doc["timestamps"]) == set(doc["data"]), doc
            key = (desc["run_start"], desc["name"])
            size = len(doc["seq_num"]) if name == "event_page" else 1
            counts[key] = counts.get(key, 0) + size
        elif name == "stop":
            assert doc["run_start"] in starts, doc
            expected = {s: n for (run, s), n in counts.items() if run == doc["run_start"]}
            assert {s: n for s, n in doc["num_events"].items() if n} == expected, doc


# ---- comparing -----------------------------------------------------------------------------
def assert_same_documents(theirs: list, ours: list, *, ordered: bool = True) -> None:
    """The two document streams are the same, modulo uids, times and timestamps.

    ``ordered``: the keys of nested dicts (data, data_keys, configuration...) come in the same
    order too.
    """
    n_theirs, n_ours = normalize(theirs), normalize(ours)
    assert [n for n, _ in n_ours] == [n for n, _ in n_theirs]
    for i, ((name, doc_theirs), (_, doc_ours)) in enumerate(zip(n_theirs, n_ours, strict=True)):
        assert sorted(doc_ours) == sorted(doc_theirs), f"keys of {name} #{i}"
        assert doc_ours == doc_theirs, f"{name} #{i}"
        if ordered:
            assert key_orders(doc_ours) == key_orders(doc_theirs), f"key order in {name} #{i}"


def _no_reason(docs: list) -> list:
    """The documents with each stop's reason only kept as: was there one."""
    return [
        (name, {**doc, "reason": bool(doc["reason"])} if name == "stop" else doc)
        for name, doc in docs
    ]


def assert_same_outcome(
    theirs: Outcome,
    ours: Outcome,
    *,
    messages: bool = True,
    unclocked: bool = False,
    ordered: bool = True,
    error_text: bool = True,
) -> None:
    """Same documents, same return value or exception, same final positions; ours valid.

    ``unclocked``: leave out ``sleep`` messages, whose number and length follow the clock in
    plans with a ``delay``. ``error_text=False``: our exception may say more than bluesky's
    (it is of the same class, or a subclass), and so may the stop document's reason.
    """
    validate_documents(ours.docs)
    assert normalize(ours.live) == normalize(ours.docs), "a document changed after emission"
    if error_text:
        assert_same_documents(theirs.docs, ours.docs, ordered=ordered)
        assert type(ours.error) is type(theirs.error), (theirs.error, ours.error)
        if not isinstance(ours.error, RunEngineInterrupted):  # its text is RE.pause_msg,
            assert str(ours.error) == str(theirs.error)  # whose exit_status we spell right
    else:
        assert_same_documents(_no_reason(theirs.docs), _no_reason(ours.docs), ordered=ordered)
        assert isinstance(ours.error, type(theirs.error)), (theirs.error, ours.error)
    n_theirs, n_ours = Normalizer(), Normalizer()
    normalize(theirs.docs, n_theirs)
    normalize(ours.docs, n_ours)
    assert n_ours.value(ours.result) == n_theirs.value(theirs.result)
    assert ours.positions == theirs.positions
    if messages:
        drop = {"sleep"} if unclocked else set()
        assert message_signatures([m for m in ours.msgs if m.command not in drop]) == (
            message_signatures([m for m in theirs.msgs if m.command not in drop])
        )
