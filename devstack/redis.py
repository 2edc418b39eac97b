"""A private redis-server on a free port; stop() and start() keep the port for outage tests.

It persists nothing (no RDB, no AOF), so every start() is a Redis that comes back empty, as
after a restart without its data or a failover.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis

from devstack.process import ServiceProcess, free_port


class RedisServer:
    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = base_dir
        self.port = port or free_port()
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = ServiceProcess(
            "redis",
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(base_dir),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            base_dir / "redis.log",
        )

    def _pong(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def start(self) -> RedisServer:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.process.start()
        self.process.wait_ready(self._pong, timeout=30)
        return self

    def stop(self) -> None:
        self.process.stop()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port: empty."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def flushall(self) -> None:
        """Drop every key of every database, as a Redis that lost its data does."""
        redis.Redis(port=self.port, socket_timeout=5).flushall()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url(0), "CELERY_BROKER_URL": self.url(1)}
