"""Start caproto IOCs as subprocesses on 127.0.0.1, a free port each, and stop them again.

Channel Access never leaves the machine: every IOC binds to loopback, sends its beacons to
loopback only, and clients search ``127.0.0.1:<port>`` of each IOC and nothing else (see the
pitfalls P1-P6 in the hardware study). Readiness is a real CA search answered by the IOC, not a
sleep. IOCs die with the process that started them: on a clean exit (``stop``, the context
manager, ``atexit``) and when the parent is killed (``PR_SET_PDEATHSIG``).

Ports come from :mod:`runengine.devices.ports`: reserved, outside the ephemeral range; the
loopback environments from :mod:`runengine.devices.epics_env`; the readiness search from
:mod:`runengine.devices.ca_search`.

    with IOCProcess("runengine.devices.ioc.motors", "sim:") as ioc:
        use_loopback_client(ioc.port)      # before the first PV of this process
        ...
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import errno
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Iterable, Sequence

from .ca_search import ioc_answers
from .epics_env import client_env, server_env, use_loopback_client
from .errors import DeviceError
from .ports import LOOPBACK, bindable, free_port, reserve_port_pair

__all__ = [
    "IOCProcess",
    "IOCStartError",
    "client_env",
    "free_port",
    "server_env",
    "start_all",
    "stop_all",
    "unique_prefix",
    "use_loopback_client",
]

_PR_SET_PDEATHSIG = 1
_START_ATTEMPTS = 3  # ports tried by one start when the launcher chose the port
_ADDRESS_IN_USE = os.strerror(errno.EADDRINUSE)
_running: weakref.WeakSet[IOCProcess] = weakref.WeakSet()
_prefix_counter = itertools.count()
_forker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ioc-launcher")


class IOCStartError(DeviceError, RuntimeError):
    """An IOC process exited, or did not answer a search, before it was ready."""


def unique_prefix(stem: str = "sim") -> str:
    """A PV prefix no other launch on this machine uses: ``<stem><pid>n<k>:``."""
    return f"{stem}{os.getpid()}n{next(_prefix_counter)}:"


def _child_setup() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # P4: a parent that ignores SIGINT
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class IOCProcess:
    """One IOC subprocess: ``python -m <module> --prefix <prefix> ...`` on a port of its own.

    ``ready_pv``: the PV whose search answer means ready (default ``<prefix>HEARTBEAT``, which
    every runengine IOC serves). ``client_ports``: IOCs this one reads over CA.
    ``start`` raises :class:`IOCStartError` with the IOC's own error output if the process
    exits or does not answer within ``timeout``.

    ``port``: by default the launcher chooses and reserves one (see the module's notes). If
    the IOC then cannot bind it, the first start moves the IOC to a fresh port, up to
    ``_START_ATTEMPTS`` ports in all: read ``port`` once it is started. A given port is never
    changed, nor is the port of an IOC that was ready once (``restart`` keeps it).
    """

    def __init__(
        self,
        module: str,
        prefix: str,
        *,
        args: Sequence[str] = (),
        ready_pv: str | None = None,
        client_ports: Iterable[int] = (),
        port: int | None = None,
    ) -> None:
        self.module = module
        self.prefix = prefix
        self.args = list(args)
        self.ready_pv = ready_pv or f"{prefix}HEARTBEAT"
        self.client_ports = list(client_ports)
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._final_output = ""
        self._beacon_sink: socket.socket | None = None
        self._close_sink_on_gc: weakref.finalize | None = None
        self._may_move = not port  # the launcher chose the port and the IOC was never ready
        if port:
            self.port = port
        else:
            self._take_new_port()

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"<IOCProcess {self.module} {self.prefix!r} on {LOOPBACK}:{self.port} {state}>"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def spawn(self) -> IOCProcess:
        """Start the process without waiting; :meth:`wait_ready` waits for it."""
        if self.alive:
            return self
        self._close_log()
        self._open_beacon_sink()
        if self._may_move and not bindable(socket.SOCK_DGRAM, self.port):
            self._take_new_port()  # taken since it was reserved, by something not ours
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the IOC's output
        cmd = [sys.executable, "-m", self.module, "--prefix", self.prefix, "-q"]
        cmd += ["--interfaces", LOOPBACK, *self.args]
        env = {**os.environ, **server_env(self.port, self.client_ports)}
        env.pop("OPHYD_CONTROL_LAYER", None)
        # Forked from one long-lived thread: PR_SET_PDEATHSIG fires when the *thread* that
        # forked exits, so an IOC started from a short-lived thread would die with it.
        self.proc = _forker.submit(
            subprocess.Popen,
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl+C at the terminal goes to the parent, which stops us
            preexec_fn=_child_setup,
        ).result()
        _running.add(self)
        return self

    def wait_ready(self, timeout: float = 20.0) -> IOCProcess:
        """Search ``ready_pv`` every 50 ms until the IOC answers; raise if it dies or times out.

        An IOC that exits because its port is taken is started again on a fresh port when the
        launcher chose that port (see the class notes), each try with its own ``timeout``.
        """
        for attempt in range(1, _START_ATTEMPTS + 1):
            if ioc_answers(self.port, self.ready_pv, timeout, lambda: self.alive):
                self._may_move = False
                return self
            if self.proc is None or self.proc.poll() is not None:
                taken = _ADDRESS_IN_USE in self.output()
                if taken and self._may_move and attempt < _START_ATTEMPTS:
                    self.stop()  # the port is someone else's: leave it to them
                    self._take_new_port()
                    self.spawn()
                    continue
                why = self._failure("exited before it was ready")
                if taken:
                    why += f"\n(port {self.port} was taken; {attempt} port(s) tried)"
            else:
                why = f"did not answer a search for {self.ready_pv!r} in {timeout} s"
                why = self._failure(why)
            self.stop()
            raise IOCStartError(why)
        raise AssertionError("unreachable")  # pragma: no cover

    def start(self, timeout: float = 20.0) -> IOCProcess:
        """Spawn the IOC and wait until it answers Channel Access searches."""
        return self.spawn().wait_ready(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGINT (the IOC's shutdown hooks run), then SIGKILL after ``timeout``; the exit code."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()
        self._release_port()
        _running.discard(self)
        return None if proc is None else proc.returncode

    def kill(self) -> None:
        """Fault injection: SIGKILL, no shutdown hooks; ``restart`` brings it back on its port.

        The port stays reserved until ``stop``.
        """
        if self.alive:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def restart(self, timeout: float = 20.0) -> IOCProcess:
        """Stop (if running) and start again on the same port and prefix.

        Clients reconnect by themselves, after a search back-off of several seconds.
        """
        self.stop()
        return self.start(timeout)

    def output(self) -> str:
        """What the IOC printed (stdout and stderr), so far or until it was stopped."""
        if self._log is None:
            return self._final_output
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __enter__(self) -> IOCProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _failure(self, what: str) -> str:
        code = None if self.proc is None else self.proc.poll()
        tail = "\n".join(self.output().strip().splitlines()[-15:])
        return (
            f"IOC {self.module} (prefix {self.prefix!r}, port {self.port}) {what}"
            + (f" with exit code {code}" if code is not None else "")
            + (f":\n{tail}" if tail else "")
        )

    def _take_new_port(self) -> None:
        """Reserve a fresh port pair and hold its beacon port (:func:`.ports.reserve_port_pair`)."""
        self._release_port()
        self.port, sink = reserve_port_pair()
        self._hold_sink(sink)

    def _hold_sink(self, sink: socket.socket) -> None:
        self._beacon_sink = sink
        self._close_sink_on_gc = weakref.finalize(self, sink.close)

    def _open_beacon_sink(self) -> None:
        # P5: with nothing bound to the beacon port, every beacon gets ICMP-refused and caproto
        # prints tracebacks. A socket here swallows them (and reserves the port pair).
        if self._beacon_sink is None:
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with contextlib.suppress(OSError):
                sink.bind((LOOPBACK, self.port + 1))
                sink.setblocking(False)
                self._hold_sink(sink)
                return
            sink.close()

    def _release_port(self) -> None:
        if self._close_sink_on_gc is not None:
            self._close_sink_on_gc()  # closes the sink, once
            self._close_sink_on_gc = None
        self._beacon_sink = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._final_output = self.output()
            self._log.close()
            self._log = None


def start_all(iocs: Sequence[IOCProcess], timeout: float = 20.0) -> None:
    """Spawn every IOC at once, then wait for each; on any failure stop them all and raise.

    An IOC moved to a fresh port while starting (its port was taken) is followed: the IOCs
    that read it over CA (``client_ports``) are restarted with its new port.
    """
    chosen = [ioc.port for ioc in iocs]  # the ports given to client_ports before the start
    try:
        for ioc in iocs:
            ioc.spawn()
        for ioc in iocs:
            ioc.wait_ready(timeout)
        moved = {old: ioc.port for old, ioc in zip(chosen, iocs, strict=True) if old != ioc.port}
        for ioc in iocs:
            if moved.keys() & set(ioc.client_ports):
                ioc.client_ports = [moved.get(p, p) for p in ioc.client_ports]
                ioc.restart(timeout)
    except BaseException:
        stop_all(iocs)
        raise


def stop_all(iocs: Iterable[IOCProcess] | None = None) -> None:
    """Stop these IOCs, or every IOC this process started and has not stopped."""
    for ioc in list(_running if iocs is None else iocs):
        ioc.stop()


atexit.register(stop_all)
