"""The tiled path, for users who outgrow files (needs the ``tiled`` extra).

Mirror runs live into a tiled catalog with bluesky's ``TiledWriter``, or export runs from our
store into one afterwards. The embedded store stays first and lossless: the mirror is an
extra subscriber, which buffers rows (``batch_size``) before it writes them.

    client = local_client("~/tiled")          # SQLite catalog, in-process: no server
    mirror(RE, client)                        # or RE.subscribe(TiledWriter(client))
    export_to_tiled(Catalog(), client)        # runs already in the store
    client[uid]["primary"].read()             # the same table as Catalog()[uid].primary.read()
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .catalog_run import Run

__all__ = [
    "RunExport",
    "export_to_tiled",
    "local_catalog",
    "local_client",
    "make_writer",
    "mirror",
]

BATCH_SIZE = 100  # rows buffered by the mirror: few enough to lose little if it dies

#: Specs bluesky's ``TiledWriter`` does not know, by the mimetype tiled reads them as.
SPEC_MIMETYPES = {"AD_HDF5": "application/x-hdf5"}
#: Where the ``AD_HDF5`` layout keeps its frames (fixed by the spec).
AD_HDF5_DATASET = "/entry/data/data"


def _resource(doc: dict) -> dict:
    """A resource as tiled's HDF5 adapter wants it: ``AD_HDF5``'s fixed dataset said, and
    files read as plain HDF5 (ours are whole between frames, not SWMR)."""
    frames = doc.get("resource_kwargs", {}).get("frame_per_point", 1)
    if doc.get("spec") == "AD_HDF5" and frames == 1:
        kwargs = {"dataset": AD_HDF5_DATASET, "swmr": False, "join_method": "stack"}
        doc = {**doc, "resource_kwargs": kwargs}
    return doc


def _normalizing(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` of ``TiledWriter``/``RunNormalizer`` with our specs and patches added."""
    patches = {"resource": _resource, **kwargs.pop("patches", {})}
    mimetypes = {**SPEC_MIMETYPES, **kwargs.pop("spec_to_mimetype", {})}
    return {"patches": patches, "spec_to_mimetype": mimetypes, **kwargs}


def local_catalog(directory: str | os.PathLike, **kwargs: Any) -> Any:
    """A tiled SQLite catalog adapter in ``directory`` (created, or reopened), writable:
    array files under ``data/`` and tables in ``storage.duckdb``."""
    from tiled.catalog import from_uri

    directory = Path(directory).expanduser().resolve()
    (directory / "data").mkdir(parents=True, exist_ok=True)
    return from_uri(
        f"sqlite:///{directory / 'catalog.db'}",
        writable_storage=[str(directory / "data"), f"duckdb:///{directory / 'storage.duckdb'}"],
        init_if_not_exists=True,
        **kwargs,
    )


def local_client(directory: str | os.PathLike, **kwargs: Any) -> Any:
    """A tiled client over :func:`local_catalog`, served in-process (no socket)."""
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    return from_context(Context.from_app(build_app(local_catalog(directory, **kwargs))))


def make_writer(client: Any, *, batch_size: int = BATCH_SIZE, **kwargs: Any) -> Any:
    """bluesky's ``TiledWriter`` for ``client``, knowing the ``AD_HDF5`` image files."""
    from bluesky.callbacks.tiled_writer import TiledWriter

    return TiledWriter(client, batch_size=batch_size, **_normalizing(kwargs))


def mirror(RE: Any, client: Any, *, batch_size: int = BATCH_SIZE, **kwargs: Any) -> int:
    """Subscribe a ``TiledWriter`` to ``RE``, mirroring every run into ``client``."""
    return RE.subscribe(make_writer(client, batch_size=batch_size, **kwargs))


class RunExport:
    """One run going into tiled, document by document: rows are written ``batch_size`` at a
    time, and :meth:`flush` writes what is held (a growing run's rows, at the end of each
    follower step), so tiled shows every row stored so far without a write per event.

    bluesky's ``RunNormalizer`` and per-run writer do the work; ``flush`` writes their
    buffers as their stop would.
    """

    def __init__(self, client: Any, *, batch_size: int = 10_000) -> None:
        from bluesky.callbacks.tiled_writer import RunNormalizer, _RunWriter

        self._writer = _RunWriter(client.include_data_sources(), batch_size=batch_size)
        self._normalizer = RunNormalizer(**_normalizing({}))
        self._normalizer.subscribe(self._writer)

    def __call__(self, name: str, doc: dict) -> None:
        self._normalizer(name, doc)

    def flush(self) -> None:
        """Write the rows and stream datums held back for a batch."""
        writer = self._writer
        if writer.root_node is None:
            return
        for stream, rows in writer._internal_data_cache.items():
            if rows:
                writer._write_internal_data(rows, desc_node=writer._desc_nodes[stream])
                rows.clear()
        for resource in list(writer._external_data_cache):
            writer._write_external_data(writer._external_data_cache.pop(resource))


def _runs(source: Catalog | Run | Iterable[Run]) -> Iterable[Run]:
    if isinstance(source, Run):
        return [source]
    if isinstance(source, Catalog):
        return source.values()
    return source


def export_to_tiled(
    source: Catalog | Run | Iterable[Run],
    client: Any,
    *,
    skip_existing: bool = True,
    include_incomplete: bool = True,
    batch_size: int = 10_000,
) -> list[str]:
    """Replay stored runs into a tiled catalog; return the uids written.

    Runs already in ``client`` are skipped (``skip_existing``). A run whose writer died has
    no stop document; it is exported as stored (``include_incomplete``) and stays open in tiled.
    """
    written = []
    for run in _runs(source):
        if skip_existing and run.uid in client:
            continue
        if not include_incomplete and not run.complete:
            continue
        export = RunExport(client, batch_size=batch_size)
        for name, doc in run.documents():
            export(name, doc)
        export.flush()  # a run without a stop: what it holds (with one, the stop wrote it)
        written.append(run.uid)
    return written
