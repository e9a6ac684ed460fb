"""The root of runengine's exceptions: :class:`RunEngineError`.

Every exception runengine defines derives from it, so ``except RunEngineError`` catches
anything of ours. Each feature (graphs, locks, scripts, scale-out, extensions, the run store,
the command line, the devices) has one root of its own, a ``RunEngineError`` that is also the
builtin exception it specialises (``LockError`` is a ``RuntimeError``, ``StoreError`` an
``OSError``), and each of its classes adds the builtin it means (``LockTimeout`` is a
``TimeoutError``) so that ``except TimeoutError`` keeps working.

bluesky's own exceptions, thrown into plans as bluesky throws them (``RunEngineInterrupted``,
``FailedStatus``, ``IllegalMessageSequence``, ``InvalidCommand``, ``RequestAbort``, ...), stay
bluesky's; ours that specialise one derive from both (``StreamDeclarationError`` is an
``IllegalMessageSequence`` and a ``RunEngineError``). Warnings are categories, not errors, and
``PromptRequested`` is a ``KeyboardInterrupt`` that ``except Exception`` must not catch: neither
derives from this root. The whole tree is in the documentation (``docs/api/errors.md``) and
``tests/runengine/test_errors.py`` holds every class to these rules.

This module imports nothing, so that every part of runengine can import it.
"""

from __future__ import annotations

__all__ = ["RunEngineError"]


class RunEngineError(Exception):
    """Base of every exception runengine defines; see :mod:`runengine.errors`."""
