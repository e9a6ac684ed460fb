"""bluesky-queueserver's startup module: importing it builds the worker's namespace.

    start-re-manager --startup-module runengine.cli.queue.startup ...

The import starts the simulated beamline's IOCs (see :func:`.profile.build` for what else and
its environment variables), so import it only in a queueserver worker.
"""

from .profile import build

globals().update(build())
