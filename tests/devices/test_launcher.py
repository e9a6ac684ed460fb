"""The IOC launcher: loopback only, ready without sleeps, clear failures, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from runengine.devices.launcher import (
    IOCProcess,
    IOCStartError,
    client_env,
    free_port,
    server_env,
    unique_prefix,
)
from tests.devices.procs import bound_addresses, ioc_children, is_running, port_is_free

pytestmark = pytest.mark.integration
SIMPLE = "caproto.ioc_examples.simple"  # PVs <prefix>A, <prefix>B, <prefix>C


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_environment_keeps_every_address_on_loopback():
    port = free_port()
    env = server_env(port, client_ports=[port + 7])
    assert env["EPICS_CAS_INTF_ADDR_LIST"] == "127.0.0.1"
    assert env["EPICS_CAS_AUTO_BEACON_ADDR_LIST"] == "NO"
    assert env["EPICS_CAS_BEACON_ADDR_LIST"] == "127.0.0.1"
    assert env["EPICS_CA_AUTO_ADDR_LIST"] == "NO"
    assert env["EPICS_CA_ADDR_LIST"] == f"127.0.0.1:{port} 127.0.0.1:{port + 7}"
    assert client_env([port])["EPICS_CA_ADDR_LIST"] == f"127.0.0.1:{port}"
    with pytest.raises(ValueError, match="at least one"):
        client_env([])


def test_prefixes_are_unique_per_launch():
    assert len({unique_prefix() for _ in range(50)}) == 50


def test_an_ioc_serves_on_loopback_only_and_stops_cleanly():
    prefix = unique_prefix("t")
    ioc = IOCProcess(SIMPLE, prefix, ready_pv=f"{prefix}A").start()
    try:
        addresses = bound_addresses(ioc.pid)
        assert ("udp", "127.0.0.1", ioc.port) in addresses
        assert ("tcp", "127.0.0.1", ioc.port) in addresses
        assert all(ip == "127.0.0.1" for _, ip, _ in addresses), addresses
        assert ioc.pid in ioc_children()
    finally:
        assert ioc.stop() == 0  # SIGINT, shutdown hooks ran, exit code 0
    assert not is_running(ioc.pid)
    assert wait_until(lambda: port_is_free(ioc.port))


def test_a_missing_module_fails_with_the_ioc_own_error():
    ioc = IOCProcess("runengine.devices.ioc.no_such_ioc", unique_prefix("t"))
    with pytest.raises(IOCStartError, match=r"(?s)no_such_ioc.*exited.*No module named"):
        ioc.start()


def test_an_ioc_that_never_answers_fails_within_the_timeout_naming_the_pv():
    prefix = unique_prefix("t")
    ioc = IOCProcess(SIMPLE, prefix, ready_pv=f"{prefix}NOT_SERVED")
    with pytest.raises(IOCStartError, match=rf"{prefix}NOT_SERVED.*in 2 s"):
        ioc.start(timeout=2)
    assert not ioc.alive  # stopped, not left behind


def test_kill_and_restart_on_the_same_port():
    prefix = unique_prefix("t")
    ioc = IOCProcess(SIMPLE, prefix, ready_pv=f"{prefix}A").start()
    port, first = ioc.port, ioc.pid
    ioc.kill()
    assert not ioc.alive
    ioc.restart()
    try:
        assert ioc.alive and ioc.port == port and ioc.pid != first
    finally:
        ioc.stop()


CHILD = textwrap.dedent(
    """
    import sys, time
    from runengine.devices.launcher import IOCProcess, unique_prefix
    prefix = unique_prefix("c")
    with IOCProcess("caproto.ioc_examples.simple", prefix, ready_pv=prefix + "A") as ioc:
        print(ioc.pid, flush=True)
        time.sleep(60)
    """
)


def _child_with_ioc():
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    line = child.stdout.readline()
    assert line.strip().isdigit(), f"the child printed {line!r}"
    return child, int(line)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_the_ioc_dies_with_its_parent(how):
    """kill -9, a plain kill and Ctrl+C of the process that started an IOC: no orphan."""
    child, ioc_pid = _child_with_ioc()
    assert is_running(ioc_pid)
    os.kill(child.pid, how)
    child.wait(10)
    child.stdout.close()
    assert wait_until(lambda: not is_running(ioc_pid)), f"IOC {ioc_pid} outlived its parent"


def test_two_processes_with_their_own_iocs_do_not_interfere(tmp_path):
    """The same PV names in two processes at once: each client reaches its own IOC only."""
    script = textwrap.dedent(
        """
        import sys
        from runengine.devices.launcher import IOCProcess, use_loopback_client
        value = float(sys.argv[1])
        with IOCProcess("caproto.ioc_examples.simple", "same:", ready_pv="same:A") as ioc:
            use_loopback_client(ioc.port)
            from ophyd import EpicsSignal
            b = EpicsSignal("same:B", name="b")
            b.wait_for_connection(timeout=10)
            seen = []
            for _ in range(20):
                b.put(value, wait=True)
                seen.append(b.get(use_monitor=False))
            print(sorted(set(seen)))
        """
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(v)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (1.5, 2.5)
    ]
    results = [run.communicate(timeout=60) for run in runs]
    errors = [err.strip().splitlines()[-5:] for _, err in results]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert [out.strip() for out, _ in results] == ["[1.5]", "[2.5]"], errors


def test_an_ioc_started_from_a_thread_that_ends_keeps_running():
    """The parent-death signal follows the forking thread: IOCs are forked from one that stays."""
    import threading

    prefix = unique_prefix("t")
    ioc = IOCProcess(SIMPLE, prefix, ready_pv=f"{prefix}A")
    starter = threading.Thread(target=ioc.start)
    starter.start()
    starter.join()
    try:
        time.sleep(0.5)  # a SIGTERM sent at the thread's end would have landed by now
        assert ioc.alive
    finally:
        ioc.stop()
