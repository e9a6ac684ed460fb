"""What a session holds: the engine, the store, live feedback, devices and plans, by name.

Shared by ``runengine shell`` (an IPython session), ``runengine run`` (one plan) and the
demo. ``Session`` is a context manager: leaving it stops the simulated IOCs it started.
"""

from __future__ import annotations

import contextlib
import os
import runpy
from pathlib import Path
from typing import Any

from runengine import RunEngine

__all__ = ["Session", "plan_namespace"]


def plan_namespace() -> dict[str, Any]:
    """bluesky's plans by name, its stubs and preprocessors as ``bps``/``bpp``, and ours."""
    import bluesky.plan_stubs as bps
    import bluesky.plans as bp
    import bluesky.preprocessors as bpp

    import runengine.plans as rp
    from runengine.plans import pausing
    from runengine.plans.scripts import run_script

    names: dict[str, Any] = {"bp": bp, "bps": bps, "bpp": bpp, "rp": rp}
    names.update(
        {
            name: obj
            for name, obj in vars(bp).items()
            if callable(obj) and not name.startswith("_") and obj.__module__ == bp.__name__
        }
    )
    names.update({"mv": bps.mv, "mvr": bps.mvr, "run_script": run_script})
    names.update({name: getattr(pausing, name) for name in pausing.__all__})
    return names


class Session:
    """An engine with the store subscribed first, a live table, and devices.

    ``beamline``: start the simulated beamline's IOCs (or ``sim=True`` for ophyd.sim devices,
    no IOCs). ``startup``: a user's Python file run in the namespace after everything else (it
    may define devices and subscribe callbacks). ``store``: the run store directory (default
    ``$RUNENGINE_STORE`` or the user's data dir). ``RE.md`` is kept in the store
    (:class:`~runengine.callbacks.metadata.StoredMetadata`), so scan_id and the user's
    metadata carry over to the next session; ``persist_md=False`` keeps it in memory. ``md``:
    metadata for this session's runs only (``runengine run --md``), not kept. ``engine``: the
    RunEngine class (bluesky-queueserver's profile passes its own).
    """

    def __init__(
        self,
        *,
        beamline: bool = True,
        sim: bool = False,
        startup: str | os.PathLike | None = None,
        store: str | os.PathLike | None = None,
        table: bool = True,
        progress: bool = False,
        md: dict | None = None,
        persist_md: bool = True,
        engine: type[RunEngine] = RunEngine,
    ) -> None:
        self.use_beamline = beamline and not sim
        self.use_sim = sim
        self.startup = None if startup is None else Path(startup)
        self.store_dir = store or os.environ.get("RUNENGINE_STORE")
        self.table = table
        self.progress = progress
        self.md = md or {}
        self.persist_md = persist_md
        self.engine = engine
        self.beamline: Any = None
        self.namespace: dict[str, Any] = {}
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Session:
        try:
            self._build()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._exit.close()

    @property
    def RE(self) -> RunEngine:
        return self.namespace["RE"]

    @property
    def devices(self) -> dict[str, Any]:
        return self.namespace.get("_devices", {})

    def _build(self) -> None:
        from runengine.callbacks.catalog import Catalog
        from runengine.callbacks.metadata import StoredMetadata
        from runengine.callbacks.store import RunStore

        store = RunStore(self.store_dir)
        if self.persist_md:
            md = StoredMetadata(store.directory)
            RE = self.engine(md, scan_id_source=md.next_scan_id)
        else:
            RE = self.engine({})
        RE.md["owner"] = os.environ.get("USER", "unknown")
        store.subscribe(RE)  # first: a document is stored before it is shown
        ns = self.namespace
        ns.update(plan_namespace())
        ns.update(RE=RE, store=store, catalog=Catalog(store.directory))
        if self.table:
            from runengine.callbacks.live import RichTable
            from runengine.callbacks.progress import AboveTheBar

            ns["table"] = RichTable(file=AboveTheBar() if self.progress else None)
            RE.subscribe(ns["table"])
        if self.progress:
            from runengine.callbacks.progress import ProgressBar

            ns["progress"] = ProgressBar()
            RE.subscribe(ns["progress"])
        devices = self._devices()
        ns["_devices"] = devices
        ns.update(devices)
        if self.startup is not None:
            if not self.startup.is_file():
                raise FileNotFoundError(f"startup file {self.startup} does not exist")
            ns.update(runpy.run_path(str(self.startup), init_globals=ns))

    def _devices(self) -> dict[str, Any]:
        if self.use_sim:
            from ophyd.sim import SynAxis, SynGauss

            m1 = SynAxis(name="m1", labels={"motors"})
            m2 = SynAxis(name="m2", labels={"motors"})
            det = SynGauss("det", m1, "m1", center=0, Imax=1000, sigma=1, labels={"detectors"})
            return {"m1": m1, "m2": m2, "det": det}
        if not self.use_beamline:
            return {}
        from runengine.callbacks.store import IMAGES_DIR
        from runengine.devices.beamline import Beamline

        images = self.namespace["store"].directory / IMAGES_DIR  # the detectors write files
        self.beamline = self._exit.enter_context(Beamline(image_dir=images))
        self.namespace["bl"] = self.beamline
        # A device that loses its IOC suspends the plan at once; it resumes when all are back.
        self.namespace["RE"].install_suspender(self.beamline.disconnect_suspender())
        for spec in self.beamline.specs.values():  # the labels of runengine.devices.table
            for row in spec.devices:
                device = self.beamline.devices.get(row.name)
                if device is not None and row.labels:
                    device._ophyd_labels_ = set(device._ophyd_labels_) | set(row.labels)
        return dict(self.beamline.devices)

    def banner(self) -> str:
        """What is in the session and how to pause and resume."""
        from runengine.callbacks.store import IMAGES_DIR

        devices = ", ".join(sorted(self.devices)) or "(none)"
        where = (
            "simulated beamline (caproto IOCs on 127.0.0.1)"
            if self.beamline is not None
            else ("ophyd.sim devices" if self.use_sim else "no devices")
        )
        return "\n".join(
            [
                "runengine session",
                f"  devices ({where}): {devices}",
                "  RE: the RunEngine; plans: scan, count, grid_scan, ... (bp, bps, bpp, rp)",
                f"  store: every run is saved to {self.namespace['store'].directory}"
                + (f" (images in {IMAGES_DIR}/)" if self.beamline is not None else ""),
                "  catalog[-1]: the last run (catalog[-1].primary.read() for its data)",
                "  magics: %mov m1 1   %movr m1 0.1   %ct   %wa",
                "  Ctrl+C once: pause at the next checkpoint; twice: pause now.",
                "  Then RE.resume(), RE.stop(), RE.abort() or RE.halt().",
            ]
        )
