"""The root of every error of :mod:`runengine.devices`."""

from __future__ import annotations

from runengine.errors import RunEngineError

__all__ = ["DeviceError"]


class DeviceError(RunEngineError, RuntimeError):
    """Base of every error of runengine.devices."""
