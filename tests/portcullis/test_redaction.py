"""One scrubber for every outlet: keys and secret-shaped values are masked."""

from __future__ import annotations

import logging

import pytest

from portcullis.observability import _before_send, _ScrubFilter
from portcullis.redaction import REDACTED, register_secrets, scrub, scrub_text


@pytest.mark.parametrize("key", ["password", "new_password", "token", "secret", "code",
                                 "totp_secret", "recovery_codes", "Authorization", "cookie",
                                 "tax_id", "api_key", "csrf"])
def test_sensitive_keys_are_masked(key: str) -> None:
    assert scrub({key: "value", "keep": 1}) == {key: REDACTED, "keep": 1}


def test_nested_and_listed_values_are_scrubbed() -> None:
    data = {"outer": [{"password": "x"}, {"note": "key pck_" + "A" * 40}]}
    assert scrub(data) == {"outer": [{"password": REDACTED}, {"note": f"key {REDACTED}"}]}


@pytest.mark.parametrize("text", [
    "Bearer pck_0123456789abcdefghijklmnop",
    "op pco_0123456789abcdefghijklmnop",
    "cookie eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
    "webhook whsec_c2VjcmV0c2VjcmV0c2VjcmV0",
    "redis://user:hunter2@redis:6379/0",
])
def test_secret_shaped_values_are_masked(text: str) -> None:
    scrubbed = scrub_text(text)
    assert REDACTED in scrubbed
    for secret in ("pck_0123", "pco_0123", "eyJzdWIi", "c2VjcmV0c2Vj", "hunter2"):
        assert secret not in scrubbed


def test_registered_configuration_secrets_are_masked() -> None:
    register_secrets(["configured-secret-value-42"])
    assert scrub_text("oops configured-secret-value-42 leaked") == f"oops {REDACTED} leaked"


def test_log_records_are_scrubbed() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1,
                               "login with %s", ("pck_" + "z" * 30,), None)
    _ScrubFilter().filter(record)
    assert "pck_zzz" not in record.getMessage()


def test_sentry_events_lose_secrets_cookies_and_bodies() -> None:
    event = {"request": {"cookies": {"portcullis_session": "eyJ..."}, "data": {"password": "p"},
                         "headers": {"Authorization": "Bearer pck_" + "k" * 30}},
             "extra": {"token": "t"}}
    cleaned = _before_send(event, None)
    assert "cookies" not in cleaned["request"] and "data" not in cleaned["request"]
    assert cleaned["request"]["headers"]["Authorization"] == REDACTED
    assert cleaned["extra"]["token"] == REDACTED


def test_account_label_keeps_addresses_and_digests_anything_else() -> None:
    from portcullis.redaction import account_label

    assert account_label(" Ada@Example.com ") == "ada@example.com"
    label = account_label("my secret password 42")
    assert label.startswith("digest:") and "secret" not in label


def test_password_typed_as_email_never_reaches_the_audit_log(client: object) -> None:
    from sqlalchemy import select

    from portcullis.audit.models import AuditEvent
    from portcullis.db import system_session

    typed = "Sup3r-Secret-Typed-In-The-Wrong-Box"
    response = client.post("/api/v1/auth/login", json={"email": typed, "password": "x" * 12},  # type: ignore[attr-defined]
                           environ_base={"REMOTE_ADDR": "198.51.100.201"})
    assert response.status_code == 401
    with system_session() as db:
        details = db.scalars(select(AuditEvent.details).where(
            AuditEvent.tenant_id.is_(None), AuditEvent.action == "auth.login_failed")).all()
    assert details and all(typed.lower() not in str(d).lower() for d in details)


def test_logged_tracebacks_are_plain_and_scrubbed() -> None:
    import io

    from portcullis.observability import configure_logging

    configure_logging()
    handler = next(h for h in logging.getLogger().handlers
                   if isinstance(h, logging.StreamHandler) and h.filters)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    secret_local = "local-value-" + "q" * 20  # noqa: F841 - must not be printed
    try:
        raise RuntimeError("failed with key pck_" + "s" * 32)
    except RuntimeError:
        logging.getLogger("test").exception("boom")
    finally:
        handler.setStream(previous)
    err = stream.getvalue()
    assert "boom" in err and "RuntimeError" in err
    assert "pck_sss" not in err
    assert "local-value-" not in err  # no rich locals


@pytest.mark.parametrize("text", [
    "GET /reset-password?token={t} HTTP/1.1",
    "http://portcullis.test/verify-email?lang=en&token={t}",
    "/accept-invitation?%74oken={t}",
    "/x?Code={t}&y=1", "/x?password={t}", "/x?api_key={t}", "/x?secret={t}",
])
def test_credentials_in_query_strings_are_masked(text: str) -> None:
    token = "tok3n-" + "q" * 30
    scrubbed = scrub_text(text.format(t=token))
    assert token not in scrubbed and REDACTED in scrubbed


def test_harmless_query_parameters_are_kept() -> None:
    assert scrub_text("/api/v1/buckets?limit=5&cursor=abc") == "/api/v1/buckets?limit=5&cursor=abc"


@pytest.mark.parametrize("path", ["/s/{t}", "/S/{t}", "/%73/{t}", "/%53/{t}", "/s%2F{t}",
                                  "/s%2f{t}", "/%2573%252F{t}"])
def test_share_paths_are_masked_in_any_case_or_encoding(path: str) -> None:
    token = "sharetok-" + "z" * 30
    scrubbed = scrub_text(f"GET {path.format(t=token)} HTTP/1.1")
    assert token not in scrubbed and "/s/<redacted>" in scrubbed


def test_sentry_query_strings_lose_their_tokens() -> None:
    token = "tok3n-" + "s" * 30
    event = {"request": {"url": "http://portcullis.test/reset-password",
                         "query_string": f"token={token}&lang=en",
                         "headers": {"Referer": f"http://portcullis.test/verify-email?token={token}"}}}
    cleaned = _before_send(event, None)
    assert token not in str(cleaned)
    assert cleaned["request"]["query_string"] == f"token={REDACTED}&lang=en"
