"""Simulated area detector (areaDetector-like): a gaussian spot on a noisy image.

    python -m runengine.devices.ioc.areadet --prefix PFX -q --interfaces 127.0.0.1 \
        [--size 64 64] [--seed N]

PVs (``PFX`` is ``--prefix``), besides ``HEARTBEAT``/``UPTIME``/``FAULT:*`` of every IOC:

``PFX Acquire``           put 1 to acquire; the put completes when the image is ready
``PFX AcquireTime``       exposure in seconds (0..60, default 0.01)
``PFX ArrayData``         the image, flattened row by row (int32, ``ArraySize1 * ArraySize0``)
``PFX ArraySize0_RBV``    image width (columns), ``PFX ArraySize1_RBV`` height (rows)
``PFX ArrayCounter_RBV``  images so far
``PFX Total_RBV``         sum of the last image
``PFX SpotX``, ``PFX SpotY``, ``PFX SpotWidth``  spot centre (pixels) and sigma (pixels)
``PFX Intensity``         counts per second at the spot's peak; the image scales with AcquireTime
``PFX Background``        mean dark counts per pixel (Poisson noise around it)

``PFX HDF1:...``          the HDF5 file writer (see :mod:`._hdf5`): each image appended to a
                          file while ``HDF1:Capture`` is 1, before the acquire completes

``FAULT:FAIL_PUTS`` makes puts to ``Acquire`` raise.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
from caproto import ChannelType
from caproto.server import SubGroup, pvproperty

from ._common import SimIOC, main
from ._hdf5 import HDF5Writer

MAX_PIXELS = 512 * 512


class AreaDetIOC(SimIOC):
    """An area detector: a gaussian spot plus Poisson noise, one image per Acquire."""

    acquire = pvproperty(value=0, name="Acquire", doc="put 1: acquire (put-complete)")
    acquire_time = pvproperty(
        value=0.01, name="AcquireTime", precision=3, units="s",
        lower_ctrl_limit=0.0, upper_ctrl_limit=60.0,
    )  # fmt: skip
    image = pvproperty(
        value=[0], name="ArrayData", dtype=ChannelType.LONG, max_length=MAX_PIXELS,
        read_only=True, max_subscription_backlog=10,
    )  # fmt: skip
    size0 = pvproperty(value=64, name="ArraySize0_RBV", read_only=True)
    size1 = pvproperty(value=64, name="ArraySize1_RBV", read_only=True)
    counter = pvproperty(value=0, name="ArrayCounter_RBV", read_only=True)
    total = pvproperty(value=0.0, name="Total_RBV", read_only=True, precision=1)
    spot_x = pvproperty(value=32.0, name="SpotX", precision=2)
    spot_y = pvproperty(value=32.0, name="SpotY", precision=2)
    spot_width = pvproperty(value=4.0, name="SpotWidth", precision=2)
    intensity = pvproperty(value=1.0e5, name="Intensity", precision=1)
    background = pvproperty(value=2.0, name="Background", precision=2)
    hdf = SubGroup(HDF5Writer, prefix="HDF1:")

    def __init__(self, *args, size=(64, 64), seed: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shape = (int(size[1]), int(size[0]))  # rows, columns
        if not 0 < self._shape[0] * self._shape[1] <= MAX_PIXELS:
            raise ValueError(f"--size {size}: at most {MAX_PIXELS} pixels")
        self._rng = np.random.default_rng(seed)

    def image_shape(self) -> tuple[int, int]:
        """(rows, columns) of every image."""
        return self._shape

    def make_image(self) -> np.ndarray:
        """One exposure: a 2-D int32 array of counts."""
        rows, cols = np.indices(self._shape, dtype=float)
        sigma = max(self.spot_width.value, 1e-3)
        r2 = (cols - self.spot_x.value) ** 2 + (rows - self.spot_y.value) ** 2
        t = max(self.acquire_time.value, 0.0)
        mean = t * self.intensity.value * np.exp(-r2 / (2 * sigma**2)) + self.background.value
        return self._rng.poisson(np.maximum(mean, 0.0)).astype(np.int32)

    @size0.startup
    async def size0(self, instance, async_lib) -> None:
        await instance.write(self._shape[1], verify_value=False)
        await self.size1.write(self._shape[0], verify_value=False)
        await self.image.write(np.zeros(self._shape[0] * self._shape[1], np.int32))

    @acquire.putter
    async def acquire(self, instance, value):
        self.check_put(instance.pvname)
        if not value:
            return 0
        await instance.write(1, verify_value=False)  # Acquire reads 1 while exposing
        await asyncio.sleep(max(0.0, self.acquire_time.value))
        frame = self.make_image()
        await self.hdf.image_ready(frame)
        await self.image.write(frame.ravel())
        await self.total.write(float(frame.sum()))
        await self.counter.write(self.counter.value + 1)
        return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("X", "Y"))
    parser.add_argument("--seed", type=int, help="seed of the noise (reproducible images)")


if __name__ == "__main__":
    main(AreaDetIOC, default_prefix="cam:", add_arguments=_arguments)
