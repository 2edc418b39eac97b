"""A channel whose broker connection is gone says so with a connection error.

When the Redis broker restarts, the worker's consumer tears its old connection down while
Redis is away, so some channels of that connection are left half closed: their transport has
no client any more and their connection pool is dropped. The next use of such a channel (the
ack of a task that started before the restart, or the consumer closing the old connection,
which restores unacknowledged messages) makes kombu's Redis transport rebuild the pool from
``self.connection.client`` and fail with ``AttributeError: 'NoneType' object has no attribute
'hostname'`` in ``_connparams`` (kombu #582, #970, PR #2007; celery #8990, #10205). Celery
expects a connection error there (``ignore_errors``, ``ack_log_error``) and handles that;
an AttributeError instead ends the worker with rc 1.

``install()`` makes ``_connparams`` raise ``redis.exceptions.ConnectionError`` in that state.
Nothing is lost by it: an unacknowledged message stays in the broker (delivered again after
the visibility timeout, and the job's claim makes that a no-op) or went with a Redis that
came back empty, and then the database-driven sweepers send its job again.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions
from kombu.transport import redis as kombu_redis

_MARK = "_portcullis_closed_transport_check"


def install() -> None:
    """Patch ``kombu.transport.redis.Channel._connparams`` once (idempotent)."""
    original = kombu_redis.Channel._connparams
    if getattr(original, _MARK, False):
        return

    def _connparams(self: kombu_redis.Channel, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.exceptions.ConnectionError(
                "this channel's broker connection was closed (the broker restarted)")
        return original(self, asynchronous)

    setattr(_connparams, _MARK, True)
    _connparams.__doc__ = original.__doc__
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]
