"""``runengine serve`` and ``runengine index``: the store's runs for other processes.

    runengine serve [--store DIR] [--port 8000]     tiled on 127.0.0.1, fed live from the store
                    [--catalog postgresql://...]    ... its catalog in PostgreSQL
    runengine index [--store DIR]                   bring the run index (and tiled) up to date

``serve`` starts ``tiled serve config`` over the store's tiled catalog (``.tiled/`` in the
store) on 127.0.0.1, with a single-user API key: ``$TILED_SINGLE_USER_API_KEY``, else the one
in ``.tiled/api_key`` (written on first use, mode 0600; printed is only its path). It then
follows the store, exporting each run as it is written, until Ctrl+C or SIGTERM; then it stops
the server.
Read from anywhere on the machine with
``broker(uri="http://127.0.0.1:8000/api/v1", api_key=...)`` or ``tiled.client.from_uri``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import click

from .api_keys import api_key
from .main import CLIError, cli, store_option

SERVER_START_TIMEOUT = 90.0


def _directory(store: Path | None) -> Path:
    from runengine.callbacks.store import default_directory

    directory = Path(store) if store is not None else default_directory()
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


def _api_key(directory: Path) -> tuple[str, str]:
    """The key, and where it came from."""
    from runengine.callbacks.store_catalog import TILED_DIR

    return api_key(directory / TILED_DIR / "api_key", "TILED_SINGLE_USER_API_KEY")


def _wait_healthy(server: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if server.poll() is not None:
            raise CLIError(f"tiled serve exited with code {server.returncode} (port {port} taken?)")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError as err:
            if time.monotonic() > deadline:
                raise CLIError(
                    f"tiled did not answer on port {port} in {SERVER_START_TIMEOUT:.0f} s"
                ) from err
            time.sleep(0.2)


def _stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@cli.command(short_help="Serve the runs with tiled, exporting each as it is written.")
@store_option
@click.option("--port", type=click.IntRange(1024, 65535), default=8000, show_default=True)
@click.option("--interval", type=click.FloatRange(0.05, 60), default=0.5, show_default=True,
              help="Seconds between looks at the store.")  # fmt: skip
@click.option("--readable", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A folder of files tiled may read, besides the store's images/.")  # fmt: skip
@click.option("--catalog", metavar="URI",
              help="postgresql://user@host:port/db: the catalog in PostgreSQL.")  # fmt: skip
def serve(
    store: Path | None,
    port: int,
    interval: float,
    readable: tuple[Path, ...],
    catalog: str | None,
) -> None:
    """Serve the store's runs with tiled on 127.0.0.1, exporting each run as it is written."""
    from tiled.client import from_uri

    from runengine.callbacks.follower import Follower
    from runengine.callbacks.store_catalog import TILED_DIR, catalog_target, serve_config

    directory = _directory(store)
    try:
        text = serve_config(directory, readable, catalog)
    except ValueError as err:
        raise CLIError(str(err)) from None
    key, key_from = _api_key(directory)
    config = directory / TILED_DIR / "serve.yml"
    config.write_text(text)
    env = {**os.environ, "TILED_SINGLE_USER_API_KEY": key}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tiled",
            "serve",
            "config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl+C reaches us; we stop it
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:  # Ctrl+C at any moment (even before the follower is up) stops both, cleanly
        _wait_healthy(server, port)
        url = f"http://127.0.0.1:{port}/api/v1"
        click.echo(f"tiled serving {directory} at {url} (api key: {key_from}); Ctrl+C stops")
        client = from_uri(url, api_key=key)
        follower = Follower(directory, client, target=catalog_target(catalog))
        try:
            follower.follow(stop, interval)
        finally:
            follower.close()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_server(server)
    click.echo("tiled stopped")


@cli.command(short_help="Bring the run index (and the tiled catalog) up to date.")
@store_option
@click.option("--tiled", "to_tiled", is_flag=True, help="Export new runs to .tiled/ too.")
def index(store: Path | None, to_tiled: bool) -> None:
    """Bring the store's run index up to date (and its tiled catalog, with --tiled)."""
    from runengine.callbacks.follower import Follower
    from runengine.callbacks.store_catalog import STORE_TARGET, store_client

    directory = _directory(store)
    client = store_client(directory) if to_tiled else None
    follower = Follower(directory, client, target=STORE_TARGET)
    try:
        report = follower.step()
    finally:
        follower.close()
    click.echo(f"indexed {report.indexed} changed files; exported {len(report.exported)} runs")
    for uid, reason in report.failed.items():
        click.echo(f"not exported: {uid}: {reason}", err=True)
