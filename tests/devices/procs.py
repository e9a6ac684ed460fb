"""What the launcher tests need to see of processes and sockets, read from /proc."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _live_where(field: int, value: int) -> list[int]:
    """Live (not zombie) processes whose /proc stat field (after the name) equals ``value``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    return _live_where(1, pid)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    return _live_where(2, pgid)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def ioc_children(pid: int | None = None) -> list[int]:
    """IOC processes (``-m ...ioc...``) started by ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return [child for child in children_of(pid) if ".ioc" in cmdline(child)]


def bound_addresses(pid: int) -> list[tuple[str, str, int]]:
    """``(proto, ip, port)`` of every inet socket the process holds (local side)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for proto in ("tcp", "udp", "tcp6", "udp6"):
        lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                ip_hex, port_hex = fields[1].split(":")
                found.append((proto, _ip(ip_hex), int(port_hex, 16)))
    return found


def _ip(hex_ip: str) -> str:
    if len(hex_ip) == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_ip)[::-1])
    return hex_ip  # v6: shown raw, and never expected


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
