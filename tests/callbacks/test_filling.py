"""Filling external data: the handlers the ecosystem registers, checked against event-model's
own ``Filler``; unknown specs left as references, moved files found through ``root_map``,
unreadable ones named."""

from __future__ import annotations

import shutil

import event_model
import numpy as np
import pytest
from bluesky import plans as bp
from ophyd.sim import SynSignalWithRegistry

from runengine.callbacks.catalog import Catalog
from runengine.callbacks.filling import Filler, FillError, HandlerRegistry
from runengine.callbacks.store import RunStore


@pytest.fixture
def img(tmp_path):
    """ophyd.sim's file-writing detector: a 10x10 image per trigger, saved as .npy files."""
    counter = iter(range(1000))
    (tmp_path / "files").mkdir()
    return SynSignalWithRegistry(
        lambda: np.full((10, 10), next(counter), dtype=float),
        name="img",
        save_path=str(tmp_path / "files"),
    )


def stored(RE, tmp_path, plan):
    docs: list = []
    RE(plan, [RunStore(tmp_path / "runs"), lambda name, doc: docs.append((name, doc))])
    return Catalog(tmp_path / "runs")[-1], docs


def test_registry_holds_area_detector_handlers_and_loads_on_use():
    registry = HandlerRegistry()
    assert {"AD_HDF5", "AD_TIFF", "NPY_SEQ"} <= set(registry)
    assert registry["AD_HDF5"].__name__ == "AreaDetectorHDF5Handler"
    with pytest.raises(KeyError):
        registry["NO_SUCH_SPEC"]


def test_filled_images_equal_event_models_filler(RE, img, tmp_path):
    run, docs = stored(RE, tmp_path, bp.count([img], num=3))
    ds = run.primary.read()
    assert ds["img"].shape == (3, 10, 10)
    with event_model.Filler(dict(HandlerRegistry()), inplace=False) as theirs:
        filled = [theirs(name, doc)[1] for name, doc in docs]
    expected = [np.asarray(e["data"]["img"]) for e in filled if "seq_num" in e]
    np.testing.assert_array_equal(ds["img"].values, np.stack(expected))
    assert np.diff(ds["img"].values[:, 0, 0]).tolist() == [1.0, 1.0]  # a new image each


def test_unknown_spec_stays_a_reference_and_moved_files_use_root_map(RE, img, tmp_path):
    run, _ = stored(RE, tmp_path, bp.count([img], num=2))
    ids = run.primary.read(fill=False)["img"].values.tolist()
    before = run.primary.read()["img"].values
    bare = Catalog(tmp_path / "runs", handlers={})[-1]
    assert bare.primary.read()["img"].values.tolist() == ids  # no handler: references
    shutil.move(tmp_path / "files", tmp_path / "moved")
    with pytest.raises(FillError, match=r"cannot read datum .* from .*files/"):
        run.primary.read()
    moved = Catalog(tmp_path / "runs", root_map={str(tmp_path / "files"): str(tmp_path / "moved")})
    np.testing.assert_array_equal(moved[-1].primary.read()["img"].values, before)


def test_datum_pages_and_already_filled_values():
    resource = {"uid": "r", "spec": "ECHO", "root": "/x", "resource_path": "f"}
    filler = Filler({"ECHO": lambda path: lambda i: np.array([[i, i]])})
    filler.add("resource", resource)
    filler.add("datum_page", {"resource": "r", "datum_id": ["r/0", "r/1"],
                              "datum_kwargs": {"i": [5, 6]}})  # fmt: skip
    key = {"external": "FILESTORE:", "shape": [2], "dtype": "array"}
    assert filler.fill_one("r/1", key).tolist() == [6, 6]  # a stack of one, unstacked
    event = {"data": {"a": "r/0", "b": 1.0}, "filled": {"a": False}}
    out = filler.fill(event, {"a": key, "b": {"dtype": "number"}})
    assert out["a"].tolist() == [5, 5] and out["b"] == 1.0 and event["data"]["a"] == "r/0"
    done = {"data": {"a": np.zeros(2)}, "filled": {"a": True}}
    assert filler.fill(done, {"a": key})["a"] is done["data"]["a"]
    assert filler.value("elsewhere/0", key) == "elsewhere/0"  # not of this run: untouched
