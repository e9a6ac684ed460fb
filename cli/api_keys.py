"""API keys of the servers the command line starts: from the environment or a private file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import CLIError

__all__ = ["api_key"]


def api_key(path: Path, env_var: str) -> tuple[str, str]:
    """The key and where it is: ``$env_var``, the file at ``path``, or a new key written there.

    The file is created with mode 0600; one that group or others may read is refused
    (:class:`CLIError` naming it), as a key others can read is no key.
    """
    key = os.environ.get(env_var)
    if key:
        return key, f"${env_var}"
    if path.is_file():
        if path.stat().st_mode & 0o077:
            raise CLIError(f"{path} is readable by others: chmod 600 it (or remove it)")
        key = path.read_text().strip()
        if key:
            return key, str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as file:
        file.write(key)
    return key, str(path)
