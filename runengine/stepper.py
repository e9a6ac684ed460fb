"""The stepping core: the stack of plans and the cache of messages since the last checkpoint.

Pure data structures, no threads, no event loop: tests drive them directly.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

from bluesky.utils import Msg

from .errors import RunEngineError

__all__ = [
    "ANSWERED_ONCE",
    "NOT_ANSWERED",
    "REPLAYED",
    "UNCACHEABLE",
    "MessageCache",
    "PlanFinished",
    "PlanStack",
    "replay",
]

#: Commands never cached for replay: they change the engine's own bookkeeping, not the
#: hardware. Filled where each command is registered (``command(..., replay="skip")`` in
#: :mod:`runengine.commands.spec`); a set, as it is read for every message.
UNCACHEABLE: set[str] = set()
#: Commands whose handler runs once per message: a replay gets the first answer
#: (``command(..., replay="once")``).
ANSWERED_ONCE: set[str] = set()


class PlanFinished(RunEngineError):
    """The bottom plan of the stack returned ``value``."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


class _Replayed:
    def __repr__(self) -> str:
        return "REPLAYED"


#: Owed to a plan whose message was cut short: it receives the response of that message's replay.
REPLAYED = _Replayed()


class PlanStack:
    """Generators stacked on one another; each one below the top is owed a response.

    ``advance`` sends a response (or throws an exception) into the top generator and returns the
    next message. A generator that returns is popped and the one below receives what it was owed;
    one that raises is popped and its exception is thrown into the one below.
    """

    __slots__ = ("_gens", "_owed")

    def __init__(self, plan: Generator) -> None:
        self._gens: list[Generator] = [plan]
        self._owed: list[tuple[Any, BaseException | None]] = []

    def __len__(self) -> int:
        return len(self._gens)

    def push(self, gen: Generator, owed: Any = None, owed_exc: BaseException | None = None) -> None:
        """Put ``gen`` on top; when it ends, the generator below gets ``owed`` (or ``owed_exc``)."""
        self._owed.append((owed, owed_exc))
        self._gens.append(gen)

    @property
    def generators(self) -> list[Generator]:
        """The stack itself, top last (the message loop reads its top directly)."""
        return self._gens

    def advance(self, value: Any = None, exc: BaseException | None = None) -> Msg:
        """Send ``value`` (or throw ``exc``) into the plan; return the next message.

        Raises PlanFinished when the bottom plan returns, or the bottom plan's exception.
        """
        gen = self._gens[-1]
        try:
            return gen.send(value) if exc is None else gen.throw(exc)
        except BaseException as err:
            return self.unwind(err, value)

    def unwind(self, err: BaseException, sent: Any = None) -> Msg:
        """The top generator ended with ``err`` (StopIteration or an exception) when it was
        sent ``sent``: pop it, carry on with the one below, and return the next message."""
        gens = self._gens
        value: Any = sent
        exc: BaseException | None = None
        while True:
            gens.pop()
            if isinstance(err, StopIteration):
                if not gens:
                    raise PlanFinished(err.value) from None
                owed, exc = self._owed.pop()
                if owed is not REPLAYED:
                    value = owed
            else:
                if not gens:
                    raise err
                self._owed.pop()
                if isinstance(err, GeneratorExit):
                    # Not thrown into the plans below (as in bluesky): it ends the call, and
                    # closing what is left tells of a plan that yields on close.
                    raise err
                value, exc = None, err
            gen = gens[-1]
            try:
                return gen.send(value) if exc is None else gen.throw(exc)
            except BaseException as next_err:
                err = next_err

    def close(self) -> list[Generator]:
        """Close every generator, top first; return those that yielded instead of closing."""
        misbehaving = []
        while self._gens:
            gen = self._gens.pop()
            try:
                gen.close()
            except RuntimeError as err:  # Python's words for a yield in place of closing
                if "ignored GeneratorExit" in str(err):
                    misbehaving.append(gen)
            except Exception:
                pass
        self._owed.clear()
        return misbehaving


