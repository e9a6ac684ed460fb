"""Pieces every simulated IOC shares: heartbeat, uptime, fault PVs and the command line.

PVs served by every IOC (``PFX`` is ``--prefix``):

``PFX HEARTBEAT``        int, +1 every second (a liveness signal for agents and suspenders)
``PFX UPTIME``           float, seconds since the IOC started (updated every second)
``PFX FAULT:FREEZE_HB``  int, fault: non-zero stops the heartbeat (UPTIME keeps counting)
``PFX FAULT:FAIL_PUTS``  int, fault: non-zero makes every put to an action PV (motor VAL,
                         Acquire, a setpoint, the shutter) raise in its putter, so the client
                         sees a rejected put (ECA_PUTFAIL, which ophyd reports as a timeout)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence

from caproto.asyncio.server import Context
from caproto.server import PVGroup, pvproperty, template_arg_parser
from caproto.server import common as server_common

from ..errors import DeviceError

HEARTBEAT_PERIOD = 1.0
HIGH_LOAD_TIMEOUT = 0.001  # see serve()


class InjectedFault(DeviceError, RuntimeError):
    """Raised by a putter while ``FAULT:FAIL_PUTS`` is set."""


class SimIOC(PVGroup):
    """Base of every simulated IOC: ``HEARTBEAT``, ``UPTIME`` and the common fault PVs."""

    heartbeat = pvproperty(value=0, name="HEARTBEAT", read_only=True, doc="+1 per second")
    uptime = pvproperty(
        value=0.0, name="UPTIME", read_only=True, precision=1, units="s", doc="since start"
    )
    freeze_hb = pvproperty(value=0, name="FAULT:FREEZE_HB", doc="fault: stop the heartbeat")
    fail_puts = pvproperty(value=0, name="FAULT:FAIL_PUTS", doc="fault: action puts raise")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.started = time.monotonic()

    def check_put(self, what: str) -> None:
        """Raise :class:`InjectedFault` if puts are made to fail (call first in a putter)."""
        if self.fail_puts.value:
            raise InjectedFault(f"{self.prefix}FAULT:FAIL_PUTS is set: put to {what} refused")

    @heartbeat.startup
    async def heartbeat(self, instance, async_lib) -> None:
        sleep = async_lib.library.sleep
        tick = 0
        while True:
            tick += 1
            # a fixed schedule: the count does not drift with the loop's own latency
            await sleep(max(0.0, self.started + tick * HEARTBEAT_PERIOD - time.monotonic()))
            await self.uptime.write(round(time.monotonic() - self.started, 3))
            if not self.freeze_hb.value:
                await instance.write(instance.value + 1)

    @uptime.getter
    async def uptime(self, instance) -> float:
        return round(time.monotonic() - self.started, 3)


class NoDelayContext(Context):
    """caproto's asyncio server with ``TCP_NODELAY`` on every client connection.

    caproto's server leaves Nagle's algorithm on: a small monitor update sent while the
    previous one is unacknowledged waits for the client's delayed ACK, about 40 ms on Linux
    (measured: a motor's DMOV 1 reached ophyd 45 ms after the IOC wrote it, 1.5 ms with this).
    """

    async def tcp_handler(self, client, addr):
        sock = client.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return await super().tcp_handler(client, addr)


class QuietBeacons(logging.Filter):
    """Turn caproto's 'Failed to send beacon' tracebacks into one line, once.

    Our IOCs beacon to a loopback port where a CA repeater may or may not listen; with none,
    every beacon fails with ``ConnectionRefusedError`` and caproto logs a full traceback each
    time. Nothing is wrong: clients find the IOC by searching. Other errors pass unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self.told = False

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        refused = isinstance(exc, ConnectionRefusedError) or isinstance(
            getattr(exc, "__cause__", None), ConnectionRefusedError
        )  # caproto wraps it in a CaprotoNetworkError
        if not (refused and str(record.msg).startswith("Failed to send beacon")):
            return True
        if self.told:
            return False
        self.told = True
        record.msg = "No beacon listener on %r (no CA repeater); clients find the IOC by search"
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info = record.exc_text = None
        return True


def serve(pvdb: dict, interfaces: list[str] | None = None, log_pv_names: bool = False) -> None:
    """Serve ``pvdb`` until SIGINT (shutdown hooks run, exit code 0).

    Monitor updates go out within about a millisecond: caproto's server batches updates that
    follow each other within ``CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC`` (default 10 ms) and then
    holds them up to 10-20 ms, which a motor's DMOV/MOVN/RBV sequence always triggers. Our
    default is 1 ms; the environment variable still wins.
    """
    if "CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC" not in os.environ:
        server_common.HIGH_LOAD_TIMEOUT = HIGH_LOAD_TIMEOUT
    logging.getLogger("caproto.ctx").addFilter(QuietBeacons())  # this IOC process only

    async def _serve() -> None:  # the context must be made inside the running loop
        await NoDelayContext(pvdb, interfaces).run(log_pv_names=log_pv_names)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())


def main(
    group_cls: type[PVGroup],
    *,
    default_prefix: str,
    argv: Sequence[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse caproto's IOC options (plus ``add_arguments``'), build ``group_cls``, serve it.

    Extra options are passed to ``group_cls`` as keyword arguments (dashes become underscores).
    """
    parser, split_args = template_arg_parser(
        desc=(group_cls.__doc__ or group_cls.__name__).strip().splitlines()[0],
        default_prefix=default_prefix,
        argv=argv,
        supported_async_libs=["asyncio"],
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    ioc_options, run_options = split_args(args)
    standard = {"prefix", "quiet", "verbose", "list_pvs", "async_lib", "interfaces"}
    extra = {k: v for k, v in vars(args).items() if k not in standard}
    ioc = group_cls(prefix=ioc_options["prefix"], **extra)
    serve(ioc.pvdb, run_options["interfaces"], run_options["log_pv_names"])
