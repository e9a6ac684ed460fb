"""The supervisor of one script run: a child subreaper that ends everything the script started.

This file is a program, not a module the engine imports: :mod:`runengine.scripts.supervisor`
runs it as ``python -I -S subreaper.py CONFIG`` (standard library only, so it starts in a few
tens of milliseconds) in a session of its own, with the run's output pipes as fd 1 and 2 and one
end of a Unix socket pair as fd 0. ``CONFIG`` is JSON: ``{"argv": [...], "sequence": [[signal,
grace], ...], "parent": engine_pid}``.

It makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): every process the
script starts, at any depth, stays its descendant whatever session or process group it moves to
(``start_new_session=True``, ``setsid()``, a double fork), because an orphan is re-parented to
its nearest subreaper ancestor instead of init. It asks for SIGTERM when the engine thread that
started it dies (``PR_SET_PDEATHSIG``), starts the script in a new session with stdin on
/dev/null, and reaps every child it is given, so none stays a zombie.

Protocol on fd 0, one JSON object per line. It sends ``spawned`` {pid, subreaper} (or
``spawn_failed`` {errno, strerror, filename}), ``exited`` {pid, returncode} once the script is
reaped, ``signal`` {signal, pids, why} at each step of an ending and ``ended`` {id, found,
survivors}. It obeys ``end`` {id, sequence, why}: each (signal, grace) step goes to every live
descendant, and the next step comes only if one outlives the grace; in the last step (whose
grace is at least 1 s) the descendants found meanwhile get the signal too, until none is left
or the grace is over; then it reaps until no descendant, zombie or not, is left (bounded). End
of file on fd 0 (the engine closed it, or died), SIGTERM or SIGINT end every descendant with
the run's sequence, then it exits: 0 if nothing survived, 1 otherwise.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_FIRST_POLL, _LONGEST_POLL = 0.005, 0.1  # seconds between looks at the process table
_SETTLE = 1.0  # least grace of the last step; how long zombies may take to be reaped
_SEND_TIMEOUT = 5.0
_GONE = (b"Z", b"X")  # zombie or dead: /proc state letters of a process that is not alive


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        zero = ctypes.c_ulong(0)
        return libc.prctl(option, ctypes.c_ulong(value), zero, zero, zero) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def proc_stats() -> Iterator[tuple[int, list[bytes]]]:
    """``(pid, fields)`` of every process in /proc: its stat fields after the command name
    (``fields[0]`` the state, ``[1]`` the parent, ``[2]`` the process group)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        yield int(entry), stat[stat.rfind(b")") + 2 :].split()


def descendants(root: int) -> dict[int, bytes]:
    """``{pid: state}`` of every process below ``root`` (zombies included), from /proc."""
    children: defaultdict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for pid, fields in proc_stats():
        children[int(fields[1])].append((pid, fields[0]))
    found: dict[int, bytes] = {}
    todo = [root]
    while todo:
        for pid, state in children.get(todo.pop(), ()):
            if pid not in found:
                found[pid] = state
                todo.append(pid)
    return found


