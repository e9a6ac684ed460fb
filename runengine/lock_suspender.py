"""SuspendWhileLocked: plans suspend while someone else holds a hardware lock.

It lives in :mod:`runengine.suspenders.locked`; this module keeps the old import path.
"""

from .suspenders.locked import SuspendWhileLocked

__all__ = ["SuspendWhileLocked"]
