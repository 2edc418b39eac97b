"""Rotating JWT_SECRET, SESSION_SECRET and SIEM_WEBHOOK_SECRET logs nobody out (API.md,
Configuration): while a ``*_PREVIOUS`` value is set, what the old value signed or sealed
(session cookies, CSRF tokens, TOTP seeds, sealed job results) stays valid and everything
new uses the current value; ``portcullis secrets reencrypt`` re-seals every stored value
under the current key, after which the previous value can go; during a webhook secret's
rotation each webhook carries one signature per secret.

Each test rotates from the session's own settings (the test defaults) to fresh random
secrets through the environment (``settings_env``, restored afterwards), with apps built
for the rotated settings. Every rule is also shown failing without its ``*_PREVIOUS`` value.
The reencrypt test seals the whole database back under the session's key when it ends.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Text, select, update

from config import get_settings
from devstack.siem_receiver import SiemReceiver, verify_signature
from portcullis import secretbox
from portcullis.accounts import tokens
from portcullis.accounts.models import Role, User
from portcullis.alerts import service as alerts
from portcullis.alerts.models import Alert, AlertStatus
from portcullis.cli import main
from portcullis.clients.siem import SiemClient, SiemRejected
from portcullis.db import system_session
from portcullis.jobs import service as jobs
from portcullis.jobs.models import Job, JobStatus
from portcullis.secretbox import Unsealable, is_current, open_sealed, reseal, seal
from tests.support.factories import (
    Member,
    make_job,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import app_with, csrf_headers, fresh_ip, log_in, make_client, settings_env

pytestmark = pytest.mark.usefixtures("stack")

ME = "/api/v1/auth/me"
MFA_VERIFY = "/api/v1/auth/mfa/verify"
JOB_RESULT = b"job-result"
EXPORT_URL = "https://portcullis.test/s/export-link-0123456789"
SFTP_PASSWORD = "sftp-password-shown-once-0123456789"


def _new_secret() -> str:
    return secrets.token_urlsafe(48)


def _new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _value(name: str) -> str:
    return str(getattr(get_settings(), name).get_secret_value())


class Rotation:
    """The session's JWT and session secrets (``old``) and fresh ones (``new``)."""

    def __init__(self) -> None:
        self.old_jwt, self.old_session = _value("JWT_SECRET"), _value("SESSION_SECRET")
        self.new_jwt, self.new_session = _new_secret(), _new_secret()

    def during(self) -> dict[str, str]:
        """The new values current, the old ones as ``*_PREVIOUS``."""
        return {"JWT_SECRET": self.new_jwt, "JWT_SECRET_PREVIOUS": self.old_jwt,
                "SESSION_SECRET": self.new_session,
                "SESSION_SECRET_PREVIOUS": self.old_session}

    def after(self) -> dict[str, str]:
        """The new values only: the previous ones removed (set empty, as an unset value)."""
        return {"JWT_SECRET": self.new_jwt, "JWT_SECRET_PREVIOUS": "",
                "SESSION_SECRET": self.new_session, "SESSION_SECRET_PREVIOUS": ""}

    def old_only(self) -> dict[str, str]:
        return {"JWT_SECRET": self.old_jwt, "JWT_SECRET_PREVIOUS": "",
                "SESSION_SECRET": self.old_session, "SESSION_SECRET_PREVIOUS": ""}


@pytest.fixture
def rotation() -> Iterator[Rotation]:
    before = {name: os.environ.get(name) for name in (
        "JWT_SECRET", "JWT_SECRET_PREVIOUS", "SESSION_SECRET", "SESSION_SECRET_PREVIOUS",
        "SIEM_WEBHOOK_URL", "SIEM_WEBHOOK_SECRET", "SIEM_WEBHOOK_SECRET_PREVIOUS")}
    yield Rotation()
    # Nothing a test did is left in the environment or in the settings others read.
    assert {name: os.environ.get(name) for name in before} == before
    get_settings.cache_clear()


# --- helpers -----------------------------------------------------------------------------


