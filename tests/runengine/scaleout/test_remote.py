"""Remote control: tokens from the operator's file, refusals logged, the verbs, the CLI."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest

TOKEN = "s3cret-token-for-tests-0123456789"


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# operators\nalice:{TOKEN}\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def engine():
    from runengine import RunEngine

    return RunEngine({}, context_managers=[])


@pytest.fixture
def server(engine, token_file):
    from runengine.heartbeats import Registry
    from runengine.locks import HardwareLock
    from runengine.scaleout.remote import RemoteServer

    registry = Registry()
    registry.beat("ioc.m1", {"acq": 3}, "Motor")
    lock = HardwareLock("mono")
    with RemoteServer(engine, token_file, registry=registry, locks=[lock]) as srv:
        yield srv


def test_bad_or_missing_tokens_are_refused_and_logged(server, caplog):
    from runengine.scaleout.remote import RemoteClient, Unauthorized

    caplog.set_level(logging.WARNING, "runengine.scaleout.remote")
    with pytest.raises(Unauthorized), RemoteClient(server.url, "wrong-token-0123456789") as bad:
        bad.state()
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b'{"op": "panic"}\n')
        reply = json.loads(sock.makefile().readline())
    assert reply == {"id": None, "ok": False, "error": "unauthorized"}
    assert server.refused == 2 and server.RE.state == "idle"  # the panic was not done
    assert sum("refused" in r.getMessage() for r in caplog.records) == 2
    assert TOKEN not in caplog.text


def test_unsafe_token_files_are_refused(tmp_path, engine):
    from runengine.scaleout.remote import RemoteServer

    path = tmp_path / "tokens"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        RemoteServer(engine, path)
    os.chmod(path, 0o600)
    path.write_text("short\n")
    with pytest.raises(ValueError, match="16 characters"):
        RemoteServer(engine, path)


def test_state_pause_resume_panic_and_listings(server, engine, token_file):
    import bluesky.plan_stubs as bps

    from runengine.scaleout.remote import RemoteClient, RemoteError

    def plan():
        for _ in range(40):
            yield from bps.checkpoint()
            yield from bps.sleep(0.05)

    done = []
    runner = threading.Thread(target=lambda: done.append(_run(engine, plan())))
    with RemoteClient(server.url, token_file=token_file) as client:
        assert client.state()["state"] == "idle"
        assert client.agents()["ioc.m1"]["op_codes"] == {"acq": 3}
        assert client.locks() == [{"name": "mono", "kind": "HardwareLock", "holder": None}]
        runner.start()
        _until(lambda: engine.state == "running")
        reply = client.pause(name="operator")
        _until(lambda: engine.state == "paused")
        assert "operator" in reply["pause_requests"]
        reply = client.resume()
        assert reply["state"] == "running" or reply.get("pending")
        runner.join(10)
        assert done == ["paused"]  # RE(plan) returned at the pause; the resume runs it on
        _until(lambda: engine.state == "idle", 10)
        client.panic()
        assert client.state()["state"] == "panicked"
        with pytest.raises(RemoteError, match="unknown operation"):
            client.call("format_disk")
        client.all_is_well()
        assert client.state()["state"] == "idle"


def _run(RE, plan):
    from bluesky.utils import RunEngineInterrupted

    try:
        RE(plan)
    except RunEngineInterrupted:
        return "paused"
    return "finished"


def _until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_cli_verbs(server, token_file):
    from click.testing import CliRunner

    from runengine.cli.main import cli

    args = ["remote", "--url", server.url, "--token-file", str(token_file)]
    result = CliRunner().invoke(cli, [*args, "state"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["state"] == "idle"
    assert "ioc.m1" in CliRunner().invoke(cli, [*args, "agents"]).output
    bad = token_file.parent / "bad"
    bad.write_text("nobody:" + "x" * 20 + "\n")
    os.chmod(bad, 0o600)
    result = CliRunner().invoke(cli, ["remote", "--url", server.url, "--token-file", str(bad),
                                      "pause"])  # fmt: skip
    assert result.exit_code == 2 and "unauthorized" in result.output