def replay(msgs: Iterable[Msg]) -> Generator[Msg, Any, None]:
    """A generator over cached messages; responses are discarded (but see REPLAYED)."""
    for msg in msgs:  # noqa: UP028 - `yield from` a list would fail on send()
        yield msg


class _NotAnswered:
    def __repr__(self) -> str:
        return "NOT_ANSWERED"


#: What :meth:`MessageCache.replayed_answer` gives for a message with no answer to replay.
NOT_ANSWERED = _NotAnswered()


class MessageCache:
    """Messages processed since the last checkpoint: what a resume replays.

    The start of a call counts as a checkpoint, as in bluesky: a plan paused before its first
    ``checkpoint`` replays from its start. ``msgs is None`` means there is no checkpoint to
    return to: the plan cleared it, which holds for the rest of the call (bluesky's sticky
    ``clear_checkpoint``).

    It also keeps the answers of the messages of :data:`ANSWERED_ONCE` commands, by message
    (the same object is what a replay sends again): a rewind hands those of the replayed
    messages to :meth:`replayed_answer`, so such a handler runs once per message.
    """

    __slots__ = ("_msgs", "_replaying", "_rewindable", "answers", "cleared", "live")

    def __init__(self) -> None:
        self._msgs: list[Msg] | None = []
        self._rewindable = True
        self.cleared = False
        # id(msg) -> (msg, response, exception) of answered-once messages since the checkpoint
        self.answers: dict[int, tuple[Msg, Any, BaseException | None]] = {}
        # the same, of the messages a rewind is replaying and the replay has not reached yet
        self._replaying: dict[int, tuple[Msg, Any, BaseException | None]] = {}
        # The list the message loop appends to, or None when nothing is recorded: one slot to
        # test per message instead of two.
        self.live: list[Msg] | None = self._msgs

    @property
    def msgs(self) -> list[Msg] | None:
        return self._msgs

    @msgs.setter
    def msgs(self, value: list[Msg] | None) -> None:
        self._msgs = value
        self.live = value if self._rewindable else None

    @property
    def rewindable(self) -> bool:
        return self._rewindable

    @rewindable.setter
    def rewindable(self, value: bool) -> None:
        self._rewindable = value
        self.live = self._msgs if value else None

    @property
    def resumable(self) -> bool:
        return self._msgs is not None

    def record(self, msg: Msg) -> bool:
        """Remember ``msg`` for replay if it is cacheable; return whether it was."""
        live = self.live
        if live is not None and msg.command not in UNCACHEABLE:
            live.append(msg)
            return True
        return False

    def checkpoint(self) -> None:
        """Forget everything before now: a resume comes back here (unless cleared)."""
        if not self.cleared:
            self.msgs = []
            self.answers.clear()

    def clear(self) -> None:
        """No checkpoint to return to for the rest of the call."""
        self.cleared = True
        self.msgs = None
        self.answers.clear()

    def take(self) -> list[Msg]:
        """The messages to replay on resume; the cache starts over (replayed ones are re-cached)."""
        msgs = self.msgs or []
        if self.msgs is not None:
            self.msgs = []
        if self.answers:
            last = msgs[-1] if msgs else None
            for msg in msgs:
                hit = self.answers.get(id(msg))
                if hit is not None and hit[0] is msg:
                    if hit[2] is not None and msg is not last:
                        # The plan was told of that error already: the replay just goes on.
                        hit = (msg, None, None)
                    self._replaying[id(msg)] = hit
            self.answers.clear()
        return msgs

    def answer(self, msg: Msg, response: Any, exc: BaseException | None = None) -> None:
        """Keep what ``msg``'s handler answered, for a replay of it (if it may be replayed)."""
        if self.live is not None:
            self.answers[id(msg)] = (msg, response, exc)

    def replayed_answer(self, msg: Msg) -> Any:
        """The answer ``msg`` had, if this is its replay (its exception raised); else
        :data:`NOT_ANSWERED`. The answer is kept again, for a replay of this replay."""
        hit = self._replaying.pop(id(msg), None)
        if hit is None or hit[0] is not msg:
            return NOT_ANSWERED
        self.answer(*hit)
        if hit[2] is not None:
            raise hit[2]
        return hit[1]
