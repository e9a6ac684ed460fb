"""A registry of agents by heartbeat, in the OCS Registry's layout, with its quirks fixed.

    reg = Registry(timeout=5.0, check_period=1.0)
    with reg:                                   # the checker thread runs inside the block
        reg.beat("ioc.motor1", op_codes={"acq": OpCode.RUNNING}, agent_class="MotorIOC")
        reg.status()   # {addr: {expired, time_expired, last_updated, op_codes, agent_class,
                       #         agent_address}}  (OCS ``session.data`` of ``registry.main``)
        reg.subscribe(lambda addr, old, new: ...)   # once per state change, not per beat

Unlike OCS: expiry is stamped once, at the transition, and published at once; ``op_codes`` are
replaced by each beat, not merged; the timeout is configurable; time runs on an injectable
monotonic ``clock`` (wall times in ``status()`` are that clock shifted to the epoch). A beat
with a new ``session_id`` is a restart, published as a change. Tests drive ``check()`` by hand.

"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["Entry", "OpCode", "Registry", "addresses_of", "describe_change"]

logger = logging.getLogger(__name__)

Entry = dict[str, Any]
Listener = Callable[[Any, Any, Any], None]


class OpCode(enum.IntEnum):
    """OCS ``ocs.base.OpCode``: the state of one operation of an agent (values as in OCS)."""

    NONE = 1  # never run
    STARTING = 2
    RUNNING = 3
    STOPPING = 4
    SUCCEEDED = 5
    FAILED = 6
    EXPIRED = 7  # state unknown: only the registry sets it
    DEGRADED = 8


class _Agent:
    """What the registry knows of one address."""

    __slots__ = (
        "address",
        "agent_class",
        "beats",
        "expired",
        "last",
        "op_codes",
        "restarts",
        "saved_codes",
        "session_id",
        "streak",
        "time_expired",
    )

    def __init__(self, address: str) -> None:
        self.address = address
        self.agent_class: str | None = None
        self.session_id: Any = None
        self.last = 0.0  # clock time of the last beat
        self.expired = False
        self.time_expired: float | None = None  # wall time, stamped once
        self.op_codes: dict[str, OpCode] = {}
        self.saved_codes: dict[str, OpCode] = {}  # the codes before expiry, restored by a beat
        self.streak = 0  # consecutive beats since the agent (re)appeared or restarted
        self.restarts = 0
        self.beats = 0


class Registry:
    """Agents by heartbeat: an agent expires when silent for more than ``timeout`` seconds.

    ``check_period``: how often the checker thread (``start()``/``stop()``, or ``with``) looks;
    detection latency is at most ``timeout + check_period``. ``clock``: a monotonic clock
    (inject a fake one in tests and call :meth:`check`). ``grace_period``: for that long after
    the registry was made, addresses never seen do not count as expired (a registry restart
    does not trip suspenders before the agents' next beats). ``require_seen``: the default of
    :meth:`expired` for addresses never seen.
    """

    def __init__(
        self,
        timeout: float = 5.0,
        check_period: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        grace_period: float = 0.0,
        require_seen: bool = True,
    ) -> None:
        if timeout <= 0 or check_period <= 0:
            raise ValueError("timeout and check_period must be positive")
        self.timeout = float(timeout)
        self.check_period = float(check_period)
        self.clock = clock
        self.grace_period = float(grace_period)
        self.require_seen = require_seen
        self.errors: list[BaseException] = []  # exceptions raised by subscribers
        self._started = clock()
        self._epoch = time.time() - self._started
        self._agents: dict[str, _Agent] = {}
        self._lock = threading.Lock()  # guards the agents
        self._dispatch = threading.RLock()  # keeps events in order, one publisher at a time
        self._listeners: dict[int, tuple[Listener, bool, bool]] = {}
        self._next_token = 0
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()

    def __repr__(self) -> str:
        return f"<Registry {len(self._agents)} agent(s), timeout={self.timeout}>"

    # ---- heartbeats -------------------------------------------------------------------------
    def beat(
        self,
        address: str,
        op_codes: Mapping[str, int] | None = None,
        agent_class: str | None = None,
        session_id: Any = None,
    ) -> None:
        """One heartbeat of ``address``; ``op_codes`` (if given) replace the agent's codes.

        An expired agent is revived: its codes are the beat's, or those it had before expiry.
        """
        now = self.clock()
        with self._dispatch:
            with self._lock:
                agent = self._agents.get(address)
                old = None if agent is None else self._entry(agent, True)
                if agent is None:
                    agent = self._agents[address] = _Agent(address)
                if session_id is not None and agent.session_id not in (None, session_id):
                    agent.restarts += 1
                    agent.streak = 0
                if agent.expired or (agent.beats and now - agent.last > self.timeout):
                    agent.streak = 0  # a gap longer than the timeout breaks the streak
                if agent.expired:
                    agent.expired = False
                    agent.time_expired = None
                    agent.op_codes = dict(agent.saved_codes)
                agent.last = now
                agent.beats += 1
                agent.streak += 1
                if op_codes is not None:
                    agent.op_codes = {name: OpCode(code) for name, code in op_codes.items()}
                if agent_class is not None:
                    agent.agent_class = agent_class
                if session_id is not None:
                    agent.session_id = session_id
                new = self._entry(agent, True)
            changed = old is None or any(
                old[key] != new[key] for key in ("expired", "op_codes", "agent_class", "session_id")
            )
            self._publish(address, old, new, changed, beat=True)

    def check(self, now: float | None = None) -> list[str]:
        """Expire every agent silent for more than ``timeout``; return the newly expired.

        The checker thread calls this every ``check_period``; tests call it by hand.
        """
        now = self.clock() if now is None else now
        expired = []
        with self._dispatch:
            with self._lock:
                for agent in self._agents.values():
                    if not agent.expired and now - agent.last > self.timeout:
                        old = self._entry(agent, True)
                        agent.expired = True
                        agent.time_expired = self._epoch + now
                        agent.saved_codes = agent.op_codes
                        agent.op_codes = dict.fromkeys(agent.op_codes, OpCode.EXPIRED)
                        agent.streak = 0
                        expired.append((agent.address, old, self._entry(agent, True)))
            for address, old, new in expired:
                self._publish(address, old, new, True)
            self._publish(None, None, None, False, check=True)
        return [address for address, _, _ in expired]

    # ---- queries ----------------------------------------------------------------------------
    def status(self) -> dict[str, Entry]:
        """Every agent ever seen, in the OCS ``session.data`` layout (op codes as ints)."""
        with self._lock:
            return {addr: self._entry(agent) for addr, agent in self._agents.items()}

    def entry(self, address: str, extended: bool = True) -> Entry | None:
        """One agent's entry (None if never seen); ``extended`` adds ``session_id``,
        ``restarts``, ``streak``, ``beats`` and ``silence`` (seconds since the last beat)."""
        with self._lock:
            agent = self._agents.get(address)
            return None if agent is None else self._entry(agent, extended)

    @property
    def in_grace(self) -> bool:
        """Whether the registry is still within its ``grace_period``."""
        return self.clock() - self._started < self.grace_period

    def health(self, address: str) -> str:
        """``'alive'``, ``'expired'`` or ``'unknown'`` (never seen)."""
        with self._lock:
            agent = self._agents.get(address)
            if agent is None:
                return "unknown"
            return "expired" if agent.expired else "alive"

    def expired(self, address: str, require_seen: bool | None = None) -> bool:
        """Whether ``address`` counts as gone: expired, or never seen when ``require_seen``
        (default: the registry's) and the grace period is over."""
        health = self.health(address)
        if health == "unknown":
            seen = self.require_seen if require_seen is None else require_seen
            return seen and not self.in_grace
        return health == "expired"

    def silence(self, address: str) -> float | None:
        """Seconds since the last beat of ``address`` (None if never seen)."""
        with self._lock:
            agent = self._agents.get(address)
            return None if agent is None else self.clock() - agent.last

    # ---- subscriptions ----------------------------------------------------------------------
    def subscribe(self, cb: Listener, *, beats: bool = False, checks: bool = False) -> int:
        """Call ``cb(address, old_entry, new_entry)`` on every state change (first beat,
        expiry, revival, restart, new op codes or class); ``old_entry`` is None for a new agent.

        Entries are extended (see :meth:`entry`). With ``beats=True`` also on every beat; with
        ``checks=True`` also ``cb(None, None, None)`` after every check. Returns a token.
        """
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._listeners[token] = (cb, beats, checks)
        return token

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._listeners.pop(token, None)

    # ---- the checker thread ---------------------------------------------------------------
    def start(self) -> Registry:
        """Start the checker thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._halt.clear()
            self._thread = threading.Thread(target=self._run, name="registry-checker", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join the checker thread."""
        self._halt.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._halt.wait(self.check_period):
            try:
                self.check()
            except Exception as exc:  # never die silently: keep checking
                self._report(exc)

    # ---- internals --------------------------------------------------------------------------
    def _entry(self, agent: _Agent, extended: bool = False) -> Entry:
        entry: Entry = {
            "expired": agent.expired,
            "time_expired": agent.time_expired,
            "last_updated": self._epoch + agent.last,
            "op_codes": {name: int(code) for name, code in agent.op_codes.items()},
            "agent_class": agent.agent_class,
            "agent_address": agent.address,
        }
        if extended:
            entry["session_id"] = agent.session_id
            entry["restarts"] = agent.restarts
            entry["streak"] = agent.streak
            entry["beats"] = agent.beats
            entry["silence"] = self.clock() - agent.last
        return entry

    def _publish(
        self, address: Any, old: Any, new: Any, changed: bool, beat: bool = False, check=False
    ) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
        for cb, on_beats, on_checks in listeners:
            if (changed and not check) or (beat and on_beats) or (check and on_checks):
                try:
                    cb(address, old, new)
                except Exception as exc:
                    self._report(exc)

    def _report(self, exc: BaseException) -> None:
        logger.exception("registry: %s", exc, exc_info=exc)
        self.errors.append(exc)


def describe_change(old: Entry | None, new: Entry) -> str:
    """What a change event is: ``'new'``, ``'expired'``, ``'revived'``, ``'restart'``,
    ``'op_codes'``, ``'agent_class'`` or ``'beat'`` (nothing changed)."""
    if old is None:
        return "new"
    if new["expired"] and not old["expired"]:
        return "expired"
    if old["expired"] and not new["expired"]:
        return "revived"
    if old.get("session_id") != new.get("session_id") and old.get("session_id") is not None:
        return "restart"
    if old["op_codes"] != new["op_codes"]:
        return "op_codes"
    if old["agent_class"] != new["agent_class"]:
        return "agent_class"
    return "beat"


def addresses_of(addresses: str | Iterable[str]) -> list[str]:
    """A list of addresses from one address or many."""
    return [addresses] if isinstance(addresses, str) else list(addresses)
