"""``runengine remote ...``: control a RunEngine served by ``runengine.scaleout.remote``.

    runengine remote state --url tcp://127.0.0.1:8765 --token-file ~/.config/runengine/token
    runengine remote pause [--now] [--name NAME] | resume | stop | abort [--reason R] | panic
    runengine remote all-is-well | agents | locks

``--url`` and ``--token-file`` default to $RUNENGINE_REMOTE_URL and
$RUNENGINE_REMOTE_TOKEN_FILE. Replies print as JSON. Exit code 2 when refused or unreachable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .main import CLIError, cli


def _client(ctx: click.Context) -> Any:
    from runengine.scaleout.remote import RemoteClient

    url, token_file = ctx.obj["remote_url"], ctx.obj["remote_token_file"]
    if not url or not token_file:
        raise CLIError("remote: --url and --token-file are needed (or their environment)")
    try:
        return RemoteClient(url, token_file=token_file)
    except (OSError, ValueError) as err:
        raise CLIError(f"remote: {err}") from err


def _call(ctx: click.Context, op: str, **args: Any) -> None:
    from runengine.scaleout.remote import RemoteError

    with _client(ctx) as client:
        try:
            result = client.call(op, **args)
        except (RemoteError, OSError) as err:
            raise CLIError(f"remote {op}: {err}") from err
    click.echo(json.dumps(result, indent=2, default=str, sort_keys=True))


@cli.group()
@click.option("--url", envvar="RUNENGINE_REMOTE_URL", help="tcp://HOST:PORT of the server.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RUNENGINE_REMOTE_TOKEN_FILE",
    help="The operator's token file (mode 600).",
)
@click.pass_context
def remote(ctx: click.Context, url: str | None, token_file: Path | None) -> None:
    """Control a RunEngine over the network (authenticated)."""
    ctx.ensure_object(dict)
    ctx.obj.update(remote_url=url, remote_token_file=token_file)


@remote.command()
@click.pass_context
def state(ctx: click.Context) -> None:
    """The engine's state, pause requests and suspenders."""
    _call(ctx, "state")


@remote.command()
@click.option("--now", is_flag=True, help="Pause at once rather than at the next checkpoint.")
@click.option("--name", help="A name for the pause request.")
@click.pass_context
def pause(ctx: click.Context, now: bool, name: str | None) -> None:
    """Request a (named) pause."""
    _call(ctx, "pause", defer=not now, name=name)


@remote.command()
@click.option("--reason", default="", help="Why (recorded in the stop document).")
@click.pass_context
def abort(ctx: click.Context, reason: str) -> None:
    """Abort the plan."""
    _call(ctx, "abort", reason=reason)


def _simple(op: str, help_text: str) -> None:
    @click.pass_context
    def command(ctx: click.Context) -> None:
        _call(ctx, op)

    command.__doc__ = help_text
    remote.command(name=op.replace("_", "-"))(command)


for _op, _help in (
    ("resume", "Resume a paused plan."),
    ("stop", "Stop the plan (exit status success)."),
    ("halt", "Halt the plan (no cleanup)."),
    ("panic", "Emergency stop; nothing runs until all-is-well."),
    ("all_is_well", "Lift a panic."),
    ("agents", "The registry's agents (OCS layout)."),
    ("locks", "The served locks and their holders."),
):
    _simple(_op, _help)
