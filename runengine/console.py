"""How the engine shows itself in an interactive IPython session."""

from __future__ import annotations

import sys
from typing import Any

from bluesky.utils import RunEngineInterrupted

__all__ = ["announce", "install_interruption_display"]


def _show_interruption(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset=None):
    print(f"{etype.__name__}: {value}".rstrip())


def install_interruption_display() -> bool:
    """In IPython, show RunEngineInterrupted as its message alone: a pause is not a crash.

    Returns whether an IPython shell was found (nothing happens outside IPython).
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    shell.set_custom_exc((RunEngineInterrupted,), _show_interruption)
    return True


def announce(text: str) -> None:
    """Print an engine status line (``Pausing...``) on a line of its own, at once."""
    print(text, flush=True)
