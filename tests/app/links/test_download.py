"""GET /s/{token} when storage fails: a 503 problem, never gunicorn's bare 500, and the
token (the link's whole credential) in no log line and no Sentry event."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from flask import Flask

from config import get_settings
from devstack.process import ServiceProcess, free_port
from portcullis.clients.object_store import CHUNK_SIZE, ObjectStore
from portcullis.errors import DependencyUnavailable
from tests.support.factories import make_export_link
from tests.support.sentry import assert_absent, recording_sentry
from tests.support.web import start_web

pytestmark = pytest.mark.usefixtures("stack")


def _flushed_log(web: ServiceProcess, port: int) -> str:
    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)  # the access line is out
    return web.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, int]]:
    process, port = start_web(tmp_path_factory.mktemp("web") / "web.log")
    yield process, port
    process.stop()


@pytest.fixture(scope="module")
def web_without_storage(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, int]]:
    """gunicorn whose S3 endpoint is a port nobody listens on: storage is down for it."""
    dead = f"http://127.0.0.1:{free_port()}"
    process, port = start_web(tmp_path_factory.mktemp("nos3") / "web.log",
                              {"S3_ENDPOINT_URL": dead})
    yield process, port
    process.stop()


def test_storage_down_is_a_503_problem_and_no_log_shows_the_token(
        web_without_storage: tuple[ServiceProcess, int]) -> None:
    web, port = web_without_storage
    token = make_export_link(b"never served").token
    response = httpx.get(f"http://127.0.0.1:{port}/s/{token}", timeout=60)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "dependency_unavailable"
    assert "retry-after" in response.headers
    log = _flushed_log(web, port)
    assert "dependency unavailable: storage" in log  # the app log line is in this file too
    assert '/s/<redacted> HTTP/1.1" 503' in log      # and gunicorn's access line
    assert token not in log
    assert "Error handling request" not in log


def test_a_download_still_streams_every_chunk(web: tuple[ServiceProcess, int]) -> None:
    web_process, port = web
    data = secrets.token_bytes(3 * CHUNK_SIZE + 1234)  # the pre-read chunk and the rest
    token = make_export_link(data).token
    response = httpx.get(f"http://127.0.0.1:{port}/s/{token}", timeout=60)
    assert response.status_code == 200
    assert response.content == data
    assert token not in _flushed_log(web_process, port)


def test_a_link_whose_object_is_gone_is_404(app: Flask) -> None:
    link = make_export_link(b"soon gone")
    settings = get_settings()
    ObjectStore.from_settings(settings).delete(settings.S3_BUCKET, link.object_key)
    response = app.test_client().get(link.path)
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


@pytest.fixture
def app_log() -> Iterator[io.StringIO]:
    """What the app's own log handler (structlog + stdlib, werkzeug included) prints."""
    handler = next(h for h in logging.getLogger().handlers
                   if isinstance(h, logging.StreamHandler) and h.filters)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def test_a_mid_stream_failure_cuts_the_response_and_hides_the_token(
        app: Flask, monkeypatch: pytest.MonkeyPatch, app_log: io.StringIO) -> None:
    """Headers are out, then storage fails: the body is cut short (an error, not a short
    'complete' body); the app log and the Sentry event never show the token."""
    token = make_export_link(secrets.token_bytes(2 * CHUNK_SIZE)).token

    def first_chunk_then_fail(body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            yield next(body.iter_chunks(chunk_size))
            raise DependencyUnavailable("storage", "get: ReadTimeoutError")
        finally:
            body.close()

    monkeypatch.setattr(ObjectStore, "_chunks", staticmethod(first_chunk_then_fail))
    with recording_sentry(monkeypatch) as sentry:
        response = app.test_client().get(f"/s/{token}", headers={
            "Referer": f"https://portal.example/s/{token}"})
        assert response.status_code == 200  # the headers were out before storage failed
        with pytest.raises(DependencyUnavailable):
            response.get_data()
    assert "DependencyUnavailable" in sentry.exception_types()
    requests = [e["request"] for e in sentry.events() if "request" in e]
    assert requests and all(r["url"].endswith("/s/<redacted>") for r in requests)
    assert_absent(sentry.wire(), {"share token": token})
    printed = app_log.getvalue()
    assert "cut short" in printed
    assert token not in printed


def test_app_and_werkzeug_log_lines_redact_share_paths(app_log: io.StringIO) -> None:
    token = secrets.token_urlsafe(32)
    logging.getLogger("werkzeug").info('127.0.0.1 - - "GET /s/%s HTTP/1.1" 200 -', token)
    structlog.get_logger("test").info("served", url=f"http://portcullis.test/s/{token}")
    printed = app_log.getvalue()
    assert printed.count("/s/<redacted>") == 2
    assert token not in printed


def test_gunicorn_error_log_is_scrubbed(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    """What gunicorn prints when an app error escapes before the headers (its
    ``Error handling request <uri>`` line and the traceback) never shows a token."""
    from gunicorn.config import Config

    import app.gunicorn_config as gunicorn_config

    token = secrets.token_urlsafe(32)
    cfg = Config()
    cfg.set("errorlog", "-")
    cfg.set("accesslog", "-")
    logger = gunicorn_config.RedactingLogger(cfg)
    try:
        raise RuntimeError(f"could not serve /s/{token}")
    except RuntimeError:
        logger.exception("Error handling request %s", f"/s/{token}?x=1")
    printed = capsys.readouterr().err
    assert "Error handling request /s/<redacted>" in printed
    assert "RuntimeError: could not serve /s/<redacted>" in printed
    assert token not in printed