class Subreaper:
    """The supervisor's state: the script, the control socket, the signals received."""

    def __init__(self, config: dict, control: socket.socket) -> None:
        self.argv = [str(arg) for arg in config["argv"]]
        self.sequence = [(int(sig), float(grace)) for sig, grace in config["sequence"]]
        self.parent = int(config["parent"])
        self.control = control
        self.control.settimeout(_SEND_TIMEOUT)
        self.readable = True
        self.writable = True
        self.inbox = b""
        self.commands: list[dict] = []
        self.orphaned = False  # the engine is gone (or asked, by closing fd 0): end everything
        self.script: subprocess.Popen | None = None
        self.subreaper = False
        self.proc_fs = os.path.isdir("/proc/self")
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so it wakes select()
        # Handled, not ignored: exec resets them to the default in the script, even when the
        # engine was started with SIGINT ignored (`cmd &`, nohup, some CI runners), so the
        # abort's SIGINT reaches it.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._orphan)

    def _orphan(self, *_: object) -> None:
        self.orphaned = True

    # ---- the engine ------------------------------------------------------------------------
    def send(self, kind: str, **fields: object) -> None:
        if not self.writable:
            return
        try:
            self.control.sendall(json.dumps({"type": kind, **fields}).encode() + b"\n")
        except OSError:  # the engine is gone or stuck: go on without it
            self.writable = False

    def read(self) -> None:
        try:
            data = self.control.recv(65536)
        except (BlockingIOError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            self.readable = False
            self.orphaned = True
            return
        self.inbox += data
        *lines, self.inbox = self.inbox.split(b"\n")
        for line in lines:
            try:
                command = json.loads(line)
            except ValueError:
                continue
            if isinstance(command, dict):
                self.commands.append(command)

    def wait(self, timeout: float | None) -> None:
        """Until a signal (a child's exit), a command or ``timeout``; reads what came."""
        control = self.control.fileno()
        watched = [self.wake_r, control] if self.readable else [self.wake_r]
        poller = select.poll()  # select.select refuses fds past 1023
        for fd in watched:
            poller.register(fd, select.POLLIN)
        try:
            events = poller.poll(None if timeout is None else timeout * 1000)
        except InterruptedError:
            return
        ready = [fd for fd, _ in events]
        if self.wake_r in ready:
            try:
                while os.read(self.wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if control in ready and self.readable:
            self.read()

    # ---- the processes ---------------------------------------------------------------------
    def spawn(self) -> bool:
        try:
            self.script = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True
            )
        except OSError as err:
            self.send("spawn_failed", errno=err.errno, strerror=err.strerror, filename=err.filename)
            return False
        return True

    def reap(self) -> bool:
        """Collect every child that has exited, report the script's exit; True if no child
        is left at all. Being a subreaper, that means no descendant is left: a live one has
        a live ancestor among our children (the kernel's answer, not a racy /proc scan)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return False
            script = self.script
            if script is not None and pid == script.pid and script.returncode is None:
                script.returncode = os.waitstatus_to_exitcode(status)
                self.send("exited", pid=pid, returncode=script.returncode)

    def empty(self) -> bool:
        """Nothing of the run is left, alive or zombie (after reaping what exited)."""
        childless = self.reap()
        if self.subreaper or self.script is None:
            return childless
        try:  # no subreaper: the script's process group is all we can see
            os.killpg(self.script.pid, 0)
        except (ProcessLookupError, PermissionError):
            return childless
        return False

    def targets(self) -> list[int]:
        """The live descendants; looks again if a scan raced a fork (seen none, yet not empty)."""
        for _ in range(3):
            live = self.live()
            if live or self.empty():
                return live
        return live

    def live(self) -> list[int]:
        """Live descendants (the script's process group where there is no /proc)."""
        if self.proc_fs:
            return sorted(pid for pid, st in descendants(os.getpid()).items() if st not in _GONE)
        if self.script is None:
            return []
        try:
            os.killpg(self.script.pid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [self.script.pid]

    def kill(self, pids: list[int], sig: int, why: str) -> None:
        if not pids:
            return
        self.send("signal", signal=sig, pids=pids, why=why)
        if not self.proc_fs and self.script is not None:
            pids, sender = [self.script.pid], os.killpg
        else:
            sender = os.kill
        for pid in pids:
            try:
                sender(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def end(self, sequence: list[tuple[int, float]], why: str) -> tuple[int, list[int]]:
        """Run ``sequence`` on every descendant; (how many were alive, who survived)."""
        self.reap()
        found = len(self.targets())
        for step, (sig, grace) in enumerate(sequence):
            if self.empty():
                break
            last = step == len(sequence) - 1
            live = self.targets()
            self.kill(live, sig, why)
            signalled = set(live)
            deadline = time.monotonic() + (max(grace, _SETTLE) if last else grace)
            pause = _FIRST_POLL
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.wait(min(pause, left))
                pause = min(pause * 1.5, _LONGEST_POLL)
                if self.empty():
                    break
                if last:  # started meanwhile: nothing comes after this step
                    late = [pid for pid in self.live() if pid not in signalled]
                    self.kill(late, sig, why)
                    signalled.update(late)
        return found, self.settle()

    def settle(self) -> list[int]:
        """Wait (bounded) until nothing is left, zombies reaped; the live survivors if any."""
        deadline = time.monotonic() + _SETTLE
        while not self.empty():
            live = self.live()
            left = deadline - time.monotonic()
            if live or left <= 0:
                return live
            self.wait(min(_LONGEST_POLL, left))
        return []

    def serve(self) -> int:
        """Answer commands until the engine goes; then end everything. The exit code."""
        while True:
            self.reap()
            while self.commands:
                command = self.commands.pop(0)
                if command.get("cmd") == "end":
                    sequence = [(int(s), float(g)) for s, g in command.get("sequence", ())]
                    found, survivors = self.end(sequence, str(command.get("why", "")))
                    self.send("ended", id=command.get("id"), found=found, survivors=survivors)
            if self.orphaned:
                _, survivors = self.end(self.sequence, "the engine is gone")
                return 1 if survivors else 0
            self.wait(None)


def main(argv: list[str]) -> int:
    """Supervise the script described by ``argv[1]``; fd 0 is the control socket."""
    config = json.loads(argv[1])
    control = socket.socket(fileno=0)
    reaper = Subreaper(config, control)
    reaper.subreaper = _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != reaper.parent:  # the engine died before PDEATHSIG was armed
        return 0
    if not reaper.spawn():
        return 3
    assert reaper.script is not None
    reaper.send("spawned", pid=reaper.script.pid, subreaper=reaper.subreaper)
    return reaper.serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