def _forget_used_totp_steps(member: Member) -> None:
    """As if the steps used so far were long past: each login below may use a current
    code (replay protection is not what these tests are about)."""
    with system_session() as db:
        db.execute(update(User).where(User.id == member.user_id).values(totp_last_step=None))


def _totp_login(app: Flask, member: Member, ip: str | None = None) -> FlaskClient:
    """A new sign-in with the password then a current TOTP code, as a person would."""
    _forget_used_totp_steps(member)
    client = make_client(app, ip=ip)
    response = log_in(client, member.email, member.password)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "mfa_required"}
    verified = client.post(MFA_VERIFY, json={"code": member.totp_code()},
                           headers=csrf_headers(client))
    assert verified.status_code == 200, verified.get_json()
    me = client.get(ME)
    assert me.status_code == 200, me.get_json()
    assert me.get_json()["session"] == "full"
    assert me.get_json()["user"]["id"] == str(member.user_id)
    return client


def _cookie(client: FlaskClient, name: str) -> str:
    cookie = client.get_cookie(name)
    assert cookie is not None, name
    return cookie.value


def _sealed_values() -> list[tuple[str, bytes, bytes]]:
    """Every sealed value in the database: (where, purpose, ciphertext)."""
    found: list[tuple[str, bytes, bytes]] = []
    with system_session() as db:
        for user_id, secret, pending in db.execute(
                select(User.id, User.totp_secret, User.totp_pending_secret)):
            for column, value in (("totp_secret", secret), ("totp_pending_secret", pending)):
                if value is not None:
                    found.append((f"user {user_id} {column}", b"totp", bytes(value)))
        for job_id, result in db.execute(select(Job.id, Job.result).where(
                Job.result.cast(Text).contains('"$sealed"'))):
            for box in _boxes(result):
                found.append((f"job {job_id}", JOB_RESULT, base64.b64decode(box)))
    return found


def _boxes(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "$sealed" in value:
            yield value["$sealed"]
            return
        for item in value.values():
            yield from _boxes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _boxes(item)


def _stored_seed(member: Member) -> bytes:
    with system_session() as db:
        user = db.get(User, member.user_id)
        assert user is not None and user.totp_secret is not None
        return bytes(user.totp_secret)


def _stored_result(job_id: uuid.UUID) -> dict[str, Any]:
    with system_session() as db:
        job = db.get(Job, job_id)
        assert job is not None and job.result is not None
        return dict(job.result)


def _reencrypt() -> str:
    result = CliRunner().invoke(main, ["secrets", "reencrypt"])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _legacy_seal(secret: str, plaintext: str, purpose: bytes) -> bytes:
    """A ciphertext as sealed before the key ring: the nonce first, no key id."""
    key = secretbox._derive(secret, purpose)
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), purpose)


# --- (a) sessions and CSRF ---------------------------------------------------------------


