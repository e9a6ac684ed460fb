"""Whether an IOC is ready: a Channel Access search sent to its port, answered from that port.

A real search, not a sleep: the IOC is ready once it answers a search for one of its PVs. Only
a reply from ``127.0.0.1:<port>`` that parses as a search response counts.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import caproto

from .ports import LOOPBACK

__all__ = ["ioc_answers", "search_now"]

_BROADCASTER = caproto.Broadcaster(caproto.CLIENT)  # parses the IOCs' search replies


def ioc_answers(port: int, pv: str, timeout: float, alive: Callable[[], bool]) -> bool:
    """True once the IOC on ``port`` answers a search for ``pv``, searching every 50 ms; False
    as soon as ``alive()`` is False (the IOC exited) or after ``timeout`` seconds.

    Only a datagram from ``127.0.0.1:<port>``, and not from the search socket itself,
    counts: a search socket on the IOC's port would read its own request, which parses as a
    search reply (and keep the IOC from binding the port).
    """
    deadline = time.monotonic() + timeout
    with _search_socket(avoid=port) as sock:
        sock.settimeout(0.05)
        request = _search_datagram(pv)
        ioc, ours = (LOOPBACK, port), sock.getsockname()
        while True:
            if not alive():
                return False
            sock.sendto(request, ioc)
            with contextlib.suppress(TimeoutError, ConnectionRefusedError):
                datagram, sender = sock.recvfrom(65536)
                if sender == ioc != ours and _answers(datagram):
                    return True
            if time.monotonic() > deadline:
                return False


def _search_socket(avoid: int) -> socket.socket:
    """A UDP socket on 127.0.0.1 and a kernel-chosen port other than ``avoid``.

    Holding ``avoid`` would keep the IOC from binding it. (IOC ports lie outside the
    ephemeral range, so this matters only where every port is ephemeral.)
    """
    held = []
    try:
        for _ in range(10):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((LOOPBACK, 0))
            if sock.getsockname()[1] != avoid:
                return sock
            held.append(sock)  # kept open until the next bind, so that it gets another port
        raise RuntimeError(f"the kernel kept handing out port {avoid}")
    finally:
        for sock in held:
            sock.close()


def _search_datagram(pv: str) -> bytes:
    version = caproto.VersionRequest(0, caproto.DEFAULT_PROTOCOL_VERSION)
    search = caproto.SearchRequest(pv, 1, caproto.DEFAULT_PROTOCOL_VERSION)
    return b"".join(bytes(command) for command in (version, search))


def _answers(datagram: bytes) -> bool:
    # public sans-I/O parsing (sync.client.search reads the whole EPICS_CA_ADDR_LIST instead)
    commands = _BROADCASTER.recv(datagram, (LOOPBACK, 0))
    return any(isinstance(c, caproto.SearchResponse) for c in commands)


def search_now() -> None:
    """Make ophyd's Channel Access client re-send its unanswered searches now.

    caproto backs its searches off to one every 5 s; a restarted IOC is found at the next
    one. This asks the client's shared broadcaster for an immediate round (its public
    ``search_now``), which also restarts the back-off from its shortest interval. A no-op
    unless ophyd's control layer is caproto.
    """
    import ophyd

    if getattr(ophyd.cl, "name", None) != "caproto":
        return
    from caproto.threading.pyepics_compat import PV

    PV.default_context().broadcaster.search_now()
