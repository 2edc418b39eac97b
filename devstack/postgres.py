"""A private PostgreSQL cluster in a folder, owned by a non-superuser application owner.

``DATABASE_URL`` names that owner, as in production; the migrations then create the
least-privileged roles the processes run under.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from devstack.process import (
    ServiceProcess,
    as_user,
    free_port,
    give_to,
    port_open,
    unprivileged_user,
)

OWNER = "portcullis_owner"
DATABASE = "portcullis"


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if not candidates:
        raise RuntimeError(f"{name} not found: install postgresql")
    return str(candidates[0])


class PostgresServer:
    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "run"
        self.port = port or free_port()
        self.user = unprivileged_user()
        self.process = ServiceProcess(
            "postgres",
            as_user([_pg_bin("postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                     "-k", str(self.socket_dir), "-c", "listen_addresses=127.0.0.1",
                     "-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off", "-c", "max_connections=200"], self.user),
            base_dir / "postgres.log",
        )

    @property
    def superuser(self) -> str:
        return self.user or "postgres"

    def _initdb(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        give_to(self.base_dir, self.user)
        subprocess.run(
            as_user([_pg_bin("initdb"), "-D", str(self.data_dir), "-U", self.superuser,
                     "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"], self.user),
            check=True, capture_output=True,
        )

    def start(self) -> PostgresServer:
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self._initdb()
        self.process.start()
        self.process.wait_ready(lambda: port_open(self.port), timeout=60)
        self._wait_accepting()
        if fresh:
            self._create_owner()
        return self

    def _psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(
            [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.superuser,
             "-d", database, "-v", "ON_ERROR_STOP=1", "-qc", sql],
            check=True, capture_output=True,
        )

    def _wait_accepting(self) -> None:
        def ready() -> bool:
            try:
                self._psql("SELECT 1")
            except subprocess.CalledProcessError:
                return False
            return True
        self.process.wait_ready(ready, timeout=60)

    def _create_owner(self) -> None:
        self._psql(f"CREATE ROLE {OWNER} LOGIN CREATEROLE")
        self._psql(f"CREATE DATABASE {DATABASE} OWNER {OWNER}")

    def create_database(self, name: str) -> str:
        """Another database owned by the application owner (for isolated test runs)."""
        self._psql(f"CREATE DATABASE {name} OWNER {OWNER}")
        return self.url(name)

    def stop(self) -> None:
        self.process.stop()

    def url(self, database: str = DATABASE, user: str = OWNER) -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def superuser_url(self, database: str = DATABASE) -> str:
        return self.url(database, self.superuser)

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.url()}
