"""The area detector's HDF5 file plugin on the client side: images as external data.

With ``cam.write_path`` set (``Beamline(image_dir=...)`` sets it), staging the detector makes
its IOC write every image into a new HDF5 file in that folder, and the image's reading is a
datum id instead of the array: the run gets a ``resource`` (spec ``AD_HDF5``, the layout
area-detector-handlers reads) and a ``datum`` per image, and readers fill the images back from
the file (``Catalog()[-1].primary.read()``, databroker, tiled). Unstaging stops the writing.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO

from .errors import DeviceError

__all__ = ["SPEC", "HDF5Plugin", "ImageFileError"]

logger = logging.getLogger(__name__)

UNSTAGE_TIMEOUT = 2.0  # seconds for the IOC to stop writing at unstage

#: The resource spec: one frame per point in ``/entry/data/data`` of the file.
SPEC = "AD_HDF5"


class ImageFileError(DeviceError, OSError):
    """The detector's IOC could not write (or has stopped writing) its image file."""


class HDF5Plugin(Device):
    """``HDF1:`` of the area detector IOC (see :mod:`.ioc._hdf5`), and the run's assets."""

    file_path = Cpt(EpicsSignal, "FilePath", string=True, kind="omitted")
    file_name = Cpt(EpicsSignal, "FileName", string=True, kind="omitted")
    full_file_name = Cpt(EpicsSignalRO, "FullFileName_RBV", string=True, kind="omitted")
    capture = Cpt(EpicsSignal, "Capture", put_complete=True, kind="omitted")
    num_captured = Cpt(EpicsSignalRO, "NumCaptured_RBV", kind="omitted")
    write_message = Cpt(EpicsSignalRO, "WriteMessage", string=True, kind="omitted")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.write_path: Path | None = None
        self._resource: dict | None = None
        self._unsent: list[tuple[str, dict]] = []
        self._datums: dict[int, str] = {}

    @property
    def active(self) -> bool:
        """Whether images go to a file (staged, with a ``write_path``)."""
        return self._resource is not None

    def stage(self) -> list:
        staged = super().stage()
        if self.write_path is not None:
            self._begin(self.write_path)
        return staged

    def unstage(self) -> list:
        if self._resource is not None:
            self._resource = None
            self._unsent.clear()
            self._datums.clear()
            try:
                self.capture.set(0, timeout=UNSTAGE_TIMEOUT).wait(timeout=UNSTAGE_TIMEOUT)
            except Exception as err:  # an IOC that is gone writes nothing more anyway
                logger.warning("%s: could not stop the file writing: %s", self.parent.name, err)
        return super().unstage()

    def _begin(self, folder: Path) -> None:
        name = uuid.uuid4().hex
        self.file_path.set(str(folder), timeout=5).wait(timeout=5)
        self.file_name.set(name, timeout=5).wait(timeout=5)
        self.capture.set(1, timeout=5).wait(timeout=5)
        if not self.capture.get(use_monitor=False):  # the IOC refused; it says why
            why = self.write_message.get(use_monitor=False) or "no reason given"
            raise ImageFileError(f"{self.parent.name}: the IOC cannot write images: {why}")
        self._resource = {
            "uid": str(uuid.uuid4()),
            "spec": SPEC,
            "root": str(folder),
            "resource_path": f"{name}.h5",
            "resource_kwargs": {"frame_per_point": 1},
            "path_semantics": "posix",
        }
        self._unsent = [("resource", self._resource)]

    def reference(self) -> str:
        """The datum id of the newest image in the file (its datum is made once)."""
        assert self._resource is not None
        count = int(self.num_captured.get(use_monitor=False))
        if count < 1 or not self.capture.get(use_monitor=False):
            why = self.write_message.get(use_monitor=False)
            where = os.path.join(self._resource["root"], self._resource["resource_path"])
            raise ImageFileError(
                f"{self.parent.name}: no image in {where} to read"
                + (f": {why}" if why else " (trigger first; was the IOC restarted?)")
            )
        index = count - 1
        datum_id = self._datums.get(index)
        if datum_id is None:
            datum_id = self._datums[index] = f"{self._resource['uid']}/{index}"
            datum = {
                "datum_id": datum_id,
                "resource": self._resource["uid"],
                "datum_kwargs": {"point_number": index},
            }
            self._unsent.append(("datum", datum))
        return datum_id

    def collect_asset_docs(self):
        """The resource (once) and the datums made since the last call."""
        unsent, self._unsent = self._unsent, []
        yield from unsent
