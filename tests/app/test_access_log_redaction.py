"""What the real web process (gunicorn) logs never shows an email-link token or a share-link
token, whatever the path's case or percent-encoding: the access line prints the request
line from the raw URI, and gunicorn's ``Error handling request`` line prints it too."""

from __future__ import annotations

import http.client
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.process import ServiceProcess
from tests.support.factories import make_export_link
from tests.support.web import start_web

pytestmark = pytest.mark.usefixtures("stack")

EMAIL_PATHS = ("reset-password", "verify-email", "accept-invitation")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, int]]:
    process, port = start_web(tmp_path_factory.mktemp("web") / "web.log")
    yield process, port
    process.stop()


def _raw_get(port: int, target: str, headers: dict[str, str] | None = None) -> int:
    """GET with ``target`` sent byte for byte (httpx would normalise the path)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _flushed_log(web: ServiceProcess, port: int) -> str:
    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)  # the access line is out
    return web.log.read_text(errors="replace")


@pytest.mark.parametrize("path", EMAIL_PATHS)
def test_email_link_tokens_never_reach_the_logs(web: tuple[ServiceProcess, int],
                                                path: str) -> None:
    process, port = web
    token = secrets.token_urlsafe(32)
    _raw_get(port, f"/{path}?token={token}")
    _raw_get(port, f"/{path}?lang=en&%74oken={token}")  # an encoded name, not first
    _raw_get(port, "/healthz", {"Referer": f"http://portcullis.test/{path}?token={token}"})
    log = _flushed_log(process, port)
    assert f"GET /{path}?<redacted> HTTP/1.1" in log
    assert token not in log


@pytest.mark.parametrize("target", ["/s/{t}", "/%73/{t}", "/s%2F{t}", "/S/{t}", "/%53%2f{t}",
                                    "/%2573/{t}", "//s/{t}", "/s/{t}?x=1"])
def test_share_tokens_never_reach_the_access_log(web: tuple[ServiceProcess, int],
                                                 target: str) -> None:
    process, port = web
    token = secrets.token_urlsafe(32)
    _raw_get(port, target.format(t=token))
    log = _flushed_log(process, port)
    assert token not in log
    assert "/s/<redacted>" in log


def test_non_canonical_share_paths_are_404(web: tuple[ServiceProcess, int]) -> None:
    """gunicorn decodes the path before routing: an encoded form of /s/ would reach the
    download; it is refused like an unknown link (no link needs encoding)."""
    process, port = web
    token = make_export_link(b"x", filename="x.bin").token
    encoded_first = f"%{ord(token[0]):02X}{token[1:]}"
    for raw in (f"/%73/{token}", f"/s%2F{token}", f"/s/{encoded_first}"):
        assert _raw_get(port, raw) == 404, raw
    assert _raw_get(port, f"/s/{token}?x=1") == 200  # the real link still works
    assert token not in _flushed_log(process, port)


def test_gunicorn_error_handling_line_hides_tokens(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    """gunicorn's ``Error handling request [method] <uri>`` (an app error escaping before
    the headers) names the same safe URI as the access line."""
    from gunicorn.config import Config

    import app.gunicorn_config as gunicorn_config

    token = secrets.token_urlsafe(32)
    cfg = Config()
    cfg.set("errorlog", "-")
    cfg.set("accesslog", "-")
    logger = gunicorn_config.RedactingLogger(cfg)
    for args in (("GET", f"/%2573/{token}"), (f"/reset-password?code=1&Token={token}",),
                 ("GET", f"/S%2f{token}")):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("Error handling request" + " %s" * len(args), *args)
    printed = capsys.readouterr().err
    assert printed.count("Error handling request GET /s/<redacted>") == 2
    assert "Error handling request /reset-password?<redacted>" in printed
    assert token not in printed


@pytest.mark.parametrize(("raw", "path_info", "expected"), [
    ("/%73/abc", "/s/abc", "/s/<redacted>"),
    ("/s%2Fabc", "/s/abc", "/s/<redacted>"),
    ("/S/abc", "/S/abc", "/s/<redacted>"),
    ("/%2573/abc", "/%73/abc", "/s/<redacted>"),
    ("http://h/s/abc?x=1", "/s/abc", "/s/<redacted>"),
    ("/reset-password?token=abc", "/reset-password", "/reset-password?<redacted>"),
    ("/api/v1/buckets", "/api/v1/buckets", "/api/v1/buckets"),
])
def test_the_safe_uri_is_decided_on_the_decoded_path(raw: str, path_info: str,
                                                     expected: str) -> None:
    from app.gunicorn_config import safe_request_uri

    assert safe_request_uri(raw, path_info) == expected
