"""Ports for IOCs on 127.0.0.1 that nothing else on the machine can take.

caproto binds its UDP sockets with ``SO_REUSEADDR``/``SO_REUSEPORT``, the IOC's search
socket as well as every client's broadcaster, which binds port 0. Linux lets such a socket
share a port with another one of its kind without an error. A client socket handed the port
of an IOC gets no search reply any more (the IOC's socket, bound to the more specific address,
takes them), and two IOCs on one port share its searches. So the launcher gives each IOC an
even port ``P`` *outside* the kernel's ephemeral range, where nothing bound to port 0 can
land, and reserves the pair ``P``, ``P + 1`` with a plain socket on the beacon port ``P + 1``
for as long as the launcher's ``IOCProcess`` has that port: another launcher, in this process or any
other, cannot take the pair. An IOC that still finds its port taken (by something that does
not use this module) is moved to a fresh port, a few times at most.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOOPBACK", "bindable", "free_port", "reserve_port_pair"]

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """An even port free on 127.0.0.1 for UDP and TCP, with the next one free for the beacons.

    Both lie outside the kernel's ephemeral range when there is room, so nothing that binds
    port 0 can take them before the IOC binds them. :class:`IOCProcess` keeps the pair
    reserved while it has it; this function releases it at once.
    """
    port, sink = reserve_port_pair()
    sink.close()
    return port


_PAIR_TRIES = 200  # candidate pairs probed by one reservation
_random = random.SystemRandom()  # not the seeded or forked state of the ``random`` module


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to sockets bound to port 0."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 32768, 65535  # Linux's default start, and the IANA dynamic range's end
    return low, high


def _port_blocks() -> list[range]:
    """Even ports ``P`` for IOCs: ``P + 1`` (beacons) and ``P`` both outside the ephemeral range."""
    low, high = _ephemeral_range()
    above = high + 1 + (high + 1) % 2
    below = max(1024, low - 8192)
    blocks = [range(above, 65534, 2), range(below + below % 2, low - 1, 2)]
    blocks = [block for block in blocks if len(block)]
    if sum(map(len, blocks)) < 256:  # (nearly) every port is ephemeral: use them all
        blocks = [range(1024, 65534, 2)]
    return blocks


def _candidate_ports() -> Iterator[int]:
    """Random even ports from :func:`_port_blocks`, at most ``_PAIR_TRIES`` of them."""
    blocks = _port_blocks()
    weights = [len(block) for block in blocks]
    for _ in range(_PAIR_TRIES):
        yield _random.choice(_random.choices(blocks, weights)[0])


def _ports_searched_here() -> set[int]:
    """Ports in this process's ``EPICS_CA_ADDR_LIST``: clients here (and in children that
    inherit the list) search them, so a new IOC there could answer someone else's search."""
    ports = set()
    for entry in os.environ.get("EPICS_CA_ADDR_LIST", "").split():
        with contextlib.suppress(ValueError, IndexError):
            ports.add(int(entry.rsplit(":", 1)[1]))
    return ports


def bindable(kind: socket.SocketKind, port: int) -> bool:
    """Whether a plain socket (no ``SO_REUSEADDR``) can bind ``127.0.0.1:port`` right now.

    A plain socket conflicts with every other socket on the port, reusing or not."""
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def reserve_port_pair() -> tuple[int, socket.socket]:
    """An even port ``P`` free for UDP and TCP, and a socket bound to ``P + 1`` that holds it.

    Binding ``P + 1`` is the reservation: it succeeds for one launcher only, and every
    launcher's pair is ``(even, odd)``, so two pairs never overlap. ``P`` is checked after it.
    """
    searched = _ports_searched_here()
    for port in _candidate_ports():
        if port in searched or port + 1 in searched:
            continue
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sink.bind((LOOPBACK, port + 1))
        except OSError:
            sink.close()
            continue
        if bindable(socket.SOCK_DGRAM, port) and bindable(socket.SOCK_STREAM, port):
            sink.setblocking(False)
            return port, sink
        sink.close()
    raise RuntimeError(f"no free port pair on {LOOPBACK} after {_PAIR_TRIES} tries")
