"""The heartbeat registry on Redis: every process on every host sees every agent.

    reg = RedisRegistry("redis://127.0.0.1:6379/0", timeout=5.0, check_period=0.5).start()
    reg.beat("ioc.motor1", op_codes={"acq": OpCode.RUNNING}, agent_class="MotorIOC")
    reg.status()                  # the OCS layout, as Registry.status(), for all processes
    reg.subscribe(cb)             # cb(addr, old, new) on every state change, from any process
    RE.install_suspender(SuspendOnExpired(reg, ["ioc.motor1"]))

Layout under ``prefix`` (default ``runengine``): ``<prefix>:hb:<addr>``, one key per agent with
a TTL of ``timeout`` (its existence *is* the agent being alive); ``<prefix>:agents``, a hash of
each agent's record; ``<prefix>:transitions``, a stream of state changes (new, expired,
revived, restart, op codes). Beats and expiry checks are Lua scripts on the server's clock, so
each transition is written once however many processes check. Expiry is seen within
``timeout + check_period`` of the last beat by every started registry.

Change events reach subscribers from the stream (``start()`` runs the reader); ``beats=True``
listeners hear this process's beats only; ``checks=True`` ones hear after every local check.

``on_failure``: ``"fallback"`` carries on with the in-process registry (this process only);
``"fail"`` makes :meth:`beat` and :meth:`status` raise :class:`BackendUnavailable` and reports
every address as expired until Redis answers again, so suspenders hold the plans.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..heartbeats.local import Entry, Registry
from .connection import BackendUnavailable, check_policy, connect, describe, redis_errors

__all__ = ["RedisRegistry"]

logger = logging.getLogger(__name__)

_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local a
if raw then a = cjson.decode(raw) else
  a = {address=ARGV[1], expired=false, op_codes='{}', saved_codes='{}', streak=0, restarts=0,
       beats=0, last=0}
end
local alive = redis.call('EXISTS', KEYS[2]) == 1
local c0, s0, o0, e0 = a.agent_class, a.session_id, a.op_codes, a.expired
if ARGV[4] ~= '' and a.session_id ~= nil and a.session_id ~= ARGV[4] then
  a.restarts = a.restarts + 1; a.streak = 0
end
if a.expired or (a.beats > 0 and not alive) then a.streak = 0 end
if a.expired then a.expired = false; a.time_expired = nil; a.op_codes = a.saved_codes end
a.last = now; a.beats = a.beats + 1; a.streak = a.streak + 1
if ARGV[2] ~= '' then a.op_codes = ARGV[2] end
if ARGV[3] ~= '' then a.agent_class = ARGV[3] end
if ARGV[4] ~= '' then a.session_id = ARGV[4] end
local new = cjson.encode(a)
redis.call('HSET', KEYS[1], ARGV[1], new)
redis.call('SET', KEYS[2], '1', 'PX', ARGV[5])
local changed = (not raw) or e0 ~= a.expired or o0 ~= a.op_codes or c0 ~= a.agent_class
  or s0 ~= a.session_id
if changed then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'addr', ARGV[1], 'old', raw or '',
             'new', new)
end
return new
"""

_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local addr, raw = all[i], all[i + 1]
  local a = cjson.decode(raw)
  if not a.expired and redis.call('EXISTS', ARGV[1] .. addr) == 0 then
    a.expired = true; a.time_expired = now; a.saved_codes = a.op_codes; a.streak = 0
    local codes = cjson.decode(a.op_codes)
    for k, _ in pairs(codes) do codes[k] = 7 end
    a.op_codes = cjson.encode(codes)
    if a.op_codes == '[]' then a.op_codes = '{}' end
    local new = cjson.encode(a)
    redis.call('HSET', KEYS[1], addr, new)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'addr', addr, 'old', raw,
               'new', new)
    table.insert(out, addr)
  end
end
return out
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(raw: Any, now: float, extended: bool = True) -> Entry:
    """A stored record as a Registry entry (OCS layout, plus the extended fields)."""
    rec = json.loads(raw)
    codes = json.loads(rec.get("op_codes") or "{}") or {}
    entry: Entry = {
        "expired": bool(rec.get("expired")),
        "time_expired": rec.get("time_expired"),
        "last_updated": rec.get("last"),
        "op_codes": {name: int(code) for name, code in codes.items()},
        "agent_class": rec.get("agent_class"),
        "agent_address": rec.get("address"),
    }
    if extended:
        entry["session_id"] = rec.get("session_id")
        entry["restarts"] = rec.get("restarts", 0)
        entry["streak"] = rec.get("streak", 0)
        entry["beats"] = rec.get("beats", 0)
        entry["silence"] = max(0.0, now - (rec.get("last") or 0.0))
    return entry


