"""The command line's exit codes and its one exception root."""

from __future__ import annotations

import click

from runengine.errors import RunEngineError

__all__ = ["EXIT_ABORTED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CLIError"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3


class CLIError(RunEngineError, click.ClickException):
    """A user-facing error: printed as one line, exit code 2 (a RunEngineError too)."""

    exit_code = EXIT_USAGE