def test_rotating_jwt_and_session_secrets_logs_nobody_out(rotation: Rotation) -> None:
    member = make_member(make_tenant("Rotation Co"), Role.admin)
    assert member.totp_secret is not None  # TOTP enrolled
    signed_in = make_session(member)  # cookie and CSRF token made with the old secrets
    spare = make_session(member)  # another session of theirs, for a CSRF-protected write
    ip = fresh_ip()

    # Without the previous values, the old cookie is refused: a rotation would log out.
    with app_with(**rotation.after()) as app:
        assert make_client(app, signed_in, ip=ip).get(ME).status_code == 401
    # With the previous JWT secret only, the session lives but its old CSRF token fails.
    with app_with(**(rotation.after() | {"JWT_SECRET_PREVIOUS": rotation.old_jwt})) as app:
        client = make_client(app, signed_in, ip=ip)
        assert client.get(ME).status_code == 200
        refused = client.delete(f"/api/v1/auth/sessions/{spare.session_id}",
                                headers=csrf_headers(signed_in))
        assert refused.status_code == 403, refused.get_json()
        assert refused.get_json()["code"] == "csrf_failed"

    with app_with(**rotation.during()) as app:
        # The live session: its cookie still signs in, its old CSRF token still writes.
        client = make_client(app, signed_in, ip=ip)
        me = client.get(ME)
        assert me.status_code == 200, me.get_json()
        assert me.get_json()["user"]["id"] == str(member.user_id)
        assert me.get_json()["session"] == "full"
        revoked = client.delete(f"/api/v1/auth/sessions/{spare.session_id}",
                                headers=csrf_headers(signed_in))
        assert revoked.status_code == 204, revoked.get_json()
        assert make_client(app, spare).get(ME).status_code == 401  # the write happened
        assert client.get(ME).status_code == 200

        # A new sign-in with the password and a TOTP code (the seed sealed under the old
        # SESSION_SECRET) works, and its cookies are made with the new secrets.
        fresh = _totp_login(app, member)
        token, csrf = _cookie(fresh, "portcullis_session"), _cookie(fresh, "portcullis_csrf")
        claims = tokens.verify(token)
        assert claims is not None and claims.user_id == member.user_id
        session_id = claims.session_id
        assert tokens.csrf_matches(session_id, csrf, csrf)
        written = fresh.delete(f"/api/v1/auth/sessions/{signed_in.session_id}",
                               headers=csrf_headers(fresh))
        assert written.status_code == 204, written.get_json()

    with settings_env(**rotation.old_only()):
        assert tokens.verify(token) is None  # not signed with the old JWT secret
        assert not tokens.csrf_matches(session_id, csrf, csrf)
    with settings_env(**rotation.after()):
        assert tokens.verify(token) == claims  # signed with the new one
        assert tokens.csrf_matches(session_id, csrf, csrf)


def test_a_token_signed_with_a_secret_no_longer_configured_is_refused(
        rotation: Rotation) -> None:
    """The previous secret verifies only while it is set; any other secret never does."""
    member = make_member(make_tenant("Stale Co"), Role.staff, mfa=False)
    old = make_session(member)
    with settings_env(**rotation.during()):
        assert tokens.verify(old.cookie) is not None
        assert tokens.csrf_matches(old.session_id, old.csrf, old.csrf)
    unrelated = _new_secret()
    with settings_env(**(rotation.during() | {"JWT_SECRET_PREVIOUS": unrelated,
                                              "SESSION_SECRET_PREVIOUS": unrelated})):
        assert tokens.verify(old.cookie) is None
        assert not tokens.csrf_matches(old.session_id, old.csrf, old.csrf)
    with settings_env(**rotation.after()):
        assert tokens.verify(old.cookie) is None
        assert not tokens.csrf_matches(old.session_id, old.csrf, old.csrf)


def test_a_session_verified_under_the_previous_secret_ends_when_it_is_removed(
        rotation: Rotation) -> None:
    """The verified-token cache of the request loader is keyed by both secrets: a cookie
    verified (and cached) during the rotation is refused once the previous one is gone."""
    member = make_member(make_tenant("Cached Co"), Role.staff, mfa=False)
    old = make_session(member)
    ip = fresh_ip()
    with app_with(**rotation.during()) as app:
        client = make_client(app, old, ip=ip)
        assert client.get(ME).status_code == 200
        assert client.get(ME).status_code == 200  # served from the cache now
    with app_with(**rotation.after()) as app:
        assert make_client(app, old, ip=ip).get(ME).status_code == 401


# --- (b) the key ring --------------------------------------------------------------------


@pytest.mark.parametrize("purpose", [b"totp", JOB_RESULT])
def test_a_value_sealed_under_the_previous_key_opens_with_the_ring(
        rotation: Rotation, purpose: bytes) -> None:
    old = seal("a small secret", purpose)
    assert old.startswith(secretbox._MARK) and is_current(old, purpose)
    old_id = old[4:12]
    assert seal("another", purpose)[4:12] == old_id  # the id names the key, not the value

    with settings_env(**rotation.during()):
        assert open_sealed(old, purpose) == "a small secret"
        assert not is_current(old, purpose)
        new = seal("a small secret", purpose)  # new values: sealed under the current key
        assert new.startswith(secretbox._MARK) and new[4:12] != old_id
        assert is_current(new, purpose)
        again = reseal(old, purpose)
        assert is_current(again, purpose) and again[4:12] == new[4:12]
        assert open_sealed(again, purpose) == "a small secret"
        with pytest.raises(Unsealable):  # a tampered value under a known key
            open_sealed(old[:-1] + bytes([old[-1] ^ 1]), purpose)

    with settings_env(**rotation.after()):  # the previous key gone: the old value is lost
        with pytest.raises(Unsealable):
            open_sealed(old, purpose)
        assert open_sealed(again, purpose) == "a small secret"
    # and the old key never opens the new values
    with settings_env(**rotation.old_only()), pytest.raises(Unsealable):
        open_sealed(again, purpose)


