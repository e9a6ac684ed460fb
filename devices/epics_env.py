"""The EPICS environment that keeps Channel Access on loopback, for IOCs and their clients.

Every IOC binds to 127.0.0.1, sends its beacons there only, and each client searches
``127.0.0.1:<port>`` of the IOCs it reads and nothing else: no broadcast, no auto address
list (see the pitfalls P1-P6 in the hardware study). A client set up so reaches only the IOCs
of this machine that it was told about.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from .ports import LOOPBACK

__all__ = ["client_env", "server_env", "use_loopback_client"]


def server_env(port: int, client_ports: Iterable[int] = ()) -> dict[str, str]:
    """The EPICS environment of an IOC on ``port`` that serves, beacons and searches on loopback.

    ``client_ports``: other IOCs this one reads as a CA client (a detector reading a motor).
    """
    ports = [port, *client_ports]
    return {
        "EPICS_CA_SERVER_PORT": str(port),
        "EPICS_CAS_INTF_ADDR_LIST": LOOPBACK,
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_CAS_BEACON_ADDR_LIST": LOOPBACK,  # both beacon variables, or it broadcasts
        "EPICS_CAS_BEACON_PORT": str(port + 1),
        "EPICS_CA_ADDR_LIST": " ".join(f"{LOOPBACK}:{p}" for p in ports),
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_REPEATER_PORT": str(port + 1),
    }


def client_env(ports: Sequence[int]) -> dict[str, str]:
    """The EPICS environment of a client that searches exactly these IOC ports on loopback."""
    if not ports:
        raise ValueError("client_env needs at least one IOC port")
    return {
        "EPICS_CA_ADDR_LIST": " ".join(f"{LOOPBACK}:{p}" for p in ports),
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_SERVER_PORT": str(ports[0]),
        "EPICS_CA_REPEATER_PORT": str(ports[0] + 1),
        "OPHYD_CONTROL_LAYER": "caproto",
    }


def use_loopback_client(*ports: int) -> None:
    """Make this process's CA client (ophyd over caproto) search these IOC ports too.

    The caproto client re-reads ``EPICS_CA_ADDR_LIST`` at each search, so ports can be added
    while devices of earlier IOCs stay connected. Ports already listed are kept.
    """
    known = [
        int(entry.rsplit(":", 1)[1])
        for entry in os.environ.get("EPICS_CA_ADDR_LIST", "").split()
        if entry.startswith(f"{LOOPBACK}:")
    ]
    merged = known + [p for p in ports if p not in known]
    os.environ.update(client_env(merged))
    import ophyd

    if ophyd.cl.name != "caproto":
        ophyd.set_cl("caproto")
