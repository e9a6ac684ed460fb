"""databroker and tiled over the store: ``db = broker()``, then ``db[-1].table()``.

    import runengine.callbacks
    db = runengine.callbacks.broker()       # the default store; or broker(path)
    db[-1].table(); db[-1].start; db(plan_name="scan"); db(since="2026-12-01")
    db.v2[uid]["primary"].read()            # databroker v2 / tiled client of the same runs
    db = broker(uri="http://127.0.0.1:8000/api/v1", api_key=key)   # `runengine serve`

The store's runs are exported (by a :class:`~.follower.Follower`) into a tiled SQLite catalog
in ``.tiled/`` of the store directory, which databroker reads. ``broker()`` brings that catalog
up to date first (each run is exported once; later calls cost only what is new); over a URI,
the server's follower does it. Needs the ``tiled`` extra (tiled's server side, pyarrow).

External data (a detector's image files) are read by tiled where it may read files: the
store's ``images/`` folder (:data:`IMAGES_DIR`, where ``runengine shell`` and ``run`` put
them), and the folders given as ``readable``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .follower import Follower
from .store import IMAGES_DIR, default_directory

__all__ = [
    "IMAGES_DIR",
    "TILED_DIR",
    "broker",
    "catalog_args",
    "catalog_target",
    "serve_config",
    "store_client",
]

#: The tiled catalog's folder in the store directory.
TILED_DIR = ".tiled"
#: What the catalog's root is: databroker's ``Broker`` wants it said.
ROOT_SPECS = [{"name": "CatalogOfBlueskyRuns", "version": "3.0"}]
#: The follower's export target name for the store's own catalog, however it is reached.
STORE_TARGET = "store"


def _store(directory: str | os.PathLike | None) -> Path:
    return Path(default_directory() if directory is None else directory).expanduser().resolve()


Readable = Iterable[str | os.PathLike]


def catalog_args(
    directory: str | os.PathLike | None = None,
    readable: Readable = (),
    catalog: str | None = None,
) -> dict[str, Any]:
    """The arguments of ``tiled.catalog.from_uri`` for the store's tiled catalog; tiled reads
    external files in the store's ``images/`` and in the ``readable`` folders.

    ``catalog``: a ``postgresql://user@host/db`` URI puts the catalog and its tables in that
    PostgreSQL database (one several hosts can serve), instead of SQLite and DuckDB files in
    ``.tiled/``."""
    store = _store(directory)
    where = store / TILED_DIR
    (where / "data").mkdir(parents=True, exist_ok=True)
    if catalog is None:
        uri, tables = f"sqlite:///{where / 'catalog.db'}", f"duckdb:///{where / 'storage.duckdb'}"
    else:
        scheme, _, rest = catalog.partition("://")
        if scheme not in ("postgresql", "postgresql+asyncpg") or not rest:
            raise ValueError(
                f"catalog {catalog!r}: give a postgresql://user@host:port/database URI "
                f"(without one, the catalog is SQLite in {where})"
            )
        uri, tables = f"postgresql+asyncpg://{rest}", f"postgresql://{rest}"
    folders = [store / IMAGES_DIR, *(Path(f).expanduser().resolve() for f in readable)]
    return {
        "uri": uri,
        "writable_storage": [str(where / "data"), tables],
        "readable_storage": [str(f) for f in dict.fromkeys(folders)],
        "init_if_not_exists": True,
        "specs": ROOT_SPECS,
    }


def catalog_target(catalog: str | None) -> str:
    """The follower's export target for ``catalog`` (None: the store's own): its URI
    without a password, so that each catalog gets every run once."""
    if catalog is None:
        return STORE_TARGET
    scheme, _, rest = catalog.partition("://")
    where, _, host = rest.rpartition("@")
    user = where.split(":", 1)[0]
    return f"{scheme.split('+')[0]}://{user + '@' if where else ''}{host}"


def store_client(directory: str | os.PathLike | None = None, readable: Readable = ()) -> Any:
    """A tiled client over the store's catalog, served in-process (no socket)."""
    from tiled.catalog import from_uri
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    app = build_app(from_uri(**catalog_args(directory, readable)))
    return from_context(Context.from_app(app))


def broker(
    directory: str | os.PathLike | None = None,
    *,
    uri: str | None = None,
    api_key: str | None = None,
    export: bool = True,
    readable: Readable = (),
) -> Any:
    """databroker's v1 ``Broker`` over the store's runs (``db.v2`` is the v2 client).

    With ``uri``, over a tiled server (``runengine serve``); else in-process, after
    exporting what is new in the store (``export=False`` skips that), reading external
    files in the store's ``images/`` and in ``readable``.
    """
    from databroker import Broker

    if uri is not None:
        from tiled.client import from_uri

        return Broker(from_uri(uri, api_key=api_key))
    client = store_client(directory, readable)
    if export:
        follower = Follower(_store(directory), client, target=STORE_TARGET)
        try:
            follower.step()
        finally:
            follower.close()
    return Broker(client)


def serve_config(
    directory: str | os.PathLike | None = None,
    readable: Readable = (),
    catalog: str | None = None,
) -> str:
    """A ``tiled serve config`` file's text (JSON is YAML) serving the store's catalog (see
    :func:`catalog_args`); the API key is given to the server in
    ``$TILED_SINGLE_USER_API_KEY``, not written here."""
    tree = {"path": "/", "tree": "catalog", "args": catalog_args(directory, readable, catalog)}
    return json.dumps({"trees": [tree]}, indent=2)
