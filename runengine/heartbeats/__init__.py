"""A registry of agents by heartbeat, in the OCS Registry's layout, with its quirks fixed.

    reg = Registry(timeout=5.0, check_period=1.0)
    with reg:                                   # the checker runs inside the block
        reg.beat("ioc.motor1", op_codes={"acq": OpCode.RUNNING}, agent_class="MotorIOC")
        RE.install_suspender(SuspendOnExpired(reg, ["ioc.motor1"], sleep=2.0))
        beat = RegistryBeat(RE, reg, address="re.main").start()   # the engine beats too

- :class:`Registry` (:mod:`.local`): the agents of this process, by address.
- :class:`RegistryBeat` (:mod:`.beat`): a RunEngine's state as a heartbeat.
- :class:`SuspendOnExpired` (:mod:`runengine.suspenders.expired`): plans suspend while agents
  are silent.
- The Redis registry shared between processes is :class:`runengine.scaleout.RedisRegistry`.
"""

from __future__ import annotations

from typing import Any

from .beat import RegistryBeat, opcode_of_state
from .local import Entry, OpCode, Registry, addresses_of, describe_change

__all__ = [
    "Entry",
    "OpCode",
    "Registry",
    "RegistryBeat",
    "SuspendOnExpired",
    "addresses_of",
    "describe_change",
    "opcode_of_state",
]


def __getattr__(name: str) -> Any:
    # The suspender lives with the others and imports this package: load it on first use.
    if name == "SuspendOnExpired":
        from ..suspenders.expired import SuspendOnExpired

        return SuspendOnExpired
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
