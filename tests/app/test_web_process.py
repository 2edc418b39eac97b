"""The Procfile's web process under gunicorn: headers, TLS-only when configured, access log."""

from __future__ import annotations

import datetime as dt
import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack.process import ServiceProcess
from tests.support.web import procfile, start_web

pytestmark = pytest.mark.usefixtures("stack")


def test_procfile_names_the_contracted_processes() -> None:
    entries = procfile()
    assert set(entries) == {"web", "worker", "beat", "release"}
    assert entries["web"].startswith("gunicorn ")
    assert entries["worker"].startswith("celery ") and " worker" in entries["worker"]
    assert "--scheduler workers.beat:BeatScheduler" in entries["beat"]
    assert entries["release"] == "portcullis db upgrade"


@pytest.fixture(scope="module")
def plain_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, int]]:
    web, port = start_web(tmp_path_factory.mktemp("web") / "web.log")
    yield web, port
    web.stop()


def test_server_header_names_no_version(plain_web: tuple[ServiceProcess, int]) -> None:
    _, port = plain_web
    response = httpx.get(f"http://127.0.0.1:{port}/healthz")
    assert response.status_code == 200
    assert response.headers["server"] == "portcullis"
    assert "gunicorn" not in str(response.headers).lower()
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_access_log_redacts_share_tokens(plain_web: tuple[ServiceProcess, int]) -> None:
    web, port = plain_web
    token = "sharetoken-" + "a" * 40
    httpx.get(f"http://127.0.0.1:{port}/s/{token}?x=1")
    httpx.get(f"http://127.0.0.1:{port}/healthz")  # flushes the previous line
    log = web.log.read_text()
    assert "/s/<redacted>" in log
    assert token not in log


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(directory)
    web, port = start_web(directory / "web.log",
                          {"TLS_CERT_PATH": str(cert), "TLS_KEY_PATH": str(key)})
    yield port
    web.stop()


def _context(maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
    return context


def test_tls_serves_https(tls_web: int) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", tls_web, context=_context(), timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200


def test_plain_http_is_refused_when_tls_is_on(tls_web: int) -> None:
    with pytest.raises((httpx.HTTPError, OSError)):
        response = httpx.get(f"http://127.0.0.1:{tls_web}/healthz", timeout=5)
        assert response.status_code != 200  # never a page over plain HTTP


def test_tls_context_requires_1_2(tls_web: int, monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    """The context gunicorn builds refuses anything older than TLS 1.2.

    (A live handshake cannot show this here: this OpenSSL refuses TLS 1.1 on its own.)
    """
    import importlib

    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("TLS_CERT_PATH", str(cert))
    monkeypatch.setenv("TLS_KEY_PATH", str(key))
    from config import get_settings

    get_settings.cache_clear()
    try:
        import app.gunicorn_config as gunicorn_config

        config = importlib.reload(gunicorn_config)
        context = config.ssl_context(None, lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert config.certfile == str(cert)
    finally:
        monkeypatch.delenv("TLS_CERT_PATH")
        monkeypatch.delenv("TLS_KEY_PATH")
        get_settings.cache_clear()
