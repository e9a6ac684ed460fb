"""The patches: bluesky's ``Plan`` stack capture, ``bluesky.utils.new_uid`` and Python 3.11's
protocol member check, each made cheaper inside our engine's calls only.

``Plan``: every stub decorated with ``bluesky.utils.plan`` formats the whole call stack (source
lines read from disk) in case it is never iterated: 0.1 ms per stub call, more than our engine
spends on an event. Ours keeps the calling frame and formats the stack only if the warning is
given (outer frames are then shown at the line they have reached).

``new_uid``: bluesky labels each ``trigger_and_read`` and ``mv`` group with ``short_uid()``,
a ``uuid4()`` and so a ``getrandom`` system call (10-20 µs on a virtual machine once its cache
flushes are counted). Ours: the same version-4 strings from a PRNG seeded by the OS
(:func:`runengine.documents.new_uid`).

``typing._is_callable_members_only`` (Python 3.11 only; 3.12 caches it itself): recomputed at
each ``isinstance(obj, Triggerable)``, which bluesky asks per device per event. Ours
remembers it per protocol class.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bluesky import utils as bluesky_utils

from ..documents import new_uid as _fast_new_uid
from ._context import in_engine_call

__all__ = ["PATCHES", "Patch", "install", "installed", "uninstall"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Patch:
    """One attribute of another library replaced, within our engine's calls only.

    ``replacement(original)`` builds the new value from the original; ``applies()`` says
    whether the target still has the shape the replacement was written for.
    """

    owner: Any
    attribute: str
    why: str
    applies: Callable[[], bool]
    replacement: Callable[[Any], Any]

    @property
    def name(self) -> str:
        owner = getattr(self.owner, "__qualname__", None) or self.owner.__name__
        module = getattr(self.owner, "__module__", None)
        prefix = f"{module}.{owner}" if module and module != owner else owner
        return f"{prefix}.{self.attribute}"


# ---- bluesky.utils.Plan: record the stack cheaply ------------------------------------------
def _plan_shape_is_known() -> bool:
    plan = getattr(bluesky_utils, "Plan", None)
    return plan is not None and getattr(plan, "__slots__", None) == ("_iter", "_stack")


def _cheap_plan_init(original: Callable) -> Callable:
    def __init__(self: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if not in_engine_call():
            original(self, f, *args, **kwargs)
            return
        self._iter = f(*args, **kwargs)
        caller = sys._getframe(2)  # skip this __init__ and the @plan wrapper, as bluesky does
        self._stack = (f.__name__, caller, caller.f_lineno)

    return __init__


def _cheap_plan_del(original: Callable) -> Callable:
    def __del__(self: Any) -> None:
        stack = self._stack
        if type(stack) is not tuple:  # made outside our calls: bluesky's own list of lines
            original(self)
            return
        name, caller, lineno = stack
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

    return __del__


# ---- bluesky.utils.new_uid: no system call per short_uid -----------------------------------
def _fast_uids(original: Callable[[], str]) -> Callable[[], str]:
    def new_uid() -> str:
        return _fast_new_uid() if in_engine_call() else original()

    new_uid.__doc__ = original.__doc__
    return new_uid


# ---- typing._is_callable_members_only: remember a protocol's members -----------------------
def _members_check_is_uncached() -> bool:
    return sys.version_info < (3, 12) and callable(
        getattr(typing, "_is_callable_members_only", None)
    )


def _cached_members(original: Callable) -> Callable:
    cached = functools.lru_cache(maxsize=256)(original)

    def _is_callable_members_only(cls: type) -> bool:
        return cached(cls) if in_engine_call() else original(cls)

    return _is_callable_members_only


PATCHES: tuple[Patch, ...] = (
    Patch(bluesky_utils.Plan, "__init__", "stack recorded as a frame, formatted on warning",
          _plan_shape_is_known, _cheap_plan_init),
    Patch(bluesky_utils.Plan, "__del__", "the never-iterated warning from the recorded frame",
          _plan_shape_is_known, _cheap_plan_del),
    Patch(bluesky_utils, "new_uid", "short_uid without a getrandom system call",
          lambda: callable(getattr(bluesky_utils, "new_uid", None)), _fast_uids),
    Patch(typing, "_is_callable_members_only", "protocol members computed once per class",
          _members_check_is_uncached, _cached_members),
)  # fmt: skip

_originals: dict[Patch, Any] = {}


def install() -> None:
    """Put every applicable patch in place (idempotent; honours RUNENGINE_NO_SPEEDUPS)."""
    if os.environ.get("RUNENGINE_NO_SPEEDUPS"):
        return
    for patch in PATCHES:
        if patch in _originals:
            continue
        if not patch.applies():
            logger.info("Not patching %s: its shape is not the one we know", patch.name)
            continue
        original = getattr(patch.owner, patch.attribute)
        _originals[patch] = original
        setattr(patch.owner, patch.attribute, patch.replacement(original))


def uninstall() -> None:
    """Put every original back."""
    while _originals:
        patch, original = _originals.popitem()
        setattr(patch.owner, patch.attribute, original)


def installed() -> list[str]:
    """The names of the patches in place now."""
    return [patch.name for patch in _originals]
