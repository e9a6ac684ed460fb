"""Run any subscriber off the engine's thread, behind a bounded queue.

``RE.subscribe(Buffered(cb, maxsize=1000, policy="drop"))``: the engine only appends the
document to a queue and goes on; one worker thread hands the documents to ``cb`` in order.
Start, descriptor, stop and asset documents (resource, datum, ...) are never dropped. Events and
event pages are dropped when ``maxsize`` of them are waiting: ``policy="drop"`` drops the
incoming one (the subscriber sees every point up to where it fell behind), ``policy="latest"``
drops the oldest waiting one (the subscriber stays current: live plots, progress). Drops are
counted, logged once when they start and again, with their count, at the run's stop.
Exceptions raised by ``cb`` are logged with its name and counted, never raised into the engine.

The worker thread starts with the first document and ends by itself once the queue is empty and
no run is open, so no thread outlives a run; :meth:`Buffered.flush` waits for the queue to drain
and :meth:`Buffered.close` drains it and refuses further documents.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Literal

from bluesky.callbacks.core import CallbackBase

__all__ = ["Buffered", "CallbackWarning", "SafeCallback", "callback_name"]

logger = logging.getLogger(__name__)

_DROPPABLE = frozenset({"event", "event_page"})
_POLICIES = ("drop", "latest")
_ids = itertools.count(1)


def callback_name(cb: Any) -> str:
    """A readable name for a callback: ``module.Class`` or ``module.function``."""
    func = getattr(cb, "__func__", cb)  # bound methods
    name = getattr(func, "__qualname__", None)
    if name is None:
        name = type(cb).__qualname__
    module = getattr(func, "__module__", None) or type(cb).__module__
    return f"{module}.{name}" if module and module != "builtins" else name


def _n_events(name: str, doc: dict) -> int:
    return len(doc.get("seq_num", ())) if name == "event_page" else 1


class Buffered:
    """Wrap ``cb(name, doc)`` so that the engine never waits for it.

    Attributes (read them any time): ``dropped`` (events dropped in total), ``dropped_last_run``
    (in the last run that stopped), ``errors`` (exceptions raised by ``cb``), ``delivered``
    (documents handed to ``cb``), ``pending`` (documents waiting).
    """

    def __init__(
        self,
        cb: Callable[[str, dict], Any],
        maxsize: int = 1000,
        policy: Literal["drop", "latest"] = "drop",
        *,
        name: str | None = None,
    ) -> None:
        if not callable(cb):
            raise TypeError(f"Buffered wraps a callable cb(name, doc), not {cb!r}")
        if policy not in _POLICIES:
            raise ValueError(f"policy must be one of {_POLICIES}, not {policy!r}")
        if not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, not {maxsize!r}")
        self.cb = cb
        self.maxsize = maxsize
        self.policy = policy
        self.name = name or callback_name(cb)
        self.dropped = 0
        self.dropped_last_run = 0
        self.errors = 0
        self.delivered = 0
        self._queue: collections.deque[tuple[str, dict]] = collections.deque()
        self._n_droppable = 0  # events/event pages waiting in the queue
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._closed = False
        self._run_of: dict[str, str] = {}  # descriptor uid -> run start uid
        self._open: dict[str, int] = {}  # run start uid -> events dropped so far
        self._id = next(_ids)

    def __repr__(self) -> str:
        return f"Buffered({self.name}, maxsize={self.maxsize}, policy={self.policy!r})"

    @property
    def pending(self) -> int:
        """Documents waiting for the worker."""
        return len(self._queue)

    @property
    def worker_alive(self) -> bool:
        """Whether the worker thread is running now."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    # ---- engine side --------------------------------------------------------------------
    def __call__(self, name: str, doc: dict) -> None:
        """Queue a document; never blocks for longer than a lock."""
        with self._cond:
            if self._closed:
                return
            self._track(name, doc)
            if name in _DROPPABLE:
                if self._n_droppable >= self.maxsize and not self._make_room(name, doc):
                    return
                self._n_droppable += 1
            self._queue.append((name, doc))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"Buffered-{self._id}-{self.name}", daemon=True
                )
                self._thread.start()
            else:
                self._cond.notify()

    def _track(self, name: str, doc: dict) -> None:
        if name == "start":
            self._open[doc["uid"]] = 0
        elif name == "descriptor":
            self._run_of[doc["uid"]] = doc.get("run_start", "")
        elif name == "stop":
            run = doc.get("run_start", "")
            self.dropped_last_run = self._open.pop(run, 0)
            self._run_of = {d: r for d, r in self._run_of.items() if r != run}
            if self.dropped_last_run:
                logger.warning(
                    "%s dropped %d events of run %s: the subscriber could not keep up",
                    self,
                    self.dropped_last_run,
                    run[:8],
                )

    def _make_room(self, name: str, doc: dict) -> bool:
        """The queue is full of events: drop one. True if ``doc`` may still be queued."""
        if self.policy == "latest":
            for index, (old_name, old_doc) in enumerate(self._queue):
                if old_name in _DROPPABLE:
                    del self._queue[index]
                    self._n_droppable -= 1
                    self._count_drop(old_name, old_doc)
                    return True
        self._count_drop(name, doc)
        return False

    def _count_drop(self, name: str, doc: dict) -> None:
        n = _n_events(name, doc)
        run = self._run_of.get(doc.get("descriptor", ""), "")
        before = self._open.get(run, 0)
        if run in self._open:
            self._open[run] = before + n
        if before == 0:
            logger.warning(
                "%s is falling behind: dropping events (counted, reported at stop)", self
            )
        self.dropped += n

    # ---- worker side --------------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._drain()
        finally:
            with self._cond:  # cb raised a BaseException (SystemExit, ...): let a new one start
                if self._thread is threading.current_thread():
                    self._thread = None
                    self._busy = False
                    self._cond.notify_all()

    def _drain(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()  # flush() waiters
                while not self._queue:
                    if not self._open or self._closed:
                        self._thread = None  # under the lock: the next document starts anew
                        return
                    self._cond.wait()
                name, doc = self._queue.popleft()
                if name in _DROPPABLE:
                    self._n_droppable -= 1
                self._busy = True
            try:
                self.cb(name, doc)
            except Exception:
                self.errors += 1
                logger.exception("%s: the callback raised on a %r document", self.name, name)
            self.delivered += 1

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every queued document was handed over. False if ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Hand over what is queued, refuse new documents and end the worker thread.

        False if ``timeout`` ran out first (the callback is stuck); the worker thread is a
        daemon and ends after its current document.
        """
        drained = self.flush(timeout)
        with self._cond:
            self._closed = True
            if not drained:
                self._queue.clear()
                self._n_droppable = 0
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return drained and not thread.is_alive()
        return drained

    def __enter__(self) -> Buffered:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CallbackWarning(UserWarning):
    """Bad input to a display callback (a missing field, an unusable value): it goes on."""


class SafeCallback(CallbackBase):
    """A bluesky ``CallbackBase`` that never raises into the engine.

    An exception in a handler is logged with the callback's name and counted in ``errors``;
    :meth:`warn` issues a :class:`CallbackWarning` once per message.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors = 0
        self._warned: set[str] = set()

    def __call__(self, name: str, doc: dict) -> Any:
        try:
            return super().__call__(name, doc)
        except Exception:
            self.errors += 1
            logger.exception("%s raised on a %r document", callback_name(self), name)
            return None

    def warn(self, message: str) -> None:
        """Warn once about ``message`` (and log it)."""
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s", message)
            warnings.warn(message, CallbackWarning, stacklevel=2)
