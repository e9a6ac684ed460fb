"""Make bluesky's plan library cheaper to call, without changing what it does.

Every plan stub decorated with ``bluesky.utils.plan`` wraps its generator in ``Plan``, whose
constructor formats the whole call stack (reading source lines from disk) in case the plan is
never iterated and a warning is due. That costs about 0.1 ms per stub call, more than our engine
spends on a whole event. ``install()`` records the stack as (file, line, function) tuples
by keeping a reference to the calling frame (and its line at the time), and formats the stack
only if the warning is actually given: the same warning, a hundredth of the cost. (Outer frames
are shown at the line they have reached when the warning fires.)

bluesky labels each ``trigger_and_read`` and ``mv`` group with ``short_uid()``, which calls
``uuid.uuid4()``: a ``getrandom`` system call per event. On a virtual machine a system call can
cost 10-20 µs once the caches it flushes are counted (0.3 µs in a tight loop, which hides it).
``install()`` points ``bluesky.utils.new_uid`` at ours (:func:`runengine.documents.new_uid`):
the same version-4 UUID strings from a PRNG seeded by the OS and reseeded in forked children.

On Python 3.11, ``isinstance(obj, Triggerable)`` (bluesky's protocols are runtime-checkable)
walks the protocol's MRO on every call to list its members; bluesky asks it per device per
event. ``install()`` also remembers that list per protocol class (Python 3.12 does so itself).

``RunEngine()`` installs all three; set ``RUNENGINE_NO_SPEEDUPS=1`` to keep the originals.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
import typing
import warnings
from typing import Any

from bluesky import utils as _bluesky_utils

from .documents import new_uid as _new_uid

__all__ = ["install", "installed", "uninstall"]

_Plan = _bluesky_utils.Plan
_ORIGINAL = (_Plan.__init__, _Plan.__del__)
_ORIGINAL_NEW_UID = _bluesky_utils.new_uid
# Python 3.11's typing recomputes a protocol's members at each isinstance (3.12 caches them).
_MEMBERS_CHECK = getattr(typing, "_is_callable_members_only", None)
_CACHED_MEMBERS_CHECK = (
    functools.lru_cache(maxsize=256)(_MEMBERS_CHECK) if _MEMBERS_CHECK is not None else None
)


def _plan_init(self: Any, f: Any, *args: Any, **kwargs: Any) -> None:
    self._iter = f(*args, **kwargs)
    caller = sys._getframe(2)  # skip this __init__ and the @plan wrapper, as bluesky does
    self._stack = (f.__name__, caller, caller.f_lineno)


def _plan_del(self: Any) -> None:
    if self._stack:
        name, caller, lineno = self._stack
        where = []
        frame = caller
        while frame is not None:
            line = lineno if frame is caller else frame.f_lineno
            where.append((frame.f_code.co_filename, line, frame.f_code.co_name, None))
            frame = frame.f_back
        where.reverse()
        text = "".join(traceback.StackSummary.from_list(where).format())
        text += (
            f"RuntimeWarning: plan `{name}` was never iterated, did you mean to use `yield from`?"
        )
        warnings.warn("\n" + text, RuntimeWarning, stacklevel=1)


def install() -> None:
    """Swap in the cheap stack recording and uids (idempotent; honours RUNENGINE_NO_SPEEDUPS)."""
    if os.environ.get("RUNENGINE_NO_SPEEDUPS"):
        return
    _Plan.__init__ = _plan_init
    _Plan.__del__ = _plan_del
    _bluesky_utils.new_uid = _new_uid
    if _CACHED_MEMBERS_CHECK is not None:
        typing._is_callable_members_only = _CACHED_MEMBERS_CHECK


def uninstall() -> None:
    """Restore bluesky's original ``Plan``."""
    _Plan.__init__, _Plan.__del__ = _ORIGINAL
    _bluesky_utils.new_uid = _ORIGINAL_NEW_UID
    if _MEMBERS_CHECK is not None:
        typing._is_callable_members_only = _MEMBERS_CHECK


def installed() -> bool:
    return _Plan.__init__ is _plan_init
