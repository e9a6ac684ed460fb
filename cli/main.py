"""The ``runengine`` command line.

    runengine shell                      IPython with RE, the simulated beamline, plans, the store
    runengine run "scan([det], m1, -1, 1, 10)"
    runengine runs                       the stored runs
    runengine show -1 [--plot out.png]   one run's table (and a plot)
    runengine ioc motors                 one simulated IOC in the foreground
    runengine serve [--port 8000]        the runs over tiled on 127.0.0.1, exported live
    runengine index [--tiled]            bring the run index (and .tiled/) up to date
    runengine queue [--http-port 60610]  bluesky-queueserver over runengine on 127.0.0.1

Exit codes: 0 success, 1 the plan failed, 2 bad usage or input, 3 aborted or halted by the user.
Errors are one line, ``error: <what went wrong>`` (bad input: the message alone; anything else
with its exception type); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from runengine.commands.runs import ENGINE_KEYS

from .errors import EXIT_ABORTED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CLIError
from .runner import RunOutcome, run_plan

store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RUNENGINE_STORE",
    help="The run store directory (default: $RUNENGINE_STORE or the user's data dir).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """runengine: a plan-based run engine for experiments, compatible with bluesky."""
    ctx.obj = {"debug": debug}


@cli.command(short_help="IPython with RE, the devices, the plans and the store.")
@store_option
@click.option("--sim", is_flag=True, help="ophyd.sim devices instead of the IOCs.")
@click.option("--no-beamline", is_flag=True, help="Start no devices at all.")
@click.option("--startup", type=click.Path(dir_okay=False, path_type=Path), help="A file to run.")
def shell(store: Path | None, sim: bool, no_beamline: bool, startup: Path | None) -> None:
    """An IPython session with RE, the devices, the plans and the store."""
    import IPython
    from traitlets.config import Config

    from .session import Session

    with Session(beamline=not no_beamline, sim=sim, startup=startup, store=store) as session:
        config = Config()
        config.TerminalInteractiveShell.banner2 = session.banner() + "\n"
        config.InteractiveShellApp.extensions = ["runengine.cli.ipython"]
        config.TerminalIPythonApp.display_banner = True
        IPython.start_ipython(argv=[], user_ns=session.namespace, config=config)


@cli.command(short_help="Run one plan with a live table and progress.")
@click.argument("plan")
@store_option
@click.option("--sim", is_flag=True, help="ophyd.sim devices instead of the IOCs.")
@click.option("--startup", type=click.Path(dir_okay=False, path_type=Path), help="A file to run.")
@click.option("--md", multiple=True, metavar="KEY=VALUE", help="Metadata for the run.")
@click.option("--no-table", is_flag=True, help="No live table.")
def run(
    plan: str, store: Path | None, sim: bool, startup: Path | None, md: tuple, no_table: bool
) -> None:
    """Run one PLAN, e.g. "scan([det], m1, -1, 1, 10)", with a live table and progress.

    Ctrl+C pauses (once: at the next checkpoint; twice: now) and asks whether to resume,
    stop, abort or halt.
    """
    from .session import Session

    metadata = _metadata(md)
    with Session(
        sim=sim, startup=startup, store=store, table=not no_table, progress=True, md=metadata
    ) as session:
        outcome = run_plan(session, plan)
    sys.exit(_exit_code(outcome))


def _metadata(pairs: tuple) -> dict[str, Any]:
    md = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--md wants KEY=VALUE, not {pair!r}")
        if key in ENGINE_KEYS:
            raise CLIError(f"--md {key}=...: the RunEngine sets {key!r} itself")
        md[key] = value
    return md


def _exit_code(outcome: RunOutcome) -> int:
    if outcome.error is not None:
        return EXIT_ABORTED if outcome.exit_status == "abort" else EXIT_FAILED
    if outcome.exit_status == "success":
        return EXIT_OK
    if outcome.exit_status == "abort":
        return EXIT_ABORTED
    return EXIT_FAILED


@cli.command(short_help="List the stored runs, newest last.")
@store_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
def runs(store: Path | None, limit: int) -> None:
    """List the stored runs, newest last."""
    from .runs import list_runs

    click.echo(list_runs(_catalog(store), limit))


@cli.command(
    short_help="Print one run's table (and plot it).",
    context_settings={"ignore_unknown_options": True},  # so that -1 is a RUN_ID
)
@click.argument("run_id")
@store_option
@click.option("--stream", default="primary", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Save a PNG plot.")
@click.option("-y", "y_field", help="Field to plot (default: the first hinted detector field).")
@click.option("-x", "x_field", help="Field on the x axis (default: the scan's motor).")
def show(
    run_id: str,
    store: Path | None,
    stream: str,
    plot: Path | None,
    y_field: str | None,
    x_field: str | None,
) -> None:
    """Print one run's table: RUN_ID is a uid (or its start), a scan_id, or -1 for the last."""
    from .runs import find_run, plot_to, run_table, same_scan_id

    catalog = _catalog(store)
    run = find_run(catalog, run_id)
    if run_id.isdigit() and run.metadata["start"].get("scan_id") == int(run_id):
        note = same_scan_id(catalog, run)
        if note is not None:
            click.echo(note)
    click.echo(run_table(run, stream))
    if plot is not None:
        click.echo(f"plot saved to {plot_to(run, plot, stream, y_field, x_field)}")


@cli.command(short_help="Run one simulated IOC until Ctrl+C.")
@click.argument("name")
@click.option("--prefix", help="PV prefix (default: the IOC's own).")
@click.option("--port", type=click.IntRange(1024, 65534), help="CA port (default: a free one).")
def ioc(name: str, prefix: str | None, port: int | None) -> None:
    """Run one simulated IOC (NAME: an IOC of runengine.devices.table, e.g. motors) until Ctrl+C."""
    from .runs import run_ioc_foreground

    sys.exit(run_ioc_foreground(name, prefix, port))


def _catalog(store: Path | None) -> Any:
    from runengine.callbacks.catalog import Catalog
    from runengine.callbacks.store import default_directory

    directory = Path(store) if store is not None else default_directory()
    if not directory.is_dir():
        raise CLIError(f"no run store at {directory} (run a plan first, or pass --store)")
    return Catalog(directory)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``runengine`` command; returns the exit code."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_ABORTED
    except CLIError as err:
        if debug:
            raise
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.ClickException as err:  # click's usage errors: the usage, then the error
        err.show()
        return err.exit_code if err.exit_code != 1 else EXIT_USAGE
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as err:
        if debug:
            raise
        click.echo(f"error: {error_line(err)}", err=True)
        return EXIT_USAGE if isinstance(err, BAD_INPUT) else EXIT_FAILED
    return EXIT_OK


#: Errors that are about what the user typed: their message says it all, without the type.
BAD_INPUT = (ValueError, LookupError, FileNotFoundError)


def error_line(err: BaseException) -> str:
    """What follows ``error:``: a bad input's message alone, else ``Type: message``."""
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, BAD_INPUT) and message:
        return message
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


from . import serve as _serve  # noqa: E402, F401 - registers `runengine serve` and `index`
from .queue import command as _queue  # noqa: E402, F401 - registers `runengine queue`

if __name__ == "__main__":  # python -m: run the imported module, where the subcommands are
    from runengine.cli.main import main as _main

    raise SystemExit(_main())
