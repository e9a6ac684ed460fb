"""An HDF5 file writer for the simulated area detector, after areaDetector's NDFileHDF5.

PVs (``PFX`` is the detector's prefix, the plugin's own is ``HDF1:``):

``PFX HDF1:FilePath``          folder of the files (created if missing), up to 1024 characters
``PFX HDF1:FileName``          file name without the extension
``PFX HDF1:FullFileName_RBV``  the file being written: ``FilePath/FileName.h5``
``PFX HDF1:Capture``           put 1: create the file and append every image to it; put 0: stop;
                               reads 0 after a put of 1 that could not create the file
``PFX HDF1:NumCaptured_RBV``   images in the file
``PFX HDF1:WriteMessage``      why the last file operation failed ("" when it did not)

Images go to the dataset ``/entry/data/data`` (frames, rows, columns), the layout the
``AD_HDF5`` handler of area-detector-handlers reads. The file is opened, extended and closed
for each image, so it is whole between images: a reader, or a kill -9 of the IOC, never
finds it half written.
"""

from __future__ import annotations

import os

import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

DATASET = "/entry/data/data"
PATH_LENGTH = 1024


def _text(name: str, doc: str, *, read_only: bool = False):
    return pvproperty(
        value="", name=name, dtype=ChannelType.CHAR, max_length=PATH_LENGTH,
        string_encoding="utf-8", read_only=read_only, doc=doc,
    )  # fmt: skip


class HDF5Writer(PVGroup):
    """The ``HDF1:`` plugin: appends each image to ``FullFileName_RBV`` while capturing."""

    file_path = _text("FilePath", "folder of the files")
    file_name = _text("FileName", "file name, without .h5")
    full_file_name = _text("FullFileName_RBV", "the file being written", read_only=True)
    capture = pvproperty(value=0, name="Capture", doc="1: write images to a new file; 0: stop")
    num_captured = pvproperty(value=0, name="NumCaptured_RBV", read_only=True)
    write_message = _text("WriteMessage", "why the last file operation failed", read_only=True)

    @capture.putter
    async def capture(self, instance, value):
        if not value:
            return 0
        folder, name = self.file_path.value, self.file_name.value
        if not os.path.isabs(folder) or not name or os.sep in name:
            return await self._refuse(f"FilePath {folder!r} not absolute or FileName {name!r} bad")
        path = os.path.join(folder, f"{name}.h5")
        try:
            os.makedirs(folder, exist_ok=True)
            _create(path, self.parent.image_shape())
        except (OSError, ValueError) as err:
            return await self._refuse(f"cannot create {path}: {err}")
        await self.write_message.write("")
        await self.full_file_name.write(path)
        await self.num_captured.write(0)
        return 1

    async def _refuse(self, message: str) -> int:
        """Capture stays 0 and ``WriteMessage`` says why (as areaDetector does): the put
        itself completes, so the client learns at once rather than by a put timeout."""
        await self.write_message.write(message)
        return 0

    async def image_ready(self, frame: np.ndarray) -> None:
        """Append ``frame`` to the file, if capturing (called by the detector per image)."""
        if not self.capture.value:
            return
        path = self.full_file_name.value
        try:
            _append(path, frame)
        except (OSError, ValueError) as err:
            await self.write_message.write(f"cannot append to {path}: {err}")
            await self.capture.write(0, verify_value=False)
            return
        await self.num_captured.write(self.num_captured.value + 1)


def _create(path: str, shape: tuple[int, int]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset(
            DATASET, shape=(0, *shape), maxshape=(None, *shape), dtype="<i4", chunks=(1, *shape)
        )


def _append(path: str, frame: np.ndarray) -> None:
    import h5py

    with h5py.File(path, "a") as f:
        data = f[DATASET]
        if data.shape[1:] != frame.shape:
            raise ValueError(f"image shape {frame.shape} is not the file's {data.shape[1:]}")
        data.resize(data.shape[0] + 1, axis=0)
        data[-1] = frame
