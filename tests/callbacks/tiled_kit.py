"""Shared by the tiled tests: a tiled server process on loopback, and table comparisons."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence

import numpy as np

SERVER_START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(process: subprocess.Popen, port: int) -> None:
    """Until tiled answers on ``port``; fails if ``process`` exits or time runs out."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        assert process.poll() is None, f"the tiled process exited ({process.returncode})"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"tiled did not start in {SERVER_START_TIMEOUT} s"
            time.sleep(0.2)


def start(argv: Sequence[str], port: int, *, env: dict | None = None, cwd=None, **kwargs):
    """``argv`` (a tiled server, or ``runengine serve``) started and answering on ``port``."""
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **kwargs},
    )
    try:
        wait_healthy(process, port)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen, sig: int = signal.SIGINT) -> int:
    """Stop ``process`` by its PID (``sig``, then SIGKILL after 20 s); its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def tiled_server_argv(port: int) -> list[str]:
    serve = ["serve", "catalog", "--temp", "--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "tiled", *serve]


def assert_same_table(ours, theirs) -> None:
    """Our stream's Dataset against tiled's: same rows, times, seq_nums and data.

    bluesky-tiled-plugins' run client (databroker's) reads a stream without ``seq_num``;
    the plain tiled table has it."""
    assert ours.sizes["time"] == len(theirs["time"])
    if "seq_num" in theirs:
        np.testing.assert_array_equal(ours["seq_num"].values, np.asarray(theirs["seq_num"]))
    np.testing.assert_allclose(ours["time"].values, np.asarray(theirs["time"]), rtol=0, atol=0)
    for key in ours.data_vars:
        if key == "seq_num":
            continue  # compared above where tiled gives it
        values = theirs[key].values
        if values.dtype == object:  # rows of arrays
            values = np.stack(list(values))
        np.testing.assert_array_equal(ours[key].values, values, err_msg=key)
