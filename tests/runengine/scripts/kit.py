"""Tiny fixture scripts for the script-runner tests, and process inspection through /proc."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

FAST_ABORT = ((signal.SIGINT, 0.5), (signal.SIGTERM, 0.5), (signal.SIGKILL, 3.0))
#: Shorter still, for the descendant tests (the last grace is at least 1 s anyway).
QUICK_ABORT = ((signal.SIGINT, 0.25), (signal.SIGTERM, 0.25), (signal.SIGKILL, 3.0))

SCRIPTS = {
    "hello": """
        import sys, time
        print("one\\ntwo")
        sys.stdout.write("par"); sys.stdout.flush(); time.sleep(0.1)
        sys.stdout.write("tial\\nthree\\n"); sys.stdout.flush()
        print("to stderr", file=sys.stderr)
    """,
    "exit_n": """
        import sys
        print("failing", file=sys.stderr)
        sys.exit(int(sys.argv[1]))
    """,
    "raises": """
        def tune():
            raise RuntimeError("band 3 did not lock")
        tune()
    """,
    # Marks itself ready (signal dispositions set) by creating the file named in argv[1].
    "sleep_forever": """
        import sys, time
        open(sys.argv[1], "w").close()
        while True:
            time.sleep(0.05)
    """,
    "ignore_sigint": """
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        open(sys.argv[1], "w").close()
        while True:
            time.sleep(0.05)
    """,
    # A child that ignores SIGINT and SIGTERM; its pid goes into argv[1] (the ready file).
    # argv[2] == "exit": the script itself exits 0 at once, leaving the child behind.
    "grandchild": """
        import os, signal, sys, time
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(sys.argv[1] + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(sys.argv[1] + ".tmp", sys.argv[1])
            while True:
                time.sleep(0.05)
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.01)
        if sys.argv[2] == "exit":
            sys.exit(0)
        while True:
            time.sleep(0.05)
    """,
    "publish_n": """
        import sys
        from runengine.scripts import Publisher
        pub = Publisher("publish_n")
        for i in range(int(sys.argv[1])):
            pub.session_data({"last": i, f"k{i}": i})
        pub.session_log("all sent")
        pub.publish("x" * 70000, "general")      # too large: becomes backend_error
        pub.close()
    """,
    # Raw datagrams: garbage, a non-object, an oversized one, a foreign id, then a good one.
    "publish_garbage": """
        import json, os, socket
        addr = (os.environ["SMURFPUB_UDP_HOST"], int(os.environ["SMURFPUB_UDP_PORT"]))
        me = os.environ["SMURFPUB_ID"]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        def msg(mid, kind, payload, seq):
            return json.dumps({"host": "h", "id": mid, "script": "g", "time": 1.0,
                               "seq_no": seq, "type": kind, "payload": payload}).encode()
        s.sendto(b"{not json", addr)
        s.sendto(b"\\xff\\xfe", addr)
        s.sendto(b"[1, 2, 3]", addr)
        s.sendto(b" " * 65000, addr)
        s.sendto(msg("someone-else", "session_data", {"foreign": True}, 1), addr)
        s.sendto(msg(me, "session_data", {"good": 1}, 1), addr)
        s.sendto(msg(me, "session_data", {"gap": 1}, 5), addr)
        s.sendto(msg(me, "session_data", [1, 2], 6), addr)
    """,
    # Sends 'start' but never 'stop'; children publish 0.5 s and 2 s after it exits.
    "late_publishers": """
        import os, time
        from runengine.scripts import Publisher
        pub = Publisher("late")
        for delay, key in ((0.5, "early"), (2.0, "late")):
            if os.fork() == 0:
                time.sleep(delay)
                pub.session_data({key: True})
                os._exit(0)
        pub._closed = True   # no 'stop' at exit
        os._exit(0)
    """,
    "env_and_bytes": """
        import os, sys
        print(os.environ.get("INHERITED"), os.environ.get("OVERRIDE"), os.environ.get("UNSET"))
        sys.stdout.buffer.write(b"bad \\xff\\xfe bytes\\n")
        sys.stdout.flush()
        print(os.getcwd())
    """,
    # `tree KIND PIDFILE stay|exit`: starts one descendant that leaves the script's process
    # group, then writes {"script", "supervisor", "descendant"} pids as JSON to PIDFILE (atomically)
    # and sleeps forever (stay) or exits 0 at once (exit). KIND:
    #   new_session: a child started with start_new_session=True (its own session and group);
    #   daemon: a double fork (child forks, grandchild setsid()s, child exits and is reaped);
    #   stubborn: a child in its own session that catches SIGINT and SIGTERM, notes each in
    #             PIDFILE.signals and goes on (only SIGKILL ends it).
    "tree": """
        import json, os, subprocess, sys, time
        kind, pidfile, then = sys.argv[1:4]
        pids = {"script": os.getpid(), "supervisor": os.getppid()}
        SLEEPER = "import time\\nwhile True:\\n    time.sleep(0.05)\\n"
        STUBBORN = (
            "import signal, sys, time\\n"
            "def note(sig, frame):\\n"
            "    with open(sys.argv[1], 'a') as f:\\n"
            "        f.write(signal.Signals(sig).name + '\\\\n')\\n"
            "signal.signal(signal.SIGINT, note)\\n"
            "signal.signal(signal.SIGTERM, note)\\n"
            "open(sys.argv[1] + '.ready', 'w').close()\\n"
            "while True:\\n    time.sleep(0.05)\\n"
        )
        if kind == "new_session":
            pids["descendant"] = subprocess.Popen(
                [sys.executable, "-c", SLEEPER], start_new_session=True).pid
        elif kind == "daemon":
            r, w = os.pipe()
            if os.fork() == 0:
                os.close(r)
                if os.fork() == 0:
                    os.setsid()
                    os.write(w, str(os.getpid()).encode())
                    os.close(w)
                    while True:
                        time.sleep(0.05)
                os._exit(0)
            os.close(w)
            pids["descendant"] = int(os.read(r, 64))
            os.wait()
        elif kind == "stubborn":
            signals = pidfile + ".signals"
            pids["descendant"] = subprocess.Popen(
                [sys.executable, "-c", STUBBORN, signals], start_new_session=True).pid
            while not os.path.exists(signals + ".ready"):
                time.sleep(0.01)
        with open(pidfile + ".tmp", "w") as f:
            json.dump(pids, f)
        os.rename(pidfile + ".tmp", pidfile)
        if then == "exit":
            sys.exit(0)
        while True:
            time.sleep(0.05)
    """,
    # Appends a line to argv[1] each time it runs, then sleeps argv[2] seconds.
    "count_runs": """
        import sys, time
        with open(sys.argv[1], "a") as f:
            f.write("ran\\n")
        time.sleep(float(sys.argv[2]))
    """,
}


def write_script(directory: Path, name: str) -> Path:
    """Write ``SCRIPTS[name]`` as ``directory/name.py``; return its path."""
    path = Path(directory) / f"{name}.py"
    path.write_text(textwrap.dedent(SCRIPTS[name]))
    return path


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies are dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer exists at all: dead *and* reaped (a zombie is not gone)."""
    return not Path(f"/proc/{pid}").exists()


def stat_fields(pid: int) -> dict[str, int | str]:
    """State, parent, process group and session of a process, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    fields = stat[stat.rfind(b")") + 2 :].split()
    return {
        "state": fields[0].decode(),
        "ppid": int(fields[1]),
        "pgrp": int(fields[2]),
        "session": int(fields[3]),
    }


def group_alive(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                found.append(int(entry))
    return found


def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def wait_dead(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of ``pids`` lives; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def kill_leftovers(pids: list[int]) -> None:
    """Last-resort cleanup so a failing test leaves nothing behind."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
