"""Beyond one process: registry, hardware locks and remote control shared between engines.

The in-process :class:`~runengine.heartbeats.Registry` and :class:`~runengine.locks.HardwareLock`
stay the embedded default. This package adds drop-in Redis backends for both (``pip install
runengine[redis]``) and a small authenticated remote-control server:

    from runengine.scaleout.heartbeats import RedisRegistry
    from runengine.scaleout.lock import RedisLock, FenceGuard
    from runengine.scaleout.remote import RemoteServer, RemoteClient

Only the modules that talk to Redis import ``redis``; :mod:`runengine.scaleout.remote` needs
the standard library only. The document stream lives in :mod:`runengine.callbacks.redis_stream`.
"""
