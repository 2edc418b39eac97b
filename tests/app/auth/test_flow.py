"""The whole account life, end to end: real worker, real SMTP sink, real Redis limits."""

from __future__ import annotations

import uuid

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from devstack.stack import LocalStack
from tests.support.mail import link_token, wait_for_mail
from tests.support.web import csrf_headers

pytestmark = pytest.mark.usefixtures("worker")
PASSWORD = "a sturdy passphrase 2026"


def _signup(client: FlaskClient, stack: LocalStack) -> str:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post("/api/v1/auth/signup", json={
        "company_name": "Flow Co", "name": "Owner", "email": email, "password": PASSWORD})
    assert response.status_code == 202 and response.get_json() == {}
    token = link_token(wait_for_mail(stack, email, "Confirm"), "verify-email")
    assert client.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 200
    again = client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400 and again.get_json()["code"] == "token_invalid"
    return email


def test_signup_verify_login_enrol_and_logout(app: Flask, stack: LocalStack) -> None:
    client = app.test_client()
    email = _signup(client, stack)

    login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    assert login.get_json() == {"status": "mfa_enrollment_required"}
    me = client.get("/api/v1/auth/me").get_json()
    assert me["session"] == "mfa_enrollment" and me["role"] == "admin"
    blocked = client.get("/api/v1/members")
    assert blocked.status_code == 403 and blocked.get_json()["code"] == "mfa_enrollment_required"

    enrol = client.post("/api/v1/auth/mfa/enroll", headers=csrf_headers(client))
    assert enrol.status_code == 200
    secret = enrol.get_json()["secret"]
    assert enrol.get_json()["otpauth_uri"].startswith("otpauth://totp/")
    confirm = client.post("/api/v1/auth/mfa/enroll/confirm", headers=csrf_headers(client),
                          json={"code": pyotp.TOTP(secret).now()})
    assert confirm.status_code == 200
    codes = confirm.get_json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    wait_for_mail(stack, email, "Two-factor")

    assert client.get("/api/v1/auth/me").get_json()["session"] == "full"
    assert client.get("/api/v1/members").status_code == 200

    sessions = client.get("/api/v1/auth/sessions").get_json()["items"]
    assert [s["current"] for s in sessions] == [True]

    assert client.post("/api/v1/auth/logout", headers=csrf_headers(client)).status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401

    # The next login asks for the code; a recovery code works once.
    client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert client.get("/api/v1/auth/me").get_json()["session"] == "mfa_pending"
    recovered = client.post("/api/v1/auth/mfa/verify", headers=csrf_headers(client),
                            json={"code": codes[0]})
    assert recovered.status_code == 200
    assert client.get("/api/v1/auth/me").get_json()["session"] == "full"


def test_password_reset_revokes_every_session(app: Flask, stack: LocalStack) -> None:
    client = app.test_client()
    email = _signup(client, stack)
    other = app.test_client()
    other.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert other.get("/api/v1/auth/me").status_code == 200

    assert client.post("/api/v1/auth/password/forgot", json={"email": email}).status_code == 202
    token = link_token(wait_for_mail(stack, email, "Reset"), "reset-password")
    weak = client.post("/api/v1/auth/password/reset",
                       json={"token": token, "password": "password1234"})
    assert weak.status_code == 400 and weak.get_json()["code"] == "weak_password"
    new_password = "another sturdy passphrase 7"
    reset = client.post("/api/v1/auth/password/reset",
                        json={"token": token, "password": new_password})
    assert reset.status_code == 200
    assert other.get("/api/v1/auth/me").status_code == 401
    wait_for_mail(stack, email, "password was changed")
    old = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    new = client.post("/api/v1/auth/login", json={"email": email, "password": new_password})
    assert new.status_code == 200


def test_signup_with_a_known_email_looks_the_same(app: Flask, stack: LocalStack) -> None:
    client = app.test_client()
    email = _signup(client, stack)
    again = client.post("/api/v1/auth/signup", json={
        "company_name": "Other", "name": "Other", "email": email, "password": PASSWORD})
    assert again.status_code == 202 and again.get_json() == {}


def test_unverified_login_is_403_only_after_a_correct_password(app: Flask) -> None:
    client = app.test_client()
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    client.post("/api/v1/auth/signup", json={
        "company_name": "Unverified", "name": "N", "email": email, "password": PASSWORD})
    wrong = client.post("/api/v1/auth/login", json={"email": email, "password": "nope" * 4})
    assert wrong.status_code == 401 and wrong.get_json()["code"] == "invalid_credentials"
    right = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert right.status_code == 403 and right.get_json()["code"] == "email_not_verified"


def test_invitation_accept_creates_a_member(app: Flask, stack: LocalStack) -> None:
    from tests.support.factories import make_member, make_session, make_tenant

    tenant = make_tenant()
    admin = make_session(make_member(tenant))
    client = admin.attach(app.test_client())
    invitee = f"invitee-{uuid.uuid4().hex[:8]}@example.com"
    created = client.post("/api/v1/invitations", headers={"X-CSRF-Token": admin.csrf},
                          json={"email": invitee, "role": "viewonly"})
    assert created.status_code == 201, created.get_json()
    token = link_token(wait_for_mail(stack, invitee, "invited"), "accept-invitation")
    accepted = app.test_client().post("/api/v1/invitations/accept", json={
        "token": token, "name": "Vee", "password": PASSWORD})
    assert accepted.status_code == 200
    again = app.test_client().post("/api/v1/invitations/accept", json={
        "token": token, "name": "Vee", "password": PASSWORD})
    assert again.status_code == 400 and again.get_json()["code"] == "token_invalid"
    newcomer = app.test_client()
    login = newcomer.post("/api/v1/auth/login", json={"email": invitee, "password": PASSWORD})
    assert login.get_json() == {"status": "ok"}  # viewonly needs no MFA
    roles = {m["email"]: m["role"] for m in client.get("/api/v1/members").get_json()["items"]}
    assert roles[invitee] == "viewonly"
