"""runengine.callbacks: subscribers for the engine's documents.

Names are imported lazily, on first use, so that ``import runengine.callbacks`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule that defines it
_LAZY: dict[str, str] = {
    # live feedback
    "Buffered": "buffered",
    "CallbackWarning": "buffered",
    "SafeCallback": "buffered",
    "RichTable": "live",
    "ProgressBar": "progress",
    "AboveTheBar": "progress",
    "LivePlot": "plots",
    "plot_run": "plots",
    "headless": "plots",
    # reading the store back
    "Catalog": "catalog",
    "broker": "store_catalog",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
