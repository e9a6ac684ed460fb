"""ophyd devices for the simulated IOCs in :mod:`runengine.devices.ioc`.

The EPICS client environment must be set before the first device is made (see
:func:`runengine.devices.launcher.use_loopback_client`). Prefixes are those given to the IOCs:

    m1 = Motor("sim:mtr1", name="m1")
    det = PointDetector("det:", name="det")        # reading "det", the peak at m1's position
    cam = AreaDetector("cam:", name="cam")
    temp = TemperatureController("temp:", name="temp")
    beam, shutter = BeamMonitor("ring:", name="beam"), Shutter("ring:", name="shutter")
    health = IOCHealth("sim:", name="motors_ioc")  # heartbeat of any IOC by its prefix
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor, EpicsSignal, EpicsSignalRO, PVPositioner
from ophyd.status import MoveStatus, StatusBase
from ophyd.status import wait as status_wait
from ophyd.utils.errors import LimitError

from .image_files import HDF5Plugin

__all__ = [
    "AreaDetector",
    "BeamMonitor",
    "IOCHealth",
    "Motor",
    "PointDetector",
    "Shutter",
    "TemperatureController",
    "ioc_prefix",
]


class _OnOneIOC:
    """Mixin: ``ioc_prefix`` is the device's prefix; ``_reading`` (a component) is named as
    the device, so that its column reads ``det`` rather than ``det_value``."""

    _reading = ""

    def __init__(self, prefix: str = "", *, name: str, **kwargs) -> None:
        super().__init__(prefix, name=name, **kwargs)
        if self._reading:
            getattr(self, self._reading).name = self.name

    @property
    def ioc_prefix(self) -> str:
        return self.prefix


class IOCHealth(Device):
    """``HEARTBEAT`` (+1 per second) and ``UPTIME`` of one IOC, by its prefix."""

    heartbeat = Cpt(EpicsSignalRO, "HEARTBEAT", kind="hinted")
    uptime = Cpt(EpicsSignalRO, "UPTIME", kind="normal")


class Motor(EpicsMotor):
    """A motor record that refuses a target outside its soft limits at once.

    The limits are the record's ``.LLM``/``.HLM`` (equal values: no limits). A bad target
    raises :class:`~ophyd.utils.errors.LimitError` in ``set()``, before any put: the IOC
    would reject the put, which a client only notices as a timeout.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._asked_at: float | None = None  # time of the last move's put, until its drop
        self._move_lock = threading.RLock()  # move() vs done-moving in ophyd's callback thread
        super().__init__(*args, **kwargs)

    def move(self, position, wait: bool = True, **kwargs) -> MoveStatus:
        """Move to ``position``; done on the done-moving that follows this move's own drop.

        ophyd's EpicsMotor ends a move on any done-moving after it asked, so one still on
        its way from an earlier stop (a pause, then an immediate resume) ends the new move
        where the motor stopped. The record drops done-moving on every put, as ours does:
        updates stamped before this move's put are from an earlier move and are skipped.
        """
        with self._move_lock:  # a done-moving is handled wholly before or after this
            self._asked_at = time.time()
            try:
                status = super().move(position, wait=False, **kwargs)
            except BaseException:
                self._asked_at = None
                raise
        if wait:
            try:
                status_wait(status)
            except KeyboardInterrupt:
                self.stop()
                raise
        return status

    def _move_changed(self, timestamp=None, value=None, sub_type=None, **kwargs) -> None:
        with self._move_lock:
            asked_at = self._asked_at
            if asked_at is not None:
                if value == 1 or (timestamp is not None and timestamp < asked_at):
                    self._moving = value != 1  # an earlier move's: neither start nor end
                    return
                self._asked_at = None  # this move's drop: from here on as ophyd does
            super()._move_changed(timestamp=timestamp, value=value, sub_type=sub_type, **kwargs)

    @property
    def ioc_prefix(self) -> str:
        """The prefix of the IOC serving this motor (``sim:`` for ``sim:mtr1``)."""
        return re.sub(r"mtr\d+$", "", self.prefix)

    def check_value(self, pos) -> None:
        low, high = self.low_limit_travel.get(), self.high_limit_travel.get()
        if low < high and not low <= pos <= high:
            raise LimitError(
                f"{self.name}: target {pos} is outside the soft limits [{low}, {high}]"
            )
        super().check_value(pos)


class _Triggered(_OnOneIOC, Device):
    """A detector acquiring on a put-complete to ``Acquire``; its IOC's heartbeat omitted."""

    acquire = Cpt(EpicsSignal, "Acquire", put_complete=True, kind="omitted")
    acquire_time = Cpt(EpicsSignal, "AcquireTime", kind="config", auto_monitor=True)
    array_counter = Cpt(EpicsSignalRO, "ArrayCounter_RBV", kind="normal")
    heartbeat = Cpt(EpicsSignalRO, "HEARTBEAT", kind="omitted")
    uptime = Cpt(EpicsSignalRO, "UPTIME", kind="omitted")

    trigger_margin = 3.0  # seconds beyond the exposure before a trigger fails

    def trigger(self) -> StatusBase:
        """Acquire once; the status is done when the IOC finished the exposure."""
        timeout = max(self.acquire_time.get(), 0.0) + self.trigger_margin
        return self.acquire.set(1, timeout=timeout)


