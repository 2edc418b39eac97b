"""Start every local service together, for the test suite and for ``portcullis-dev``."""

from __future__ import annotations

import base64
import contextlib
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Service(Protocol):
    def start(self) -> Any: ...
    def stop(self) -> None: ...
    def env(self) -> dict[str, str]: ...


@dataclass
class LocalStack:
    """Private PostgreSQL, Redis, clamd, S3, mail sink, SIEM receiver and SFTPGo double."""

    base_dir: Path
    services: dict[str, Any] = field(default_factory=dict)
    siem_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())

    def start(self) -> LocalStack:
        from devstack.clamd import ClamdServer
        from devstack.mailsink import MailSink
        from devstack.postgres import PostgresServer
        from devstack.redis import RedisServer
        from devstack.s3 import S3Server
        from devstack.sftpgo_double import SFTPGoDouble
        from devstack.siem_receiver import SiemReceiver

        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.services = {
            "postgres": PostgresServer(self.base_dir / "postgres"),
            "redis": RedisServer(self.base_dir / "redis"),
            "clamd": ClamdServer(self.base_dir / "clamd"),
            "s3": S3Server(self.base_dir / "s3"),
            "mail": MailSink(self.base_dir / "mail"),
            "siem": SiemReceiver(self.base_dir / "siem", self.siem_secret),
            "sftpgo": SFTPGoDouble(self.base_dir / "sftpgo"),
        }
        with ThreadPoolExecutor(max_workers=len(self.services)) as pool:
            futures = [pool.submit(s.start) for s in self.services.values()]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            self.stop()
            raise RuntimeError(f"local services failed to start: {errors}")
        return self

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for service in self.services.values():
            env.update(service.env())
        return env

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            with contextlib.suppress(Exception):  # stopping is best effort
                service.stop()

    def __getitem__(self, name: str) -> Any:
        return self.services[name]
