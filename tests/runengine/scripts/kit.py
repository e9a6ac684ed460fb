"""Tiny fixture scripts for the script-runner tests, and process inspection through /proc."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

FAST_ABORT = ((signal.SIGINT, 0.5), (signal.SIGTERM, 0.5), (signal.SIGKILL, 3.0))

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
