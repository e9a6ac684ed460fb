"""Connecting to Redis with bounded waits, and what to do when it is gone.

Every client made here has socket and connect timeouts, so no call hangs on a dead or
partitioned server. ``on_failure`` names the policy of each backend: ``"fallback"`` goes on
in-process (logged once, loudly), ``"fail"`` raises :class:`BackendUnavailable` at once.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import RunEngineError

__all__ = [
    "POLICIES",
    "BackendUnavailable",
    "ScaleoutError",
    "check_policy",
    "connect",
    "redis_errors",
]

logger = logging.getLogger(__name__)

POLICIES = ("fallback", "fail")
DEFAULT_URL = "redis://127.0.0.1:6379/0"


class ScaleoutError(RunEngineError, RuntimeError):
    """Base of every error of the scale-out package (a RunEngineError and a RuntimeError)."""


class BackendUnavailable(ScaleoutError, ConnectionError):
    """The shared backend (Redis) cannot be reached; names the URL and the cause."""


def check_policy(on_failure: str) -> str:
    """Validate an ``on_failure`` policy name."""
    if on_failure not in POLICIES:
        raise ValueError(f"on_failure must be one of {POLICIES}, not {on_failure!r}")
    return on_failure


def redis_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis is unreachable or too slow"."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError, OSError)


def connect(
    url: str | Any = DEFAULT_URL, timeout: float = 1.0, decode: bool = False, **kwargs: Any
) -> Any:
    """A ``redis.Redis`` for ``url`` (or the client given) with ``timeout`` on every socket op.

    Retries are off: a failure is reported at once rather than hidden behind a longer wait.
    """
    if not isinstance(url, str):
        return url
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=decode,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        **kwargs,
    )


def describe(client: Any) -> str:
    """``host:port/db`` of a client, for messages."""
    try:
        kw = client.connection_pool.connection_kwargs
        return f"redis://{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"
    except AttributeError:
        return repr(client)
