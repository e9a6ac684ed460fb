"""Pausing agents: things outside the plan that pause or suspend it.

- :class:`TimedPausingAgent` and :class:`NamedPausingAgent`: the seed's agents
  (``issue_request(defer, delay)``); the named one holds the resume until it grants permission.
- :class:`FilePausingAgent`: a file appearing at a path pauses the plan, which cannot resume
  while the file exists; :class:`SuspendWhileFileExists` is the same as a suspender.

Every agent starts and stops cleanly (also as a context manager), leaves no thread behind and
reports errors (logged, kept in ``errors`` and passed to ``on_error``) instead of dying silently.
"""

from .base import Agent
from .files import FilePausingAgent, SuspendWhileFileExists
from .pausing import NamedPausingAgent, TimedPausingAgent
from .watch import PathWatcher

__all__ = [
    "Agent",
    "FilePausingAgent",
    "NamedPausingAgent",
    "PathWatcher",
    "SuspendWhileFileExists",
    "TimedPausingAgent",
]
