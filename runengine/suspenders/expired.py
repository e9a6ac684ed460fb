"""SuspendOnExpired: plans suspend while agents of a heartbeat registry are silent.

    reg = Registry().start()
    RE.install_suspender(SuspendOnExpired(reg, ["ioc.motor1", "ioc.det"], sleep=2.0,
                                          pre_plan=close_shutter, post_plan=open_shutter))

Also importable from :mod:`runengine.heartbeats` and :mod:`runengine.heartbeats`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from bluesky.suspenders import SuspenderBase

from ..heartbeats.local import OpCode, Registry, addresses_of

__all__ = ["SuspendOnExpired"]


class _Verdict(NamedTuple):
    trip: bool
    resume: bool


class _RegistryWatch:
    """The 'signal' a SuspenderBase subscribes to: the suspender's verdict on the registry,
    re-evaluated on every beat, change and check of the registry."""

    def __init__(self, suspender: SuspendOnExpired) -> None:
        self.suspender = suspender
        self.name = f"heartbeats of {', '.join(suspender.addresses)}"
        self._tokens: dict[Any, int] = {}

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def subscribe(self, cb: Callable, event_type: Any = None, run: bool = True) -> int:
        def on_registry(address: Any, old: Any, new: Any) -> None:
            if address is None or address in self.suspender.addresses:
                cb(value=self.suspender._verdict())

        token = self.suspender.registry.subscribe(on_registry, beats=True, checks=True)
        self._tokens[cb] = token
        if run:
            cb(value=self.suspender._verdict())
        return token

    def clear_sub(self, cb: Callable, event_type: Any = None) -> None:
        token = self._tokens.pop(cb, None)
        if token is not None:
            self.suspender.registry.unsubscribe(token)


class SuspendOnExpired(SuspenderBase):
    """Suspend while any of ``addresses`` is expired (or never seen, with ``require_seen``).

    It resumes once every address has beaten ``resume_after_beats`` times in a row and
    then ``sleep`` seconds have passed (hysteresis against flapping). ``require_ops``, e.g.
    ``{"ioc.det": {"acq": {OpCode.RUNNING}}}``, also trips while an op code is not allowed.
    ``suspend_on_restart``: a beat with a new session id trips too, until
    ``resume_after_beats`` beats of the new session (so ``post_plan`` can restore the device).
    """

    def __init__(
        self,
        registry: Registry,
        addresses: str | Iterable[str],
        *,
        sleep: float = 0,
        pre_plan: Any = None,
        post_plan: Any = None,
        tripped_message: str = "",
        resume_after_beats: int = 2,
        require_ops: Mapping[str, Mapping[str, Iterable[int]]] | None = None,
        require_seen: bool | None = None,
        suspend_on_restart: bool = False,
    ) -> None:
        self.registry = registry
        self.addresses = addresses_of(addresses)
        if not self.addresses:
            raise ValueError("SuspendOnExpired needs at least one address")
        self.resume_after_beats = max(1, int(resume_after_beats))
        self.require_ops = {
            addr: {op: {int(code) for code in codes} for op, codes in ops.items()}
            for addr, ops in (require_ops or {}).items()
        }
        self.require_seen = require_seen
        self.suspend_on_restart = suspend_on_restart
        self._sessions: dict[str, Any] = {}
        self._restarted: set[str] = set()
        super().__init__(
            _RegistryWatch(self),
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
        )

    def _should_suspend(self, value: _Verdict) -> bool:
        return value.trip

    def _should_resume(self, value: _Verdict) -> bool:
        return value.resume

    def problems(self) -> list[str]:
        """Why each bad address is bad now; empty when all is well."""
        found = []
        for address in self.addresses:
            entry = self.registry.entry(address)
            if entry is None:
                if self.registry.expired(address, self.require_seen):
                    found.append(f"{address} never seen")
                continue
            if entry["expired"]:
                found.append(f"{address} silent for {entry['silence']:.1f} s")
                continue
            session = entry["session_id"]
            if self.suspend_on_restart:
                if self._sessions.get(address, session) != session:
                    self._restarted.add(address)
                if address in self._restarted and entry["streak"] >= self.resume_after_beats:
                    self._restarted.discard(address)
                if address in self._restarted:
                    found.append(f"{address} restarted (session {session})")
            self._sessions[address] = session
            for op, allowed in self.require_ops.get(address, {}).items():
                code = entry["op_codes"].get(op)
                if code not in allowed:
                    name = OpCode(code).name if code in OpCode._value2member_map_ else code
                    wants = "/".join(sorted(OpCode(c).name for c in allowed))
                    found.append(f"{address} op {op!r} is {name} (wants {wants})")
        return found

    def _verdict(self) -> _Verdict:
        problems = self.problems()
        if problems:
            self._last_problems = problems
            return _Verdict(True, False)
        steady = True
        for address in self.addresses:
            entry = self.registry.entry(address)
            if entry is not None and entry["streak"] < self.resume_after_beats:
                steady = False
        return _Verdict(False, steady)

    def _get_justification(self) -> str:
        if not self.tripped:
            return ""
        problems = self.problems() or getattr(self, "_last_problems", [])
        just = "Heartbeat lost: " + "; ".join(problems)
        return ": ".join(s for s in (just, self._tripped_message) if s)

    def __repr__(self) -> str:
        return f"SuspendOnExpired({self.addresses!r}, sleep={self._sleep})"
