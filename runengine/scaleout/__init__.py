"""Beyond one process: the registry, hardware locks and documents shared through Redis.

The in-process :class:`~runengine.heartbeats.Registry` and :class:`~runengine.locks.HardwareLock`
stay the embedded default. This package adds drop-in Redis backends for both (``pip install
runengine[redis]``) and a redis-server launcher:

    from runengine.scaleout.heartbeats import RedisRegistry
    from runengine.scaleout.lock import RedisLock, FenceGuard
    from runengine.scaleout.redis_server import RedisServer

Only the modules that talk to Redis import ``redis``. The document stream lives in
:mod:`runengine.callbacks.redis_stream`; remote control is bluesky-queueserver's
(:mod:`runengine.cli.queue`, ``runengine queue``).
"""
