"""What Sentry would send: a real client, set up by ``configure_sentry``, recording its
envelopes. A crash inside a view that holds a password must not ship the password, the
email token, the cookies, the CSRF token or the Authorization header."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from portcullis import observability
from portcullis.accounts.models import Role
from portcullis.redaction import REDACTED
from tests.support.factories import make_member, make_session, make_tenant
from tests.support.sentry import assert_absent, recording_sentry
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("stack")


@dataclass(frozen=True)
class Case:
    path: str
    module: str  # the domain module the view calls into
    function: str
    body: Callable[[str, str], dict[str, str]]  # (password, token) -> request body


CASES = {
    "login": Case("/api/v1/auth/login", "portcullis.accounts.login", "login",
                  lambda pw, _t: {"email": "ada@example.com", "password": pw}),
    "password_reset": Case("/api/v1/auth/password/reset", "portcullis.accounts.login",
                           "reset_password", lambda pw, t: {"token": t, "password": pw}),
    "invitation_accept": Case("/api/v1/invitations/accept", "portcullis.accounts.members",
                              "accept_invitation",
                              lambda pw, t: {"token": t, "name": "Ada", "password": pw}),
    "signup": Case("/api/v1/auth/signup", "portcullis.accounts.signup", "signup",
                   lambda pw, _t: {"company_name": "Acme", "name": "Ada",
                                   "email": "ada@example.com", "password": pw}),
}


def _frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [frame for section in ("exception", "threads")
            for value in (event.get(section) or {}).get("values", [])
            for frame in (value.get("stacktrace") or {}).get("frames", [])]


@pytest.mark.parametrize("name", list(CASES))
def test_a_crash_in_a_credential_view_ships_no_credential(
        app: Flask, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    import importlib

    case = CASES[name]
    password = "Pw-" + secrets.token_urlsafe(18)
    token = secrets.token_urlsafe(32)
    authorization = "Bearer opaque-" + secrets.token_hex(16)
    logged_in = make_session(make_member(make_tenant(), Role.viewonly))

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the database fell over mid-request")

    monkeypatch.setattr(importlib.import_module(case.module), case.function, crash)
    raw: list[dict[str, Any]] = []  # what the SDK built, before our before_send saw it
    real_before_send = observability._before_send

    def spy(event: Any, hint: Any) -> Any:
        raw.append(copy.deepcopy(event))
        return real_before_send(event, hint)

    monkeypatch.setattr(observability, "_before_send", spy)
    client = make_client(app, logged_in, ip=f"198.51.100.{10 + list(CASES).index(name)}")
    with recording_sentry(monkeypatch) as sentry:
        response = client.post(case.path, json=case.body(password, token), headers={
            "X-CSRF-Token": logged_in.csrf, "Authorization": authorization})
    assert response.status_code == 500, response.get_data(as_text=True)
    assert response.get_json()["code"] == "internal_error"

    assert "RuntimeError" in sentry.exception_types(), "the crash itself must be reported"
    assert raw, "before_send never ran"
    # Locals are off at the source, not only stripped afterwards.
    assert not [f for event in raw for f in _frames(event) if "vars" in f]
    assert not [f for event in sentry.events() for f in _frames(event) if "vars" in f]
    assert_absent(sentry.wire(), {"password": password, "email token": token,
                                  "session cookie": logged_in.cookie,
                                  "csrf token": logged_in.csrf,
                                  "authorization": authorization.split(" ", 1)[1]})


def test_before_send_drops_frame_locals_and_request_secrets() -> None:
    """Defence in depth: even an SDK configured with locals ships none of them."""
    password = "hunter2-" + secrets.token_hex(8)
    frame = {"function": "login",
             "vars": {"body": f"LoginIn(email='a@b.c', password='{password}')"}}
    event = {
        "exception": {"values": [{"type": "RuntimeError", "stacktrace": {"frames": [frame]}},
                                 {"type": "KeyError", "stacktrace": {"frames": [dict(frame)]}}]},
        "threads": {"values": [{"stacktrace": {"frames": [dict(frame)]}}]},
        "request": {"url": "http://x/api", "data": {"password": password},
                    "cookies": {"portcullis_csrf": "c"}, "env": {"REMOTE_ADDR": "1.2.3.4"},
                    "headers": {"Cookie": "portcullis_csrf=c", "X-CSRF-Token": "c",
                                "Authorization": "Bearer x", "Accept": "*/*"}},
    }
    cleaned = observability._before_send(event, None)
    assert password not in str(cleaned)
    assert not _frames(cleaned) or all("vars" not in f for f in _frames(cleaned))
    assert len(_frames(cleaned)) == 3 and _frames(cleaned)[0]["function"] == "login"
    assert set(cleaned["request"]) == {"url", "headers"}
    headers = cleaned["request"]["headers"]
    assert headers["Cookie"] == headers["X-CSRF-Token"] == headers["Authorization"] == REDACTED
    assert headers["Accept"] == "*/*"


def test_before_send_masks_share_link_paths_everywhere() -> None:
    """A share token is a credential: the request URL, the transaction name, breadcrumbs
    and log messages inside an event lose it."""
    token = secrets.token_urlsafe(32)
    event = {
        "transaction": f"/s/{token}",
        "request": {"url": f"http://portcullis.test/s/{token}", "query_string": "",
                    "headers": {"Referer": f"https://portal.example/s/{token}"}},
        "breadcrumbs": {"values": [{"category": "log", "message": f"GET /s/{token} 200"},
                                   {"category": "httplib",
                                    "data": {"url": f"http://portcullis.test/s/{token}"}}]},
        "logentry": {"message": "Error handling request %s", "params": [f"/s/{token}"]},
    }
    cleaned = observability._before_send(event, None)
    assert token not in str(cleaned)
    assert cleaned["request"]["url"] == "http://portcullis.test/s/<redacted>"
    assert cleaned["transaction"] == "/s/<redacted>"


def test_a_crash_while_saving_a_billing_profile_ships_no_tax_id(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    admin = make_session(make_member(make_tenant(), Role.admin))
    # A valid CNPJ, typed formatted as a person would; built here so that this file's own
    # source (which the event's frames quote) never holds it whole.
    digits = "".join(["11222", "333", "0001", "81"])
    typed = f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the database fell over mid-request")

    monkeypatch.setattr(importlib.import_module("portcullis.billing.service"), "put_profile",
                        crash)
    client = make_client(app, admin, ip="198.51.100.90")
    with recording_sentry(monkeypatch) as sentry:
        response = client.put("/api/v1/billing/profile", headers={"X-CSRF-Token": admin.csrf},
                              json={"legal_name": "Acme Ltda", "email": "billing@example.com",
                                    "tax_id_type": "cnpj", "tax_id": typed,
                                    "address": {"line1": "Av. Paulista, 1000", "city": "SP",
                                                "postal_code": "01310-100", "country": "BR"}})
    assert response.status_code == 500, response.get_data(as_text=True)
    assert "RuntimeError" in sentry.exception_types()
    assert_absent(sentry.wire(), {"tax id": digits, "typed tax id": typed,
                                  "session cookie": admin.cookie, "csrf token": admin.csrf})