class RedisRegistry(Registry):
    """A :class:`~runengine.heartbeats.Registry` whose agents live in Redis (see the module).

    ``url``: a ``redis://`` URL or a client. ``socket_timeout`` bounds every Redis call.
    """

    def __init__(
        self,
        url: str | Any = "redis://127.0.0.1:6379/0",
        timeout: float = 5.0,
        check_period: float = 1.0,
        *,
        prefix: str = "runengine",
        on_failure: str = "fail",
        socket_timeout: float = 1.0,
        grace_period: float = 0.0,
        require_seen: bool = True,
        maxlen: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(timeout, check_period, clock, grace_period, require_seen)
        self.on_failure = check_policy(on_failure)
        self.prefix = prefix
        self.maxlen = int(maxlen)
        self._block_ms = max(50, int(min(check_period, 1.0) * 1000))
        self.redis = connect(url, socket_timeout)
        # the reader blocks on XREAD: its socket must outlast the block
        self._reader = connect(url, socket_timeout + self._block_ms / 1000)
        self._keys = (f"{prefix}:agents", f"{prefix}:transitions", f"{prefix}:hb:")
        self._beat_script = self.redis.register_script(_BEAT)
        self._check_script = self.redis.register_script(_CHECK)
        self.fallen_back: str | None = None  # why it went in-process, once it did
        self._down_since: float | None = None  # "fail" policy: since when Redis is unreachable
        self._reader_thread: threading.Thread | None = None
        self._last_id: Any = None

    def __repr__(self) -> str:
        where = f"in-process ({self.fallen_back})" if self.fallen_back else describe(self.redis)
        return f"<RedisRegistry {where} prefix={self.prefix!r} timeout={self.timeout}>"

    @property
    def backend(self) -> str:
        """``'redis'``, ``'redis (unreachable)'`` or ``'in-process (fallback)'``."""
        if self.fallen_back:
            return "in-process (fallback)"
        return "redis (unreachable)" if self._down_since is not None else "redis"

    # ---- failures ---------------------------------------------------------------------------
    def _failed(self, err: BaseException, what: str) -> None:
        """Redis did not answer: fall back for good, or note the outage (and raise)."""
        message = f"Registry backend {describe(self.redis)} unreachable while {what}: {err}"
        if self.on_failure == "fallback":
            if self.fallen_back is None:
                self.fallen_back = message
                logger.error("%s; falling back to the in-process registry", message)
            return
        if self._down_since is None:
            self._down_since = self.clock()
            logger.error("%s; reporting every agent as expired", message)

    def _ok(self) -> None:
        if self._down_since is not None:
            logger.warning("Registry backend %s answers again", describe(self.redis))
            self._down_since = None

    def _unavailable(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"Registry backend {describe(self.redis)} has been unreachable for "
            f"{self.clock() - (self._down_since or self.clock()):.1f} s"
        )

    # ---- heartbeats -------------------------------------------------------------------------
    def beat(
        self,
        address: str,
        op_codes: Mapping[str, int] | None = None,
        agent_class: str | None = None,
        session_id: Any = None,
    ) -> None:
        """One heartbeat of ``address`` (see :meth:`Registry.beat`), written to Redis."""
        if self.fallen_back:
            return super().beat(address, op_codes, agent_class, session_id)
        codes = "" if op_codes is None else _codes_json(op_codes)
        hb = self._keys[2] + address
        try:
            raw = self._beat_script(
                keys=[self._keys[0], hb, self._keys[1]],
                args=[
                    address,
                    codes,
                    agent_class or "",
                    "" if session_id is None else str(session_id),
                    int(self.timeout * 1000),
                    self.maxlen,
                ],
            )
        except redis_errors() as err:
            self._failed(err, f"beating for {address!r}")
            if self.fallen_back:
                return super().beat(address, op_codes, agent_class, session_id)
            raise self._unavailable() from err
        self._ok()
        entry = _entry(raw, time.time())
        self._publish(address, entry, entry, False, beat=True)

    def check(self, now: float | None = None) -> list[str]:
        """Expire the silent agents in Redis (once, whoever checks); the newly expired here."""
        if self.fallen_back:
            return super().check(now)
        try:
            expired = [
                _text(a)
                for a in self._check_script(keys=self._keys[:2], args=[self._keys[2], self.maxlen])
            ]
            self._ok()
        except redis_errors() as err:
            self._failed(err, "checking expiry")
            if self.fallen_back:
                return super().check(now)
            expired = []
        self._publish(None, None, None, False, check=True)
        return expired

    # ---- queries ----------------------------------------------------------------------------
    def _now(self, pipe: Any) -> Any:
        pipe.time()
        return pipe

    def status(self) -> dict[str, Entry]:
        """Every agent ever seen by any process, in the OCS layout."""
        if self.fallen_back:
            return super().status()
        try:
            raw, (sec, usec) = self._now(self.redis.pipeline().hgetall(self._keys[0])).execute()
        except redis_errors() as err:
            self._failed(err, "reading the status")
            if self.fallen_back:
                return super().status()
            raise self._unavailable() from err
        self._ok()
        now = sec + usec / 1e6
        return {_text(k): _entry(v, now, False) for k, v in sorted(raw.items())}

    def entry(self, address: str, extended: bool = True) -> Entry | None:
        """One agent's entry (None if never seen); while Redis is down ("fail"), expired."""
        if self.fallen_back:
            return super().entry(address, extended)
        try:
            pipe = self._now(self.redis.pipeline().hget(self._keys[0], address))
            raw, (sec, usec) = pipe.execute()
        except redis_errors() as err:
            self._failed(err, f"reading {address!r}")
            if self.fallen_back:
                return super().entry(address, extended)
            return self._down_entry(address, extended)
        self._ok()
        return None if raw is None else _entry(raw, sec + usec / 1e6, extended)

    def _down_entry(self, address: str, extended: bool) -> Entry:
        silence = self.clock() - (self._down_since or self.clock())
        entry: Entry = {
            "expired": True,
            "time_expired": time.time() - silence,
            "last_updated": None,
            "op_codes": {},
            "agent_class": None,
            "agent_address": address,
        }
        if extended:
            entry.update(session_id=None, restarts=0, streak=0, beats=0, silence=silence)
        return entry

    def health(self, address: str) -> str:
        """``'alive'``, ``'expired'`` or ``'unknown'`` (never seen)."""
        entry = self.entry(address, False)
        if entry is None:
            return "unknown"
        return "expired" if entry["expired"] else "alive"

    def silence(self, address: str) -> float | None:
        """Seconds since the last beat of ``address`` (server clock; None if never seen)."""
        entry = self.entry(address)
        return None if entry is None else entry["silence"]

    def clear(self) -> None:
        """Forget every agent and transition under this prefix (tests, commissioning)."""
        hb = [k for k in self.redis.scan_iter(match=self._keys[2] + "*", count=1000)]
        self.redis.delete(self._keys[0], self._keys[1], *hb)

    # ---- the threads ------------------------------------------------------------------------
    def start(self) -> RedisRegistry:
        """Start the expiry checker and the transition reader (idempotent)."""
        super().start()
        if self._reader_thread is None or not self._reader_thread.is_alive():
            if self._last_id is None:
                # Where to read from is fixed before start() returns: a transition written
                # right after it reaches the subscribers.
                with contextlib.suppress(*redis_errors()):
                    last = self._reader.xrevrange(self._keys[1], count=1)
                    self._last_id = last[0][0] if last else b"0-0"
            self._reader_thread = threading.Thread(
                target=self._read, name="registry-reader", daemon=True
            )
            self._reader_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join both threads."""
        super().stop(timeout)
        thread, self._reader_thread = self._reader_thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _read(self) -> None:
        stream = self._keys[1]
        while not self._halt.is_set() and not self.fallen_back:
            try:
                if self._last_id is None:
                    last = self._reader.xrevrange(stream, count=1)
                    self._last_id = last[0][0] if last else b"0-0"
                found = self._reader.xread({stream: self._last_id}, block=self._block_ms)
            except redis_errors():
                self._halt.wait(min(self.check_period, 0.5))  # the checker reports the outage
                continue
            for _, items in found or ():
                for item_id, fields in items:
                    self._last_id = item_id
                    self._dispatch_change(fields)

    def _dispatch_change(self, fields: Mapping[bytes, bytes]) -> None:
        now = time.time()
        old = fields.get(b"old")
        with self._dispatch:
            self._publish(
                _text(fields[b"addr"]),
                _entry(old, now) if old else None,
                _entry(fields[b"new"], now),
                True,
            )


def _codes_json(op_codes: Mapping[str, int]) -> str:
    return json.dumps(
        {str(k): int(v) for k, v in op_codes.items()}, sort_keys=True, separators=(",", ":")
    )