def test_a_value_sealed_before_the_ring_opens_with_either_key(rotation: Rotation) -> None:
    legacy_old = _legacy_seal(rotation.old_session, "legacy seed", b"totp")
    legacy_new = _legacy_seal(rotation.new_session, "legacy too", b"totp")
    with settings_env(**rotation.during()):
        assert open_sealed(legacy_old) == "legacy seed"
        assert open_sealed(legacy_new) == "legacy too"
        assert not is_current(legacy_old) and not is_current(legacy_new)
        resealed = reseal(legacy_old)
        assert resealed.startswith(secretbox._MARK) and is_current(resealed)
        assert open_sealed(resealed) == "legacy seed"
        assert is_current(reseal(legacy_new))
    with settings_env(**rotation.after()):
        with pytest.raises(Unsealable):
            open_sealed(legacy_old)
        assert open_sealed(resealed) == "legacy seed"


# --- (b) portcullis secrets reencrypt ----------------------------------------------------


@pytest.fixture
def sealed_back(rotation: Rotation) -> Iterator[None]:
    """Afterwards, everything in the database sealed again under the session's own key,
    so the tests after this one find the TOTP seeds and job results they can open."""
    yield
    with settings_env(**(rotation.old_only() | {
            "SESSION_SECRET_PREVIOUS": rotation.new_session})):
        _reencrypt()
    for where, purpose, value in _sealed_values():
        assert is_current(value, purpose), where


@pytest.mark.usefixtures("sealed_back")
def test_reencrypt_then_removing_the_previous_values_keeps_everything_working(
        rotation: Rotation) -> None:
    tenant = make_tenant("Reencrypt Co")
    member = make_member(tenant, Role.admin)
    assert member.totp_secret is not None
    pending = make_member(tenant, Role.manager, mfa=False)
    with system_session() as db:  # an enrolment started, not yet confirmed
        db.execute(update(User).where(User.id == pending.user_id)
                   .values(totp_pending_secret=seal("PENDINGSEED234567")))
    legacy_user = make_member(tenant, Role.manager, mfa=False)
    legacy_seed = "LEGACYSEED2345672345"
    with system_session() as db:  # a seed sealed before the key ring named its key
        db.execute(update(User).where(User.id == legacy_user.user_id).values(
            totp_secret=_legacy_seal(rotation.old_session, legacy_seed, b"totp"),
            totp_enabled_at=datetime.now(UTC)))
    # Results as the export and SFTP jobs write them: a link, a password shown once.
    export = make_job(member, kind="audit_export", status=JobStatus.succeeded,
                      result={"url": jobs.seal_result(EXPORT_URL), "rows": 3,
                              "format": "csv", "bytes": 120})
    sftp = make_job(member, kind="sftp_provision", status=JobStatus.succeeded,
                    result={"username": "pc-rotation",
                            "password": jobs.seal_result(SFTP_PASSWORD, once=True)})
    old_seed = _stored_seed(member)

    with settings_env(**rotation.during()):
        assert not is_current(old_seed)
        assert any(not is_current(v, p) for _, p, v in _sealed_values())
        first = _reencrypt()
        assert "re-sealed the second factors of" in first
        everything = _sealed_values()
        stale = [where for where, purpose, value in everything
                 if not is_current(value, purpose)]
        assert stale == []
        mine = {where for where, _, _ in everything}
        assert {f"user {member.user_id} totp_secret",
                f"user {pending.user_id} totp_pending_secret",
                f"user {legacy_user.user_id} totp_secret",
                f"job {export}", f"job {sftp}"} <= mine
        after_first = sorted(everything)
        # Run again: nothing is left to do, and nothing changes.
        second = _reencrypt()
        assert "of 0 user(s) and 0 job result(s)" in second, second
        assert sorted(_sealed_values()) == after_first

    with app_with(**rotation.after()) as app:  # the previous values removed
        # Every stored value opens under the new key alone.
        for _where, purpose, value in _sealed_values():
            open_sealed(value, purpose)
        assert open_sealed(_stored_seed(legacy_user)) == legacy_seed
        with system_session() as db:
            user = db.get(User, pending.user_id)
            assert user is not None and user.totp_pending_secret is not None
            assert open_sealed(user.totp_pending_secret) == "PENDINGSEED234567"
        # TOTP sign-in still works, and the sealed job results read back through the API.
        client = _totp_login(app, member)
        read = client.get(f"/api/v1/jobs/{export}")
        assert read.status_code == 200, read.get_json()
        assert read.get_json()["result"] == {"url": EXPORT_URL, "rows": 3, "format": "csv",
                                             "bytes": 120}
        read = client.get(f"/api/v1/jobs/{sftp}")
        assert read.status_code == 200, read.get_json()
        assert read.get_json()["result"] == {"username": "pc-rotation",
                                             "password": SFTP_PASSWORD}
        assert client.get(f"/api/v1/jobs/{sftp}").get_json()["result"]["password"] is None
        assert client.get(f"/api/v1/jobs/{export}").get_json()["result"]["url"] == EXPORT_URL


