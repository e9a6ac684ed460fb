"""``runengine queue``: bluesky-queueserver over runengine on 127.0.0.1, until Ctrl+C.

    runengine queue [--store DIR] [--devices iocs|sim|none] [--redis HOST:PORT]
                    [--control-port 60615] [--info-port 60625] [--http-port PORT] [--no-open]

Starts redis-server (its files in ``<store>/queue/redis``, append-only with fsync always)
unless ``--redis`` names one, then ``start-re-manager`` with the runengine profile, opens the
environment (the IOCs start) and, with ``--http-port``, bluesky-httpserver with an API key
(``$QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY``, else ``<store>/queue/api_key``, mode 0600).
Then ``qserver``, ``bluesky-queueserver-api`` or HTTP clients drive it. Ctrl+C or SIGTERM
stops everything it started, by process group.
"""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path
from typing import Any

import click

from ..main import CLIError, cli, store_option
from .manager import DEFAULT_CONTROL_PORT, DEFAULT_INFO_PORT

QUEUE_DIR = "queue"


def _redis_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CLIError(f"--redis wants HOST:PORT, e.g. 127.0.0.1:6379, not {value!r}")
    return value


def _check_free(port: int, option: str) -> None:
    if port == 0:
        return
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise CLIError(
                f"{option} {port}: the port is in use ({exc.strerror}); "
                f"another RE Manager? Pass {option} 0 for a free one"
            ) from None


def _wait_for_signal(manager: Any) -> str:
    """Block until SIGINT/SIGTERM or the manager's death; say which."""
    stop = threading.Event()
    why = ["interrupted"]
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        while not stop.wait(0.5):
            if not manager.alive:
                why[0] = "the RE Manager exited"
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return why[0]


@cli.command(short_help="Serve bluesky-queueserver over runengine until Ctrl+C.")
@store_option
@click.option(
    "--devices",
    type=click.Choice(["iocs", "sim", "none"]),
    default="iocs",
    show_default=True,
    help="The simulated beamline's IOCs, ophyd.sim devices, or none.",
)
@click.option("--redis", "redis", metavar="HOST:PORT", help="A Redis to use (default: our own).")
@click.option("--control-port", type=click.IntRange(0, 65535), default=DEFAULT_CONTROL_PORT,
              show_default=True, help="0MQ control port on 127.0.0.1 (0: a free one).")  # fmt: skip
@click.option("--info-port", type=click.IntRange(0, 65535), default=DEFAULT_INFO_PORT,
              show_default=True, help="0MQ info (console) port on 127.0.0.1.")  # fmt: skip
@click.option("--http-port", type=click.IntRange(0, 65535), default=None,
              help="Also serve HTTP (bluesky-httpserver) on this port (0: free).")  # fmt: skip
@click.option("--startup", type=click.Path(dir_okay=False, path_type=Path),
              help="A Python file the worker runs after the profile.")  # fmt: skip
@click.option("--no-open", is_flag=True, help="Do not open the environment at start.")
def queue(
    store: Path | None,
    devices: str,
    redis: str | None,
    control_port: int,
    info_port: int,
    http_port: int | None,
    startup: Path | None,
    no_open: bool,
) -> None:
    """Serve the queue: bluesky-queueserver over runengine, on 127.0.0.1, until Ctrl+C."""
    from runengine.callbacks.store import default_directory
    from runengine.scaleout.redis_server import RedisServer

    from .http import HTTPFront, api_key
    from .manager import QueueManager

    directory = (Path(store) if store is not None else default_directory()).resolve()
    work = directory / QUEUE_DIR
    work.mkdir(parents=True, exist_ok=True)
    if startup is not None and not startup.is_file():
        raise CLIError(f"--startup {startup}: no such file")
    for port, option in ((control_port, "--control-port"), (info_port, "--info-port")):
        _check_free(port, option)
    env = {
        "RUNENGINE_STORE": str(directory),
        "RUNENGINE_QUEUE_DEVICES": devices,
        "RUNENGINE_QUEUE_DIR": str(work),
        "RUNENGINE_QUEUE_STARTUP": "" if startup is None else str(startup.resolve()),
    }
    own_redis = None if redis else RedisServer(work / "redis")
    address = _redis_address(redis) if redis else own_redis.address  # type: ignore[union-attr]
    manager = QueueManager(work / "manager", address, control_port=control_port,
                           info_port=info_port, env=env)  # fmt: skip
    front = None
    try:
        if own_redis is not None:
            own_redis.start()
        click.echo(f"Starting the RE Manager (Redis {address}) ...")
        manager.start()
        if not no_open:
            click.echo(f"Opening the environment ({devices}) ...")
            manager.open_environment()
        if http_port is not None:
            key, where = api_key(work / "api_key")
            front = HTTPFront(work / "http", manager, api_key=key, port=http_port).start()
        click.echo(f"Queue server ready; its files in {work}")
        click.echo(f"  0MQ control {manager.control_addr}   info {manager.info_addr}")
        click.echo(f"  qserver -a {manager.control_addr} status")
        if front is not None:
            click.echo(f"  HTTP {front.uri}/api   API key: {where}")
        click.echo(f"  pause files: touch {work}/PAUSE (pauses) or {work}/HOLD (suspends)")
        click.echo("Ctrl+C stops it all.")
        why = _wait_for_signal(manager)
        click.echo(f"Stopping ({why}) ...")
    finally:
        if front is not None:
            front.stop()
        manager.stop()
        if own_redis is not None:
            own_redis.stop()
    click.echo("Stopped.")
    if why != "interrupted":
        raise CLIError(why)
