"""Mailer against an in-process SMTP sink, with and without AUTH."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from config.settings import Settings
from devstack.mailsink import MailSink
from portcullis.clients.smtp import Mailer, parse_smtp_url
from portcullis.errors import DependencyUnavailable

PASSWORD = "p@ss:w/rd%secret"


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    server = MailSink(tmp_path_factory.mktemp("mail")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    server = MailSink(tmp_path_factory.mktemp("authmail"), user="mailer",
                      password=PASSWORD).start()
    yield server
    server.stop()


def _mailer(env: dict[str, str], **kwargs: float) -> Mailer:
    settings = Settings(**{"PORTCULLIS_ENV": "test", **env})  # type: ignore[arg-type]
    return Mailer.from_settings(settings, **kwargs)


def _to(address: str) -> Callable[[EmailMessage], bool]:
    return lambda m: m["To"] == address


def test_send_arrives_with_headers(sink: MailSink) -> None:
    mailer = _mailer(sink.env())
    message_id = mailer.send("alice@example.com", "Verify your email",
                             "Hello https://x/verify-email?token=abc",
                             html="<p>Hello</p>", headers={"Reply-To": "help@example.com"})
    got = sink.wait_for(_to("alice@example.com"), timeout=5)
    assert got["From"] == "Portcullis <no-reply@portcullis.localhost>"
    assert got["Subject"] == "Verify your email"
    assert got["Message-ID"] == message_id
    assert got["Message-ID"].endswith("@portcullis.localhost>")
    assert got["Date"] and got["Reply-To"] == "help@example.com"
    assert isinstance(got, EmailMessage)
    plain = got.get_body(("plain",))
    html = got.get_body(("html",))
    assert plain is not None and "token=abc" in plain.get_content()
    assert html is not None and "<p>Hello</p>" in html.get_content()
    files = list((sink.base_dir / "mail").glob("*.eml"))
    assert any(b"Verify your email" in f.read_bytes() for f in files)


def test_header_injection_refused(sink: MailSink) -> None:
    mailer = _mailer(sink.env())
    with pytest.raises(ValueError):
        mailer.send("bob@example.com", "hi\r\nBcc: evil@example.com", "x")
    with pytest.raises(ValueError):
        mailer.send("bob@example.com, evil@example.com", "hi", "x")
    with pytest.raises(ValueError):
        mailer.send("bob@example.com", "hi", "x", headers={"From": "ceo@example.com"})


def test_auth_credentials_from_url(auth_sink: MailSink) -> None:
    assert "mailer:" in auth_sink.env()["SMTP_URL"]
    _mailer(auth_sink.env()).send("carol@example.com", "With auth", "body")
    assert auth_sink.wait_for(_to("carol@example.com"), timeout=5)["Subject"] == "With auth"


def test_wrong_or_missing_credentials_are_unavailable(auth_sink: MailSink) -> None:
    wrong = auth_sink.env() | {"SMTP_URL": auth_sink.url.replace("p%40ss", "nope")}
    with pytest.raises(DependencyUnavailable) as caught:
        _mailer(wrong).send("dave@example.com", "x", "x")
    assert "nope" not in str(caught.value)
    anonymous = auth_sink.env() | {"SMTP_URL": f"smtp://127.0.0.1:{auth_sink.port}"}
    with pytest.raises(DependencyUnavailable):
        _mailer(anonymous).send("dave@example.com", "x", "x")
    assert not any(m["To"] == "dave@example.com" for m in auth_sink.messages)


def test_sink_stopped_is_dependency_unavailable(tmp_path: Path) -> None:
    sink = MailSink(tmp_path).start()
    mailer = _mailer(sink.env(), timeout=2)
    sink.stop()
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as caught:
        mailer.send("erin@example.com", "x", "x")
    assert caught.value.dependency == "smtp"
    assert time.monotonic() - started < 3
    sink.start()  # same port again
    try:
        mailer.send("erin@example.com", "back", "x")
        assert sink.wait_for(_to("erin@example.com"), timeout=5)["Subject"] == "back"
    finally:
        sink.stop()


def test_parse_smtp_url() -> None:
    plain = parse_smtp_url("smtp://mail.example.com")
    assert (plain.port, plain.implicit_tls, plain.starttls, plain.username) == (
        25, False, False, None)
    tls = parse_smtp_url("smtps://u%40x:p%3Aw@mail.example.com")
    assert (tls.port, tls.implicit_tls, tls.username, tls.password) == (
        465, True, "u@x", "p:w")
    assert "p:w" not in repr(tls)
    start = parse_smtp_url("smtp://mail.example.com:2525?starttls=1")
    assert (start.port, start.starttls) == (2525, True)
    for bad in ("http://mail.example.com", "smtp://", "smtps://h?starttls=1"):
        with pytest.raises(ValueError) as caught:
            parse_smtp_url(bad)
        assert "SMTP_URL" in str(caught.value)