@pytest.mark.usefixtures("sealed_back")
def test_reencrypt_reports_what_no_key_opens_and_reseals_the_rest(rotation: Rotation) -> None:
    """A seed sealed under a secret no longer configured stops nothing: the rest is
    re-sealed, the command names how many it could not open and exits 1."""
    tenant = make_tenant("Unreadable Co")
    lost = make_member(tenant, Role.manager, mfa=False)
    kept = make_member(tenant, Role.admin)
    with system_session() as db:
        db.execute(update(User).where(User.id == lost.user_id).values(
            totp_secret=_legacy_seal(_new_secret(), "LOSTSEED23456723", b"totp"),
            totp_enabled_at=datetime.now(UTC)))
    try:
        with settings_env(**rotation.during()):
            result = CliRunner().invoke(main, ["secrets", "reencrypt"])
            assert result.exit_code == 1, result.output
            assert "Traceback" not in result.output
            assert "no configured key opens 1 TOTP seed(s) and 0 job result(s)" in (
                result.output), result.output
            assert is_current(_stored_seed(kept))
    finally:
        with system_session() as db:  # the other tests' reencrypt runs must open everything
            db.execute(update(User).where(User.id == lost.user_id)
                       .values(totp_secret=None, totp_enabled_at=None))


def test_without_reencrypt_removing_the_previous_value_loses_what_it_sealed(
        rotation: Rotation) -> None:
    """Why reencrypt must run first: the old key alone opens what it sealed."""
    member = make_member(make_tenant("Too Soon Co"), Role.admin)
    export = make_job(member, status=JobStatus.succeeded,
                      result={"url": jobs.seal_result(EXPORT_URL)})
    with settings_env(**rotation.after()):
        with pytest.raises(Unsealable):
            open_sealed(_stored_seed(member))
        box = _stored_result(export)["url"]["$sealed"]
        with pytest.raises(Unsealable):
            open_sealed(base64.b64decode(box), JOB_RESULT)
    with settings_env(**rotation.during()):  # with the previous value back, nothing is lost
        assert open_sealed(_stored_seed(member)) == member.totp_secret


# --- (c) SIEM webhooks -------------------------------------------------------------------


def _pending_alert(tenant_id: uuid.UUID) -> uuid.UUID:
    """An alert raised and not yet delivered (an outbox row, no task sent for it)."""
    alert_id = uuid.uuid4()
    now = datetime.now(UTC)
    payload = {"id": str(alert_id), "type": "alert.new_ip",
               "occurred_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "tenant_id": str(tenant_id), "severity": "warning", "summary": "rotation",
               "actor": {"type": "system", "id": None}, "ip": None, "details": {}}
    with system_session() as db:
        db.add(Alert(id=alert_id, tenant_id=tenant_id, type=payload["type"],
                     severity="warning", payload=payload, status=AlertStatus.pending,
                     attempts=0, next_attempt_at=now, created_at=now))
    return alert_id


