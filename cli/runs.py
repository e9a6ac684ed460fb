"""``runengine runs``, ``show`` and ``ioc``: look at stored runs; run one IOC in the foreground."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "find_run",
    "list_runs",
    "plot_to",
    "run_ioc_foreground",
    "run_table",
    "same_scan_id",
]


def list_runs(catalog: Any, limit: int) -> str:
    """A table of the last ``limit`` runs: scan_id, uid, start time, plan, status, events."""
    uids = list(catalog)[-limit:]
    if not uids:
        return f"No runs in {catalog.directory}."
    lines = [f"{'scan':>5}  {'uid':8}  {'started':19}  {'plan':20} {'status':10} events"]
    for uid in uids:
        run = catalog[uid]
        start, stop = run.metadata["start"], run.metadata["stop"]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start["time"]))
        status = stop["exit_status"] if stop else "incomplete"
        events = sum((stop or {}).get("num_events", {}).values()) if stop else "?"
        plan = str(start.get("plan_name", ""))[:20]
        lines.append(
            f"{start.get('scan_id', ''):>5}  {uid[:8]}  {when}  {plan:20} {status:10} {events}"
        )
    return "\n".join(lines)


def find_run(catalog: Any, run_id: str) -> Any:
    """A run by ``-1`` (and other negative indices), scan_id, uid or a unique uid start.

    Digits are a scan_id first, then a uid start (uids are hex: '326256' may be either).
    Raises LookupError with one message saying what was looked for.
    """
    where = catalog.directory
    if run_id.startswith("-") and run_id[1:].isdigit():
        try:
            return catalog[int(run_id)]
        except (KeyError, IndexError):
            count = len(catalog)
            held = f"it holds {count} run{'' if count == 1 else 's'}"
            raise LookupError(f"no run {run_id!r} in {where} ({held})") from None
    if run_id.isdigit():
        try:
            return catalog[int(run_id)]
        except KeyError:
            pass
    try:
        return catalog[run_id]
    except KeyError as err:
        matches = sum(1 for uid in catalog if uid.startswith(run_id)) if run_id else 0
        if matches > 1:  # the catalog's message lists them
            raise LookupError(err.args[0] if err.args else str(err)) from None
    what = "neither a scan_id nor a uid" if run_id.isdigit() else "no uid starts with it"
    raise LookupError(f"no run {run_id!r} in {where} ({what})")


def same_scan_id(catalog: Any, run: Any) -> str | None:
    """A note when other runs have ``run``'s scan_id (the newest is shown), else None."""
    scan_id = run.metadata["start"].get("scan_id")
    if not isinstance(scan_id, int):
        return None
    others = [uid for uid in catalog.search({"scan_id": scan_id}) if uid != run.uid]
    if not others:
        return None
    listed = ", ".join(uid[:8] for uid in others[-5:])
    return (
        f"note: {len(others) + 1} runs have scan_id {scan_id}; this is the newest "
        f"({run.uid[:8]}). The others: {listed} (show one by its uid)"
    )


def run_table(run: Any, stream: str = "primary") -> str:
    """The stream's data as a text table (scalar columns), with the run's header line."""
    start, stop = run.metadata["start"], run.metadata["stop"]
    status = stop["exit_status"] if stop else "incomplete"
    head = f"scan {start.get('scan_id')}  uid {run.uid}  plan {start.get('plan_name')}  {status}"
    if stream not in run:
        return f"{head}\n(no {stream!r} stream; streams: {', '.join(run) or 'none'})"
    table = run[stream].to_pandas()
    if "time" in table:
        table["time"] = [time.strftime("%H:%M:%S", time.localtime(t)) for t in table["time"]]
    scalar = [c for c in table.columns if table[c].map(_is_scalar).all()]
    return f"{head}\n{table[scalar].to_string()}"


def _is_scalar(value: Any) -> bool:
    return not hasattr(value, "__len__") or isinstance(value, str)


def plot_to(
    run: Any, path: Path, stream: str = "primary", y: str | None = None, x: str | None = None
) -> Path:
    """Save a PNG of ``y`` against ``x``; by default the first hinted field against the motor."""
    from runengine.callbacks.plots import plot_run

    start = run.metadata["start"]
    if x is None:
        motors = start.get("motors") or []
        x = motors[0] if motors else None
    descriptor = _descriptor(run, stream)
    if y is None:
        y = _first_hinted(run, descriptor, exclude={x})
    keys = descriptor["data_keys"]
    for field in (y, x):
        if field is not None and field not in keys:  # one line here, not the plot's warnings
            fields = ", ".join(sorted(keys))
            raise LookupError(f"run {run.uid[:8]} has no field {field!r}; its fields: {fields}")
    plot_run(run, y, x, path=path, stream=stream)
    return path


def _descriptor(run: Any, stream: str) -> dict:
    descriptors = [d for n, d in run.documents() if n == "descriptor" and d["name"] == stream]
    if not descriptors:
        raise LookupError(f"run {run.uid[:8]} has no {stream!r} stream to plot")
    return descriptors[0]


def _first_hinted(run: Any, descriptor: dict, exclude: set) -> str:
    for obj in descriptor.get("hints", {}).values():
        for field in obj.get("fields", []):
            if field not in exclude:
                return field
    numeric = [k for k, v in descriptor["data_keys"].items() if v["dtype"] == "number"]
    fields = [k for k in numeric if k not in exclude]
    if not fields:
        raise LookupError(f"run {run.uid[:8]} has no numeric field to plot; give -y")
    return fields[0]


def run_ioc_foreground(name: str, prefix: str | None, port: int | None) -> int:
    """Serve one simulated IOC on 127.0.0.1 until Ctrl+C; returns its exit code."""
    from runengine.devices.launcher import client_env, free_port, server_env
    from runengine.devices.table import ioc_specs

    specs = ioc_specs()
    if name not in specs:
        raise ValueError(f"unknown IOC {name!r}; choose from {', '.join(sorted(specs))}")
    port = port or free_port()
    prefix = prefix or f"{name[:4]}:"
    env = {**os.environ, **server_env(port)}
    print(f"IOC {name} on 127.0.0.1:{port}, PVs {prefix}*  (Ctrl+C stops it)")
    print("Clients: " + " ".join(f"{k}={v!r}" for k, v in client_env([port]).items()))
    command = [sys.executable, "-m", specs[name].module, "--prefix", prefix]
    command += ["--interfaces", "127.0.0.1"]  # caproto's default: its context logs at INFO
    proc = subprocess.Popen(command, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(5) or 0
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
