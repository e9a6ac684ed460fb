"""The area detector writing HDF5 files over Channel Access: resource and datums like
bluesky's engine emits them, images filled back through area-detector-handlers by our Catalog
and by databroker, whole files after a kill -9 of the IOC, a clear error where it cannot write.
"""

from __future__ import annotations

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import h5py
import numpy as np
import pytest
from bluesky import plans as bp

from runengine.callbacks.catalog import Catalog
from runengine.callbacks.store import IMAGES_DIR, RunStore
from runengine.devices.beamline import Beamline
from runengine.devices.image_files import SPEC, ImageFileError
from runengine.suspenders.connection import connection_failures

pytestmark = pytest.mark.integration


@pytest.fixture
def cam(beamline, tmp_path):
    """The session beamline's detector, writing into ``tmp_path/images`` for this test."""
    exposure = beamline.cam.acquire_time.get()
    beamline.cam.write_path = tmp_path / IMAGES_DIR
    yield beamline.cam
    beamline.cam.write_path = None
    beamline.cam.acquire_time.put(exposure)  # as the other tests of the session expect


def of(docs, name):
    return [doc for n, doc in docs if n == name]


def frames(resource: dict) -> np.ndarray:
    with h5py.File(f"{resource['root']}/{resource['resource_path']}", "r") as f:
        return f["/entry/data/data"][()]


def test_documents_match_bluesky_and_point_into_the_file(engine_pair, cam):
    for RE in engine_pair:  # bluesky's engine first, then ours, over the same IOC
        docs: list = []
        RE(bp.count([cam], num=3), lambda name, doc, docs=docs: docs.append((name, doc)))
        names = [name for name, _ in docs]
        assert names == ["start", "descriptor", "resource"] + ["datum", "event"] * 3 + ["stop"]
        (resource,) = of(docs, "resource")
        assert resource["spec"] == SPEC and resource["run_start"] == of(docs, "start")[0]["uid"]
        assert resource["resource_kwargs"] == {"frame_per_point": 1}
        key = of(docs, "descriptor")[0]["data_keys"]["cam_image"]
        assert key["external"] == "FILESTORE:" and key["shape"] == [64, 64]
        events, datums = of(docs, "event"), of(docs, "datum")
        assert [e["data"]["cam_image"] for e in events] == [d["datum_id"] for d in datums]
        assert [d["datum_kwargs"] for d in datums] == [{"point_number": i} for i in range(3)]
        stack = frames(resource)
        assert stack.shape == (3, 64, 64)  # each image in its frame, the totals the IOC's
        assert stack.sum(axis=(1, 2)).tolist() == [e["data"]["cam_total"] for e in events]
        assert of(docs, "stop")[0]["exit_status"] == "success"
    assert not cam.hdf5.capture.get(use_monitor=False)  # unstaged: the IOC stopped writing


def test_catalog_and_databroker_fill_the_images(RE, cam, tmp_path):
    store = RunStore(tmp_path)
    RE.subscribe(store)
    RE(bp.count([cam], num=4))
    RE(bp.scan([cam], cam.acquire_time, 0.01, 0.02, 2))
    runs = Catalog(tmp_path)
    for run in runs.values():
        ds = run.primary.read()
        images = ds["cam_image"].values
        assert images.shape[1:] == (64, 64) and images.dtype == np.int32
        np.testing.assert_array_equal(images.sum(axis=(1, 2)), ds["cam_total"].values)
        ids = run.primary.read(fill=False)["cam_image"].values.tolist()
        assert all(isinstance(i, str) and "/" in i for i in ids)
        table = run.table(fill=True)
        np.testing.assert_array_equal(np.stack(table["cam_image"]), images)
        assert run.table()["cam_image"].tolist() == ids  # unfilled: the references

    pytest.importorskip("tiled.server")  # the tiled extra is installed by `make test`
    from runengine.callbacks import broker

    db = broker(tmp_path)  # tiled reads the store's images/ folder
    for run in runs.values():
        theirs = db.v2[run.uid]["primary"].read()
        np.testing.assert_array_equal(theirs["cam_image"].values, run.primary.read()["cam_image"])
        header = db[run.uid]
        assert {key: header.start[key] for key in run.start} == run.start


def test_kill_9_of_the_ioc_leaves_every_reported_image_readable(RE, tmp_path):
    store = RunStore(tmp_path)
    RE.subscribe(store)
    with Beamline(["areadet"], seed=3, image_dir=tmp_path / IMAGES_DIR) as bl:
        cam = bl.cam

        @bpp.run_decorator()
        @bpp.stage_decorator([cam])
        def three_then_kill():
            for _ in range(3):
                yield from bps.trigger_and_read([cam])
            bl.iocs["areadet"].kill()  # SIGKILL, between two images
            yield from bps.trigger_and_read([cam])

        # No suspender here: whichever error the lost connection raises first ends the run.
        with pytest.raises(connection_failures()):
            RE(three_then_kill())
    run = Catalog(tmp_path)[-1]
    assert run.stop["exit_status"] == "fail"
    ds = run.primary.read()  # the file outlived its writer whole
    assert ds.sizes["time"] == 3
    np.testing.assert_array_equal(ds["cam_image"].values.sum(axis=(1, 2)), ds["cam_total"])


def test_a_folder_the_ioc_cannot_write_is_named_and_the_run_fails(RE, cam, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    cam.write_path = tmp_path / "a-file" / "images"  # even root cannot make this folder
    docs: list = []
    with pytest.raises(ImageFileError, match=r"cam: the IOC cannot write images: .*a-file"):
        RE(bp.count([cam], num=2), lambda name, doc: docs.append((name, doc)))
    assert RE.state == "idle"
    assert docs == []  # count stages before it opens the run: no run began
    cam.write_path = tmp_path / "images"  # the same detector goes on once given a folder
    RE(bp.count([cam], num=1), lambda name, doc: docs.append((name, doc)))
    assert of(docs, "stop")[0]["exit_status"] == "success" and len(of(docs, "datum")) == 1