def _signatures(header: str) -> list[str]:
    parts = header.split(" ")
    assert all(part.startswith("v1,") for part in parts), header
    return parts


@pytest.fixture
def siem(stack: Any) -> SiemReceiver:
    """The stack's receiver: it verifies with the session's (old) secret."""
    receiver: SiemReceiver = stack["siem"]
    return receiver


@pytest.fixture
def local_receiver(tmp_path: Path) -> Iterator[SiemReceiver]:
    """A receiver that verifies with the new secret only (the SIEM already switched)."""
    receiver = SiemReceiver(tmp_path / "siem", _new_webhook_secret()).start()
    yield receiver
    receiver.stop()


def test_a_pending_alert_is_accepted_by_a_receiver_verifying_with_either_secret(
        rotation: Rotation, siem: SiemReceiver, local_receiver: SiemReceiver) -> None:
    old = _value("SIEM_WEBHOOK_SECRET")
    assert old == siem.secret
    new = local_receiver.secret
    tenant = make_tenant("Webhook Co")
    to_old, to_new = _pending_alert(tenant), _pending_alert(tenant)

    rotated = {"SIEM_WEBHOOK_SECRET": new, "SIEM_WEBHOOK_SECRET_PREVIOUS": old}
    with settings_env(**rotated):  # the receiver not yet told of the new secret
        assert alerts.deliver(to_old) == "delivered"
    got = siem.wait_for(lambda d: d.id == str(to_old), timeout=10)
    assert got.verified and got.status == 204
    with settings_env(**(rotated | {"SIEM_WEBHOOK_URL": local_receiver.url})):
        assert alerts.deliver(to_new) == "delivered"  # ... and one that was
    got_new = local_receiver.wait_for(lambda d: d.id == str(to_new), timeout=10)
    assert got_new.verified and got_new.status == 204

    for delivery in (got, got_new):
        header = delivery.headers["webhook-signature"]
        first, second = _signatures(header)
        signed = (delivery.id, delivery.timestamp, delivery.raw)
        assert verify_signature(new, *signed, first)  # the current secret's first
        assert not verify_signature(old, *signed, first)
        assert verify_signature(old, *signed, second)
        assert not verify_signature(new, *signed, second)
    for alert_id in (to_old, to_new):
        with system_session() as db:
            alert = db.get(Alert, alert_id)
            assert alert is not None and alert.status == AlertStatus.delivered


def test_without_a_previous_webhook_secret_only_the_current_one_signs(
        rotation: Rotation, siem: SiemReceiver, local_receiver: SiemReceiver) -> None:
    old, new = siem.secret, local_receiver.secret
    event = {"id": "evt_rotation", "type": "alert.new_ip", "severity": "warning"}
    msg_id = f"msg_{uuid.uuid4().hex}"

    # Rotated, the old value dropped: a receiver still verifying with the old one refuses.
    with settings_env(SIEM_WEBHOOK_SECRET=new), \
            SiemClient.from_settings(get_settings(), timeout=5) as client, \
            pytest.raises(SiemRejected) as refused:
        client.send(msg_id, event)
    assert refused.value.status == 401
    attempt = siem.wait_for(lambda d: d.id == msg_id, timeout=10, attempts=True)
    assert not attempt.verified
    [only] = _signatures(attempt.headers["webhook-signature"])
    assert verify_signature(new, attempt.id, attempt.timestamp, attempt.raw, only)

    msg_id = f"msg_{uuid.uuid4().hex}"  # and before any rotation, one signature too
    with SiemClient.from_settings(get_settings(), timeout=5) as client:
        client.send(msg_id, event)
    got = siem.wait_for(lambda d: d.id == msg_id, timeout=10)
    assert got.verified
    [only] = _signatures(got.headers["webhook-signature"])
    assert verify_signature(old, got.id, got.timestamp, got.raw, only)
