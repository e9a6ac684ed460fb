"""runengine.suspenders: one place for runengine's suspenders, re-exported by their features."""

import json
import subprocess
import sys

import pytest
from bluesky.suspenders import SuspenderBase

import runengine.suspenders as suspenders

NAMES = ["SuspendOnDisconnect", "SuspendOnExpired", "SuspendWhileFileExists", "SuspendWhileLocked"]
FEATURE_PATHS = {
    "SuspendOnDisconnect": ["runengine.devices.beamline"],
    "SuspendWhileLocked": ["runengine.locks"],
    "SuspendOnExpired": ["runengine.heartbeats"],
    "SuspendWhileFileExists": ["runengine.agents", "runengine.agents.files"],
}
HOMES = {
    "SuspendOnDisconnect": "runengine.suspenders.connection",
    "SuspendWhileLocked": "runengine.suspenders.locked",
    "SuspendOnExpired": "runengine.suspenders.expired",
    "SuspendWhileFileExists": "runengine.suspenders.file",
}


def test_the_facade_exports_them_all():
    assert sorted(suspenders.__all__) == NAMES
    assert set(NAMES) <= set(dir(suspenders))
    for name in NAMES:
        cls = getattr(suspenders, name)
        assert issubclass(cls, SuspenderBase)
        assert cls.__module__ == HOMES[name]
    with pytest.raises(AttributeError):
        suspenders.SuspendForever  # noqa: B018


@pytest.mark.parametrize("name", NAMES)
def test_each_features_facade_gives_the_same_class(name):
    import importlib

    for path in FEATURE_PATHS[name]:
        assert getattr(importlib.import_module(path), name) is getattr(suspenders, name), path


@pytest.mark.parametrize(
    "first",
    [
        "runengine.suspenders", *HOMES.values(), "runengine.locks", "runengine.locks.commands",
        "runengine.heartbeats", "runengine.heartbeats.local", "runengine.agents",
        "runengine.agents.files",
    ],
)  # fmt: skip
def test_any_module_may_be_imported_first(first):
    """No import cycle among the suspenders and the features they watch, whichever comes first;
    the façade alone loads none of them."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({first!r})\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('runengine.'))\n"
        "import runengine.suspenders as s\n"
        "classes = [getattr(s, n).__name__ for n in s.__all__]\n"
        "print(json.dumps({'loaded': loaded, 'classes': classes}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    result = json.loads(out.splitlines()[-1])
    assert result["classes"] == NAMES
    if first == "runengine.suspenders":
        features = ("runengine.locks", "runengine.heartbeats", "runengine.agents")
        assert not [m for m in result["loaded"] if m.startswith(features)]