class PointDetector(_Triggered):
    """The point detector: its reading (named as the device) is the peak at the motor."""

    value = Cpt(EpicsSignalRO, "Value_RBV", kind="hinted")
    motor_position = Cpt(EpicsSignalRO, "Position_RBV", kind="omitted")
    center = Cpt(EpicsSignal, "CENTER", kind="config")
    width = Cpt(EpicsSignal, "WIDTH", kind="config")
    height = Cpt(EpicsSignal, "HEIGHT", kind="config")
    noise = Cpt(EpicsSignal, "NOISE", kind="config")
    _reading = "value"


class ImageSignal(EpicsSignalRO):
    """``ArrayData`` read and described as a 2-D image: (ArraySize1, ArraySize0)."""

    def image_shape(self) -> tuple[int, int]:
        return int(self.parent.size1.get()), int(self.parent.size0.get())

    def get(self, **kwargs):
        value = super().get(**kwargs)
        return np.asarray(value).reshape(self.image_shape())

    def read(self) -> dict:
        files = self.parent.hdf5
        if not files.active:
            return super().read()
        return {self.name: {"value": files.reference(), "timestamp": time.time()}}

    def describe(self) -> dict:
        description = super().describe()
        key = description[self.name]
        key["shape"] = list(self.image_shape())
        if self.parent.hdf5.active:
            key.update(external="FILESTORE:", dtype_numpy="<i4")
        return description


class AreaDetector(_Triggered):
    """The area detector: a 2-D image per trigger and its total (hinted).

    ``write_path`` (a folder; None: images inline in the events): while staged, the IOC
    writes the images to an HDF5 file there and the events hold references to them (see
    :mod:`runengine.devices.image_files`).
    """

    image = Cpt(ImageSignal, "ArrayData", kind="normal")
    total = Cpt(EpicsSignalRO, "Total_RBV", kind="hinted")
    size0 = Cpt(EpicsSignalRO, "ArraySize0_RBV", kind="config")
    size1 = Cpt(EpicsSignalRO, "ArraySize1_RBV", kind="config")
    hdf5 = Cpt(HDF5Plugin, "HDF1:", kind="omitted")

    def __init__(self, prefix: str = "", *, name: str, write_path=None, **kwargs) -> None:
        super().__init__(prefix, name=name, **kwargs)
        self.write_path = write_path

    @property
    def write_path(self) -> Path | None:
        """Where the IOC writes the images while staged (None: in the events)."""
        return self.hdf5.write_path

    @write_path.setter
    def write_path(self, folder: str | os.PathLike | None) -> None:
        self.hdf5.write_path = None if folder is None else Path(folder).expanduser().resolve()

    def collect_asset_docs(self):
        """The resource and datums of the images written since the last call."""
        yield from self.hdf5.collect_asset_docs()


class TemperatureController(_OnOneIOC, PVPositioner):
    """Setpoint/readback with a done flag; ``set`` finishes when the ramp reached the target.

    The reading is named as the device; the ramp rate is configuration.
    """

    setpoint = Cpt(EpicsSignal, "SP", kind="normal")
    readback = Cpt(EpicsSignalRO, "RBV", kind="hinted")
    done = Cpt(EpicsSignalRO, "DONE", kind="omitted")
    rate = Cpt(EpicsSignal, "RATE", kind="config")
    heartbeat = Cpt(EpicsSignalRO, "HEARTBEAT", kind="omitted")
    done_value = 1
    _reading = "readback"


class BeamMonitor(_OnOneIOC, Device):
    """Ring current (named as the device) and the stored current it returns to."""

    current = Cpt(EpicsSignalRO, "CURRENT", kind="hinted")
    nominal = Cpt(EpicsSignal, "NOMINAL", kind="config")
    heartbeat = Cpt(EpicsSignalRO, "HEARTBEAT", kind="omitted")
    _reading = "current"


class Shutter(_OnOneIOC, Device):
    """The beam shutter: ``set("Open")``/``set("Close")`` (or 1/0) finish when it got there."""

    setpoint = Cpt(EpicsSignal, "SHUTTER", put_complete=True, string=True, kind="omitted")
    readback = Cpt(EpicsSignalRO, "SHUTTER_RBV", string=True, kind="hinted")

    _targets = {"open": "Open", "1": "Open", "close": "Close", "closed": "Close", "0": "Close"}
    _reading = "readback"

    def set(self, value, *, timeout: float = 5.0) -> StatusBase:
        """Open (``"Open"``, 1, True) or close (``"Close"``, 0, False)."""
        target = self._targets.get(str(int(value) if isinstance(value, bool) else value).lower())
        if target is None:
            raise ValueError(f"{self.name}: {value!r} is neither 'Open' nor 'Close'")
        return self.setpoint.set(target, timeout=timeout)

    def open(self) -> StatusBase:
        return self.set("Open")

    def close(self) -> StatusBase:
        return self.set("Close")

    @property
    def is_open(self) -> bool:
        return self.readback.get() == "Open"


def ioc_prefix(target: Device | str) -> str:
    """The IOC prefix of a device of this module, or ``target`` itself if it is a string."""
    if isinstance(target, str):
        return target
    prefix = getattr(target, "ioc_prefix", None)
    if prefix is None:
        raise TypeError(f"{target!r} is not a device of runengine.devices.hardware")
    return prefix
