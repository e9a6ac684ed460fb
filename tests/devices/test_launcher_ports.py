"""IOC ports: out of reach of port-0 binds, reserved per launch, moved when taken anyway.

caproto binds UDP with ``SO_REUSEADDR``/``SO_REUSEPORT``, on the IOC and in every client, so
Linux lets a client's port-0 socket share an IOC's port without an error: the IOC then takes the
client's search replies and the client never connects. These tests pin the launcher's defences.
"""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import pytest

from runengine.devices import ca_search, launcher, ports
from runengine.devices.launcher import (
    IOCProcess,
    IOCStartError,
    free_port,
    start_all,
    unique_prefix,
)

pytestmark = pytest.mark.integration
SIMPLE = "caproto.ioc_examples.simple"  # PVs <prefix>A, <prefix>B, <prefix>C


def plain_udp(port: int) -> socket.socket:
    """A socket without SO_REUSEADDR on 127.0.0.1:port: nothing else can bind the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    return sock


def pass_the_last_check(monkeypatch, port: int) -> None:
    """The launcher's check just before the spawn finds ``port`` free, whatever holds it."""
    check = launcher.bindable
    monkeypatch.setattr(launcher, "bindable", lambda kind, p: p == port or check(kind, p))


def simple(**kwargs) -> IOCProcess:
    prefix = unique_prefix("p")
    return IOCProcess(SIMPLE, prefix, ready_pv=f"{prefix}A", **kwargs)


def test_ioc_ports_are_even_and_outside_the_ephemeral_range():
    """Where a port-0 bind (a caproto client's broadcaster, say) can never land."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except OSError:
        pytest.skip("no /proc/sys/net/ipv4/ip_local_port_range")
    blocks = ports._port_blocks()
    if blocks == [range(1024, 65534, 2)]:
        pytest.skip(f"(nearly) every port is ephemeral here ({low}-{high})")
    for _ in range(50):
        port = free_port()
        assert port % 2 == 0
        assert not (low <= port <= high) and not (low <= port + 1 <= high), (port, low, high)


def test_a_reserved_pair_is_not_handed_out_again(monkeypatch):
    """Two launches that draw the same port: the second one gets another (the beacon port of
    the first is held); once the first IOC is stopped, its pair is free again."""
    first, other = free_port(), free_port()
    assert first != other
    draws = itertools.chain([first, first, first, other], itertools.repeat(first))
    monkeypatch.setattr(ports, "_candidate_ports", lambda: draws)
    ioc = simple()
    try:
        assert ioc.port == first
        assert free_port() == other  # `first` was drawn three times and skipped
    finally:
        ioc.stop()
    assert free_port() == first


def test_a_port_taken_before_the_spawn_is_replaced_before_the_spawn():
    ioc = simple()
    taken = ioc.port
    with plain_udp(taken):
        ioc.start()
        try:
            assert ioc.port != taken and ioc.alive
        finally:
            ioc.stop()


def test_an_ioc_that_cannot_bind_its_port_is_started_again_on_a_fresh_one(monkeypatch):
    """The port is taken between the launcher's last check and the IOC's bind."""
    ioc = simple()
    taken = ioc.port
    pass_the_last_check(monkeypatch, taken)
    with plain_udp(taken):  # the IOC's bind fails with "Address already in use"
        ioc.start()
        try:
            assert ioc.port != taken and ioc.alive
            assert free_port() != ioc.port
        finally:
            ioc.stop()


def test_a_given_port_that_is_taken_fails_clearly_and_is_kept():
    port = free_port()
    ioc = simple(port=port)
    with plain_udp(port), pytest.raises(IOCStartError, match=rf"(?s)in use.*port {port} was taken"):
        ioc.start()
    assert ioc.port == port and not ioc.alive


def test_the_ready_check_does_not_take_its_own_request_for_an_answer(monkeypatch):
    """A search socket that the kernel put on the IOC's port reads back its own request, which
    parses as a search reply: that is not the IOC answering (it cannot even bind its port)."""
    port = free_port()
    monkeypatch.setattr(ca_search, "_search_socket", lambda avoid: plain_udp(avoid))
    ioc = simple(port=port)
    with pytest.raises(IOCStartError, match="exited before it was ready"):
        ioc.start()


def test_start_all_follows_an_ioc_moved_to_a_fresh_port(monkeypatch):
    """An IOC reading another one over CA is restarted with the other's new port."""
    source = simple()
    reader = simple(client_ports=[source.port])
    taken = source.port
    pass_the_last_check(monkeypatch, taken)
    with plain_udp(taken):
        start_all([source, reader])
    try:
        assert source.port != taken
        assert reader.client_ports == [source.port]
        with open(f"/proc/{reader.pid}/environ", "rb") as f:
            environ = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        assert environ[b"EPICS_CA_ADDR_LIST"].split()[1] == f"127.0.0.1:{source.port}".encode()
    finally:
        launcher.stop_all([source, reader])
