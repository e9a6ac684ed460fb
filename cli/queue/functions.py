"""The seed's controls as profile functions, for queueserver's ``function_execute``.

    from bluesky_queueserver_api import BFunc
    api.function_execute(BFunc("hold", "alignment", reason="realigning"), run_in_background=True)
    api.re_resume()      # refused: the item stays paused in the queue
    api.function_execute(BFunc("release", "alignment"), run_in_background=True)
    api.re_resume()      # now it resumes

``hold``/``release``: a named pause request whose permission callback refuses resume until
released (:meth:`runengine.RunEngine.request_pause` with ``name`` and ``callback``).
``panic``/``all_is_well``: the recoverable emergency stop. ``engine_status``: what the engine
holds that queueserver's status does not show. ``stored_runs``: the store's last runs, to
check the history against. ``beamline_info``: the simulated IOCs (prefix, port, pid).

Run them with ``run_in_background=True`` while a plan runs (they are thread-safe: each posts
to the engine's loop). Every result is JSON; bad arguments raise naming the argument.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["FUNCTION_NAMES", "profile_functions"]

#: The names :func:`profile_functions` returns, as the user group permissions allow them.
FUNCTION_NAMES = (
    "hold",
    "release",
    "engine_status",
    "panic",
    "all_is_well",
    "stored_runs",
    "beamline_info",
)
MAX_NAME = 200


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise ValueError(f"name must be a non-empty string of at most {MAX_NAME} characters, "
                         f"not {value!r}")  # fmt: skip
    return value


def _flag(what: str, value: Any) -> bool:
    if not isinstance(value, bool):  # "false" is not False (the old remote server took it so)
        raise TypeError(f"{what} must be true or false, not {value!r}")
    return value


def profile_functions(RE: Any, catalog: Any, beamline: Any = None) -> dict[str, Callable]:
    """The functions of :data:`FUNCTION_NAMES`, bound to this engine, catalog and beamline."""
    held: dict[str, str] = {}  # name -> reason, of the holds not yet released
    lock = threading.Lock()

    def engine_status() -> dict:
        """The engine's state, whether suspended, its pause requests, holds and suspenders."""
        with lock:
            holds = dict(held)
        return {
            "state": str(RE.state),
            "suspended": RE.suspended,
            "pause_requests": list(RE.pause_requests),
            "holds": holds,
            "suspenders": [repr(s) for s in RE.suspenders],
        }

    def hold(name: str, reason: str = "", defer: bool = True) -> dict:
        """Pause under ``name`` (at the next checkpoint unless ``defer=False``); resume is
        refused until ``release(name)``."""
        name, defer = _name(name), _flag("defer", defer)
        with lock:
            if name in held:
                raise ValueError(f"{name!r} already holds the engine (release it first)")
            held[name] = str(reason)
        try:
            RE.request_pause(defer=defer, name=name, callback=lambda: name not in held)
        except BaseException:
            with lock:
                held.pop(name, None)
            raise
        return engine_status()

    def release(name: str) -> dict:
        """Let a resume past the hold ``name`` (the plan stays paused until resumed)."""
        name = _name(name)
        with lock:
            if held.pop(name, None) is None:
                raise ValueError(f"no hold named {name!r} (holds: {sorted(held) or 'none'})")
        return engine_status()

    def panic() -> dict:
        """Emergency stop: a running plan is aborted; nothing runs until ``all_is_well``."""
        RE.panic()
        return engine_status()

    def all_is_well() -> dict:
        """Lift a panic: back to idle (or to paused, if the panic came while paused)."""
        RE.all_is_well()
        return engine_status()

    def stored_runs(limit: int = 10) -> list[dict]:
        """The store's last ``limit`` runs: uid, scan_id, plan, exit status, events per stream."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, not {limit!r}")
        from runengine.callbacks.catalog import Catalog

        here = Catalog(catalog.directory)  # its index is a SQLite connection of this thread's
        runs = []
        for uid in list(here)[-limit:]:
            run = here[uid]
            start, stop = run.metadata["start"], run.metadata["stop"] or {}
            runs.append(
                {
                    "uid": uid,
                    "scan_id": start.get("scan_id"),
                    "plan_name": start.get("plan_name"),
                    "exit_status": stop.get("exit_status"),
                    "num_events": dict(stop.get("num_events", {})),
                }
            )
        return runs

    def beamline_info() -> dict:
        """The simulated IOCs: ``{ioc: {prefix, port, pid, alive}}`` (empty without IOCs)."""
        if beamline is None:
            return {}
        return {
            name: {"prefix": ioc.prefix, "port": ioc.port, "pid": ioc.pid, "alive": ioc.alive}
            for name, ioc in beamline.iocs.items()
        }

    found = {f.__name__: f for f in (hold, release, engine_status, panic, all_is_well,
                                      stored_runs, beamline_info)}  # fmt: skip
    assert tuple(found) == FUNCTION_NAMES
    return found
