"""One Redis client per process for counters (rate limits use flask-limiter's own)."""

from __future__ import annotations

from functools import lru_cache

import redis

from config import get_settings


@lru_cache(maxsize=1)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2,
                                health_check_interval=30)


def get_redis() -> redis.Redis:
    return _client(get_settings().REDIS_URL)
