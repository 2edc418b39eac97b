"""Session fixtures: every real service, private, on free ports in a temp folder.

Nothing here relies on a service already running on the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

import portcullis.models  # noqa: F401 - every table, so foreign keys resolve
from devstack.stack import LocalStack
from tests.support.factories import LoggedIn
from tests.support.stack import running_stack
from tests.support.web import ClientFor, make_client
from tests.support.worker import CeleryProcess, start_beat, start_worker

TEST_ENV = {
    "PORTCULLIS_ENV": "test",
    "PUBLIC_BASE_URL": "http://portcullis.test",
    "BCRYPT_ROUNDS": "4",
    "JOB_REQUEUE_AFTER_SECONDS": "2",
    "JOB_LEASE_SECONDS": "6",
    "BROKER_VISIBILITY_TIMEOUT": "3600",
    "SFTP_PUBLIC_HOST": "sftp.portcullis.test",
    "ALERT_RETRY_BASE_SECONDS": "0.5",
    "SFTP_INGEST_INTERVAL": "5",  # beat's entries all fall due within seconds here
}


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with running_stack(TEST_ENV) as local:  # the benchmarks start the same stack
        yield local


@pytest.fixture(scope="session")
def worker(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryProcess]:
    """The shared worker; tests that kill workers start their own."""
    process = start_worker(tmp_path_factory.mktemp("worker") / "worker.log", "shared")
    try:
        yield process
    finally:
        process.stop(timeout=30)


@pytest.fixture
def shared_worker_paused(worker: CeleryProcess) -> Iterator[None]:
    """Stop the shared worker so the test decides which worker takes each message."""
    worker.stop(timeout=30)
    try:
        yield
    finally:
        worker.start()
        worker.wait_for_log("ready.", timeout=60)


@pytest.fixture
def beat(tmp_path: Path, stack: LocalStack) -> Iterator[CeleryProcess]:
    """A real beat: it drives the sweepers (stuck jobs, due alerts)."""
    process = start_beat(tmp_path / "beat.log", "beat")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def app(stack: LocalStack) -> Flask:
    from app import create_app

    return create_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def client_for(app: Flask) -> ClientFor:
    """``client_for(who=None, *, ip=None, user_agent=None)``: a client of the app from
    ``ip`` (a fresh 198.18.0.0/15 address by default, so per-IP limits never meet), with
    ``who``'s cookies. Helpers that receive the app call ``tests.support.web.make_client``."""

    def build(who: LoggedIn | None = None, *, ip: str | None = None,
              user_agent: str | None = None) -> FlaskClient:
        return make_client(app, who, ip=ip, user_agent=user_agent)

    return build


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
