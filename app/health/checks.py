"""Readiness: each dependency answers within a short timeout, or is reported down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from config import get_settings
from portcullis.clients.clamd import ClamdClient
from portcullis.clients.object_store import ObjectStore
from portcullis.db.engine import get_engine

log = logging.getLogger(__name__)
CHECK_TIMEOUT = 3.0


def database() -> bool:
    for attempt in (1, 2):  # a pooled connection may have died with a restarted server
        try:
            with get_engine().connect() as conn:
                return conn.execute(text("SELECT 1")).scalar() == 1
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    return False


def redis_ping() -> bool:
    client = redis.Redis.from_url(get_settings().REDIS_URL, socket_connect_timeout=2,
                                  socket_timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()


def clamd() -> bool:
    return ClamdClient.from_settings(get_settings()).ping()


def storage() -> bool:
    return ObjectStore.from_settings(get_settings()).ping()


CHECKS: dict[str, Callable[[], bool]] = {
    "database": database, "redis": redis_ping, "clamd": clamd, "storage": storage,
}
_pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")


def run_checks() -> dict[str, str]:
    futures = {name: _pool.submit(check) for name, check in CHECKS.items()}
    results: dict[str, str] = {}
    for name, future in futures.items():
        try:
            results[name] = "ok" if future.result(timeout=CHECK_TIMEOUT) else "down"
        except (FutureTimeout, Exception) as exc:  # noqa: BLE001 - any failure means down
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "down"
    return results
