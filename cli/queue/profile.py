"""The namespace of bluesky-queueserver's worker, as runengine builds it.

:func:`build` is what the startup module :mod:`runengine.cli.queue.startup` runs when the
worker imports it (``start-re-manager --startup-module runengine.cli.queue.startup``, as
``runengine queue`` does). It builds what ``runengine shell`` has: ``RE`` (a
:class:`~.engine.QueueRunEngine`) with the store subscribed first, ``catalog``, bluesky's
plans and ours, and the devices. Its environment variables:

``RUNENGINE_STORE``         the run store directory (default: the user's data dir)
``RUNENGINE_QUEUE_DEVICES`` ``iocs`` (default: the simulated beamline, its caproto IOCs started
                            here and ended with the worker), ``sim`` (ophyd.sim) or ``none``
``RUNENGINE_QUEUE_DIR``     where the pause files are watched (default ``<store>/queue``)
``RUNENGINE_QUEUE_STARTUP`` a Python file run last in the namespace (more devices, suspenders)

Configured here: a :class:`~runengine.agents.files.FilePausingAgent` on ``<queue dir>/PAUSE``
(the file pauses the plan, which resumes only once it is gone), a
:class:`~runengine.suspenders.file.SuspendWhileFileExists` on ``<queue dir>/HOLD``, with the
beamline a ``SuspendFloor`` on the ring current, and the functions of :mod:`.functions`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bluesky.suspenders import SuspendFloor

from runengine.agents.files import FilePausingAgent, SuspendWhileFileExists

from ..session import Session
from .engine import QueueRunEngine
from .functions import profile_functions

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("iocs", "sim", "none")
PAUSE_FILE, HOLD_FILE = "PAUSE", "HOLD"
#: The ring current (mA) below which plans suspend, above which they resume, and the wait.
BEAM_SUSPEND, BEAM_RESUME, BEAM_SLEEP = 50.0, 350.0, 0.5


def _devices_choice() -> str:
    choice = os.environ.get("RUNENGINE_QUEUE_DEVICES", "iocs")
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"RUNENGINE_QUEUE_DEVICES={choice!r}: one of {', '.join(DEVICE_CHOICES)}")
    return choice


def build() -> dict:
    """The worker's namespace: everything ``runengine shell`` gives, plus the queue's controls."""
    choice = _devices_choice()
    startup = os.environ.get("RUNENGINE_QUEUE_STARTUP") or None
    session = Session(
        beamline=choice == "iocs",
        sim=choice == "sim",
        store=os.environ.get("RUNENGINE_STORE") or None,
        table=False,  # the worker's output is the manager's log, not a terminal
        startup=startup,
        engine=QueueRunEngine,
    )
    # Entered for the worker's whole life: the worker process ends without unwinding, and its
    # IOCs end with it (each is started with a parent-death signal).
    session.__enter__()
    ns = dict(session.namespace)
    RE, store = ns["RE"], ns["store"]
    queue_dir = Path(os.environ.get("RUNENGINE_QUEUE_DIR") or store.directory / "queue")
    queue_dir.mkdir(parents=True, exist_ok=True)
    agent = FilePausingAgent(RE, queue_dir / PAUSE_FILE, name="PAUSE file").start()
    RE.install_suspender(SuspendWhileFileExists(queue_dir / HOLD_FILE, sleep=0.2))
    if session.beamline is not None:
        beam = session.beamline.devices["beam"]
        RE.install_suspender(
            SuspendFloor(beam.current, BEAM_SUSPEND, resume_thresh=BEAM_RESUME, sleep=BEAM_SLEEP)
        )
    ns.update(profile_functions(RE, ns["catalog"], session.beamline))
    ns.update(session=session, pause_agent=agent, queue_dir=queue_dir)
    log.info("runengine profile: devices %s, store %s", choice, store.directory)
    return ns
