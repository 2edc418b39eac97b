"""Passkeys below the API: the relying party comes from PUBLIC_BASE_URL, and passkeys and
their challenges are tenant rows under row-level security like every other."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import ProgrammingError

from portcullis.accounts import passkeys
from portcullis.accounts.models import PasskeyChallenge, PasskeyCredential, SessionState
from portcullis.db import tenant_session
from tests.support.factories import make_member, make_passkey, make_session, make_tenant
from tests.support.web import settings_env

pytestmark = pytest.mark.usefixtures("stack")


@pytest.mark.parametrize(("base_url", "rp_id", "origin"), [
    ("https://files.example.com", "files.example.com", "https://files.example.com"),
    ("https://Files.Example.COM:443/console/", "files.example.com", "https://files.example.com"),
    ("https://files.example.com:8443", "files.example.com", "https://files.example.com:8443"),
    ("http://localhost:8000", "localhost", "http://localhost:8000"),
    ("http://portcullis.test:80", "portcullis.test", "http://portcullis.test"),
])
def test_the_relying_party_is_public_base_urls_host_and_origin(
        base_url: str, rp_id: str, origin: str) -> None:
    with settings_env(PUBLIC_BASE_URL=base_url):
        assert passkeys.relying_party() == passkeys.RelyingParty(rp_id, origin)


def _challenge(tenant_id: uuid.UUID, session_id: uuid.UUID) -> None:
    with tenant_session(tenant_id) as db:
        db.add(PasskeyChallenge(tenant_id=tenant_id, session_id=session_id,
                                purpose="authentication", challenge=b"\x01" * 64,
                                expires_at=datetime.now(UTC) + timedelta(minutes=5)))


def test_passkeys_and_challenges_are_seen_only_in_their_tenant() -> None:
    a, b = make_tenant("Passkeys RLS A"), make_tenant("Passkeys RLS B")
    for tenant in (a, b):
        member = make_member(tenant)
        make_passkey(member)
        _challenge(tenant, make_session(member, SessionState.mfa_pending).session_id)
    for model in (PasskeyCredential, PasskeyChallenge):
        with tenant_session(a) as db:
            # No WHERE clause at all: only row-level security stands between tenants here.
            tenants = {row.tenant_id for row in db.scalars(select(model))}
        assert tenants == {a}, model


def test_a_passkey_cannot_be_written_into_another_tenant() -> None:
    a, b = make_tenant("Passkeys Write A"), make_tenant("Passkeys Write B")
    member = make_member(b)
    with pytest.raises(ProgrammingError, match="row-level security"), tenant_session(a) as db:
        db.add(PasskeyCredential(tenant_id=b, user_id=member.user_id, credential_id=b"x" * 16,
                                 public_key=b"k", sign_count=0, transports=[],
                                 backup_eligible=False, backed_up=False, name="intruder"))
